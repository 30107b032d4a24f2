"""`grounding_dino <action> -e spec.yaml [key=value ...]`: TAO's command line.

This file only routes: the actions are `cli.registry.ACTIONS`, each with an entry module exposing
`add_arguments(parser)` and `run(args) -> int`. Only the selected action's module is imported, so one
broken action cannot break the others and `--help` stays fast. Typed errors (`gdino.errors.GdinoError`)
are printed without a traceback and set the exit code.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from cli.args import add_job_arguments
from cli.registry import ACTIONS, ACTIONS_BY_NAME


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grounding_dino",
        description="gdino-automl: TAO-compatible Grounding DINO with AutoML on Ray Tune.",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (DEBUG, INFO, WARNING)")
    # dest is not "action": validate has an --action option of its own
    sub = parser.add_subparsers(dest="action_name", metavar="<action>", required=True)
    for action in ACTIONS:
        p = sub.add_parser(action.name, help=action.help, description=action.help)
        if action.name == selected:
            importlib.import_module(action.module).add_arguments(p)
            if action.is_job:
                add_job_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from gdino.errors import GdinoError

    argv = list(sys.argv[1:] if argv is None else argv)
    selected = next((a for a in argv if a in ACTIONS_BY_NAME), None)
    args = build_parser(selected).parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(levelname)s %(name)s: %(message)s")
    action = ACTIONS_BY_NAME[args.action_name]
    run = importlib.import_module(action.module).run
    job = None
    code = 1  # an unexpected exception leaves the job marked failed
    try:
        if action.is_job and args.spec is not None:
            from cli.jobs import start_job

            job, inferred = start_job(action.name, args.spec, list(args.overrides), job_id=args.job_id,
                                      parent_job_id=args.parent_job_id, jobs_root=args.jobs_root)
            args.overrides = inferred + list(args.overrides)  # the user's own overrides win
            print(f"job {job.job_id} ({action.name}): results in {job.results_dir}", file=sys.stderr)
        code = int(run(args) or 0)
    except GdinoError as err:
        print(f"error: {err}", file=sys.stderr)
        code = err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    finally:
        if job is not None:
            from cli.jobs import finish_job

            finish_job(job, code, args.jobs_root)
    return code


if __name__ == "__main__":
    sys.exit(main())
