"""`grounding_dino train -e spec.yaml [key=value ...]`: an AutoML sweep when the policy says so
(hpo.policy.decide_policy), otherwise plain training (gdino.engine)."""
from __future__ import annotations

import argparse
import logging
import sys

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hpo.cli import add_spec_arguments

    add_spec_arguments(parser)
    parser.add_argument("--request", default=None,
                        help='the request in words; e.g. "plain training" or "no HPO" turns AutoML off for this run')
    parser.add_argument("--ray-address", "--ray_address", dest="ray_address", default=None,
                        help="Ray cluster (host:port) for the sweep; default automl.ray_address, RAY_ADDRESS, "
                             "or a private local instance")
    parser.add_argument("--sweep-dir", "--sweep_dir", dest="sweep_dir", default=None,
                        help="where the sweep writes (default <automl.storage_path or results_dir/automl>/sweep_*)")
    parser.add_argument("--backend", choices=("train", "function"), default="train",
                        help="train: each trial is a Ray Train run (default); function: trains inside the Tune "
                             "actor (single-device trials, less overhead)")
    parser.add_argument("--train-fn", "--train_fn", dest="train_fn", default=None,
                        help=argparse.SUPPRESS)  # "module:function" replacing gdino's training (tests, benchmarks)


def run(args: argparse.Namespace) -> int:
    from gdino.spec import load_spec
    from hpo.policy import decide_policy

    overrides = list(args.overrides or ())
    cfg = load_spec(args.spec, overrides)
    decision = decide_policy(cfg, getattr(args, "request", None))
    print(decision.reason, file=sys.stderr)
    if not getattr(args, "train_fn", None):  # gdino training: its data must be usable before budget is spent
        from gdino.data.check import preflight

        preflight(cfg, ("train", "val"))
    if not decision.use_automl:
        return _plain_training(args, cfg)
    from hpo.api import launch_sweep

    extra = {"train_fn": args.train_fn} if getattr(args, "train_fn", None) else {}
    result = launch_sweep(cfg, ray_address=args.ray_address, sweep_dir=args.sweep_dir,
                          backend=getattr(args, "backend", "train"), **extra)
    print(result.to_text())
    print(f"sweep dir: {result.sweep_dir}")
    if result.best_trial_id is None:  # every trial failed or was interrupted: nothing to use
        print(f"no trial finished with a score; see the trial errors above and in {result.sweep_dir}",
              file=sys.stderr)
        return 1
    # a failed promotion leaves the sweep's results in place but is still a failure of the command
    return 1 if result.promotion_error else 0


def _plain_training(args: argparse.Namespace, cfg) -> int:
    from gdino.engine.cli import run_train

    return int(run_train(args) or 0)
