"""`grounding_dino automl <command>`: look at the search space before spending budget, and manage sweeps.

    grounding_dino automl space -e spec.yaml [key=value ...] [--schema FILE]
                                [--sample N --seed S] [--format table|json]
    grounding_dino automl resume  <sweep dir>
    grounding_dino automl status  <sweep dir>
    grounding_dino automl promote <sweep dir>

`space` prints the effective space (parameter, type, range, scale, weights, condition, dependency)
and, with `--sample N`, the first N trial configurations exactly as a sweep with that seed launches
them (`SearchSpace.sample_trial(seed, i)` for i < N). resume/status/promote are thin wrappers over
`hpo.api` and `hpo.promote`, imported only when used.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from gdino.errors import SpecError, SweepError

# Algorithms that use the epoch budget as their fidelity: they never search train.num_epochs.
EPOCH_FIDELITY_ALGORITHMS = frozenset({"hyperband", "bohb", "asha", "pbt", "dehb", "hyperband_es"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hpo.cli import add_spec_arguments

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


def run(args: argparse.Namespace) -> int:
    command = args.automl_command
    if command == "space":
        return run_space(args)
    sweep_dir = Path(args.sweep_dir).expanduser()
    if not sweep_dir.exists():
        raise SweepError(f"sweep directory {sweep_dir} does not exist",
                         hint="pass the directory a sweep wrote (see `grounding_dino train` output)")
    if command == "resume":
        from hpo import api

        return _print_result(api.resume_sweep(str(sweep_dir)))
    if command == "status":
        from hpo import api

        return _print_result(api.sweep_status(str(sweep_dir)))
    if command == "promote":
        from hpo import promote

        return _print_result(promote.promote_sweep(str(sweep_dir)))
    raise SpecError(f"unknown automl command {command!r}")


def _print_result(result: Any) -> int:
    if result is None:
        return 0
    if hasattr(result, "to_text"):
        print(result.to_text())
    elif isinstance(result, (dict, list)):
        print(json.dumps(result, indent=2, default=str))
    else:
        print(result)
    return 0


def load_for_space(spec_path: str, overrides: list[str]) -> tuple[Any, dict[str, Any]]:
    """(resolved config, the spec as the user wrote it) — the latter tells which params were removed."""
    import yaml

    path = Path(spec_path).expanduser()
    try:
        user_spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as err:
        raise SpecError(f"spec file {path} not found", key="-e") from err
    except (OSError, yaml.YAMLError) as err:
        raise SpecError(f"cannot read spec {path}: {err}", key="-e") from err
    if not isinstance(user_spec, dict):
        raise SpecError("the spec must be a YAML mapping", key=str(path))
    from gdino.spec import load_spec

    return load_spec(str(path), overrides), user_spec


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    return value


def run_space(args: argparse.Namespace) -> int:
    from hpo.space import build_search_space, render_table

    cfg, user_spec = load_for_space(args.spec, list(args.overrides or ()))
    automl = cfg.get("automl", {}) if isinstance(cfg, dict) else cfg.automl
    algorithm = automl.get("algorithm") if isinstance(automl, dict) else automl.algorithm
    seed = args.seed if args.seed is not None else (automl.get("seed", 42) if isinstance(automl, dict)
                                                    else automl.seed)
    if args.sample < 0:
        raise SpecError("must be >= 0", key="--sample")
    space = build_search_space(cfg, schema=args.schema, user_spec=user_spec,
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



