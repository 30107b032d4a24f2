"""`grounding_dino train -e spec.yaml [key=value ...]`: an AutoML sweep when the policy says so
(hpo.policy.decide_policy), otherwise plain training (gdino.engine.train.fit)."""
from __future__ import annotations

import argparse
import json
import sys

from cli.args import add_spec_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
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


def run(args: argparse.Namespace, *, train_fn: str | None = None) -> int:
    """`train_fn` ("module:function") replaces Grounding DINO's training in each sweep trial (hpo.testing's
    cheap trainable in the Ray Jobs test); the command line has no flag for it: it is not a user setting."""
    from gdino.spec import load_spec
    from hpo.policy import decide_policy

    overrides = list(args.overrides or ())
    cfg = load_spec(args.spec, overrides)
    decision = decide_policy(cfg, args.request)
    print(decision.reason, file=sys.stderr)
    if not decision.use_automl:
        return run_plain_training(args)
    if train_fn is None:  # gdino training: its data must be usable before budget is spent
        from gdino.data.check import preflight

        preflight(cfg, ("train", "val"))
    from hpo.api import launch_sweep

    if train_fn is None:
        result = launch_sweep(cfg, ray_address=args.ray_address, sweep_dir=args.sweep_dir, backend=args.backend)
    else:
        result = launch_sweep(cfg, ray_address=args.ray_address, sweep_dir=args.sweep_dir, backend=args.backend,
                              train_fn=train_fn)
    print(result.to_text())
    print(f"sweep dir: {result.sweep_dir}")
    if result.best_trial_id is None:  # every trial failed or was interrupted: nothing to use
        print(f"no trial finished with a score; see the trial errors above and in {result.sweep_dir}",
              file=sys.stderr)
        return 1
    # a failed promotion leaves the sweep's results in place but is still a failure of the command
    return 1 if result.promotion_error else 0


def run_plain_training(args: argparse.Namespace) -> int:
    """One training run (gdino.engine.train.fit); prints the last validation metrics as JSON."""
    from gdino.data.check import preflight
    from gdino.engine.train import fit
    from gdino.spec import load_spec

    cfg = load_spec(args.spec, list(args.overrides or ()), action="train")
    preflight(cfg, ("train", "val"))
    trainer = fit(cfg)
    metrics = {k: round(float(v), 5) for k, v in trainer.callback_metrics.items()
               if k in ("val_mAP", "val_mAP50", "val_loss", "train_loss")}
    print(json.dumps(metrics))
    return 0
