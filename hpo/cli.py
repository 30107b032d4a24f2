"""`grounding_dino <action> -e spec.yaml [key=value ...]`: TAO's command line.

Each action lives in the package that owns it; this file only routes. An action module exposes
    add_arguments(parser: argparse.ArgumentParser) -> None
    run(args: argparse.Namespace) -> int
and keeps heavy imports (torch, ray, mlflow) inside `run` so that `--help` stays fast.
Typed errors (`gdino.errors.GdinoError`) are printed without a traceback and set the exit code.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from hpo.jobs import JOB_ACTIONS

# action -> (module, one-line help)
ACTIONS: dict[str, tuple[str, str]] = {
    "train": ("hpo.train_entry", "train: an AutoML sweep when the policy is auto, else plain training"),
    "evaluate": ("trt.actions", "evaluate a checkpoint, ONNX file or TensorRT engine on test_data_sources"),
    "inference": ("trt.actions", "detect captioned objects in images (checkpoint, ONNX or TensorRT)"),
    "export": ("trt.export", "export a checkpoint to ONNX with TAO's interface"),
    "gen_trt_engine": ("trt.engine", "build a TensorRT engine from an ONNX file"),
    "quantize": ("trt.quantize", "quantize a model and report the accuracy change"),
    "dataset": ("gdino.data.cli", "generate a dataset or check the configured data sources"),
    "automl": ("hpo.automl_cli", "inspect the search space, resume, inspect or promote a sweep"),
    "schema": ("gdino.schema_gen", "regenerate (--write) or verify (--check) schemas/ and references/"),
    "validate": ("gdino.spec_cli", "load a spec with overrides and print it resolved, or its errors"),
}


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """Only the selected action's module is imported, so one broken action cannot break the others."""
    parser = argparse.ArgumentParser(
        prog="grounding_dino",
        description="gdino-automl: TAO-compatible Grounding DINO with AutoML on Ray Tune.",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (DEBUG, INFO, WARNING)")
    sub = parser.add_subparsers(dest="action", metavar="<action>", required=True)
    for action, (module_name, help_text) in ACTIONS.items():
        p = sub.add_parser(action, help=help_text, description=help_text)
        p.set_defaults(_module=module_name, _action=action)
        if action == selected:
            module = importlib.import_module(module_name)
            add = getattr(module, f"add_{action}_arguments", None) or module.add_arguments
            add(p)
            if action in JOB_ACTIONS:
                _add_job_arguments(p)
    return parser


def _add_job_arguments(parser: argparse.ArgumentParser) -> None:
    """Job chaining (hpo.jobs): every spec-driven action runs as a job with an id and a results dir."""
    g = parser.add_argument_group("job chaining")
    g.add_argument("--job_id", "--job-id", dest="job_id", default=None,
                   help="id of this job (default: a new one); its results dir defaults to <jobs_root>/<job_id>")
    g.add_argument("--parent_job_id", "--parent-job-id", dest="parent_job_id", default=None,
                   help="fill checkpoint / onnx_file / trt_engine / model_path from this job's results")
    g.add_argument("--jobs_root", "--jobs-root", dest="jobs_root", default=None,
                   help="where job records live (default $GDINO_JOBS_ROOT or results/jobs)")


def add_spec_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """The TAO-style `-e spec.yaml key=value ...` arguments shared by the spec-driven actions."""
    parser.add_argument("-e", "--experiment_spec", "--experiment-spec", dest="spec", required=required,
                        help="experiment spec YAML (TAO format)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted overrides, e.g. train.optim.lr=1e-4 dataset.batch_size=2 num_epochs=3")


def main(argv: Sequence[str] | None = None) -> int:
    from gdino.errors import GdinoError

    argv = list(sys.argv[1:] if argv is None else argv)
    selected = next((a for a in argv if a in ACTIONS), None)
    args = build_parser(selected).parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(levelname)s %(name)s: %(message)s")
    module = importlib.import_module(args._module)
    run = getattr(module, f"run_{args._action}", None) or module.run
    job = None
    code = 1  # an unexpected exception leaves the job marked failed
    try:
        if args._action in JOB_ACTIONS and getattr(args, "spec", None) is not None:
            from hpo.jobs import start_job

            job, inferred = start_job(args._action, args.spec, list(args.overrides), job_id=args.job_id,
                                      parent_job_id=args.parent_job_id, jobs_root=args.jobs_root)
            args.overrides = inferred + list(args.overrides)  # the user's own overrides win
            args.job = job
            print(f"job {job.job_id} ({args._action}): results in {job.results_dir}", file=sys.stderr)
        code = int(run(args) or 0)
    except GdinoError as err:
        print(f"error: {err}", file=sys.stderr)
        code = err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    finally:
        if job is not None:
            from hpo.jobs import finish_job

            finish_job(job, code, args.jobs_root)
    return code


if __name__ == "__main__":
    sys.exit(main())
