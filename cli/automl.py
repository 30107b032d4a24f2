"""`grounding_dino automl <command>`: look at the search space before spending budget, and manage sweeps.

    grounding_dino automl space -e spec.yaml [key=value ...] [--schema FILE]
                                [--sample N --seed S] [--format table|json]
    grounding_dino automl resume  <sweep dir>
    grounding_dino automl status  <sweep dir>
    grounding_dino automl promote <sweep dir>

`space` prints the effective space (parameter, type, range, scale, weights, condition, dependency)
and, with `--sample N`, the first N trial configurations exactly as a sweep with that seed launches
them (`SearchSpace.sample_trial(seed, i)` for i < N). resume/status/promote are thin wrappers over
`hpo.api` and `hpo.promote`, imported only when used (they pull in Ray and MLflow).
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from cli.args import add_spec_arguments
from gdino.errors import SpecError, SweepError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="automl_command", metavar="<command>", required=True)
    space = sub.add_parser("space", help="print the effective search space (and sample trial configs)",
                           description="Print the search space a sweep of this spec would use.")
    add_spec_arguments(space)
    space.add_argument("--schema", help="train schema to read instead of ours (TAO's, or your own)")
    space.add_argument("--sample", type=int, default=0, metavar="N",
                       help="also print the first N trial configurations of a sweep with --seed")
    space.add_argument("--seed", type=int, default=None, help="sweep seed (default: automl.seed of the spec)")
    space.add_argument("--format", choices=("table", "json"), default="table")
    for name, text in (("resume", "resume an interrupted sweep from its directory"),
                       ("status", "show a sweep's progress and best trial"),
                       ("promote", "promote a finished sweep's best trial (evaluate, export, engine, registry)")):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("sweep_dir", help="the sweep's directory (automl.storage_path/<name>)")
        if name == "resume":
            p.add_argument("--ray-address", "--ray_address", dest="ray_address", default=None,
                           help="Ray cluster to resume on (default: the sweep's, RAY_ADDRESS, or a local one)")
            p.add_argument("-e", "--experiment_spec", "--experiment-spec", dest="experiment_spec", default=None,
                           help="the sweep's spec again: its secrets (encryption_key, credentials in URIs) are "
                                "never stored in the sweep dir; without it they come from the environment "
                                "(TAO_ENCRYPTION_KEY, MLFLOW_TRACKING_URI, ...)")


def run(args: argparse.Namespace) -> int:
    command = args.automl_command
    if command == "space":
        return run_space(args)
    sweep_dir = Path(args.sweep_dir).expanduser()
    if not sweep_dir.exists():
        raise SweepError(f"sweep directory {sweep_dir} does not exist",
                         hint="pass the directory a sweep wrote (see `grounding_dino train` output)")
    if command == "resume":
        from hpo.api import resume_sweep

        print(resume_sweep(str(sweep_dir), ray_address=args.ray_address,
                           spec=getattr(args, "experiment_spec", None)).to_text())
        return 0
    if command == "status":
        from hpo.api import sweep_status

        print(sweep_status(str(sweep_dir)).to_text())
        return 0
    if command == "promote":
        from hpo.promote import promote_sweep

        print(promote_sweep(str(sweep_dir)).summary())
        return 0
    raise SpecError(f"unknown automl command {command!r}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    return value


def run_space(args: argparse.Namespace) -> int:
    from gdino.config.automl import EPOCH_FIDELITY_ALGORITHMS
    from gdino.spec import load_spec
    from hpo.space import build_search_space, render_table

    cfg = load_spec(args.spec, list(args.overrides or ()))  # loaded exactly as `train` loads it
    algorithm = cfg.automl.algorithm
    seed = args.seed if args.seed is not None else cfg.automl.seed
    if args.sample < 0:
        raise SpecError("must be >= 0", key="--sample")
    space = build_search_space(cfg, schema=args.schema,
                               epochs_are_fidelity=algorithm in EPOCH_FIDELITY_ALGORITHMS)
    trials = [space.sample_trial(seed, i) for i in range(args.sample)]
    if args.format == "json":
        payload = {
            "mode": space.mode, "seed": seed, "algorithm": algorithm,
            "parameters": [{k: _jsonable(v) for k, v in row.items()} for row in space.table()],
            "not_searched": [{"parameter": e.name, "reason": e.reason} for e in space.excluded],
            "trials": [{"trial": i, "config": {k: _jsonable(v) for k, v in c.items()}}
                       for i, c in enumerate(trials)],
        }
        print(json.dumps(payload, indent=2, default=str))
        return 0
    print(render_table(space))
    if trials:
        print(f"\nfirst {len(trials)} trial configuration(s), seed {seed}:")
        for i, config in enumerate(trials):
            shown = ", ".join(f"{k}={v!r}" for k, v in config.items())
            print(f"  trial {i}: {shown}")
    return 0



