"""Arguments shared by several actions."""
from __future__ import annotations

import argparse


def add_spec_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """The TAO-style `-e spec.yaml key=value ...` arguments of the spec-driven actions."""
    parser.add_argument("-e", "--experiment_spec", "--experiment-spec", dest="spec", required=required,
                        help="experiment spec YAML (TAO format)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted overrides, e.g. train.optim.lr=1e-4 dataset.batch_size=2 num_epochs=3")


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    """Job chaining (cli.jobs): every spec-driven action runs as a job with an id and a results dir."""
    g = parser.add_argument_group("job chaining")
    g.add_argument("--job_id", "--job-id", dest="job_id", default=None,
                   help="id of this job (default: a new one); its results dir defaults to <jobs_root>/<job_id>")
    g.add_argument("--parent_job_id", "--parent-job-id", dest="parent_job_id", default=None,
                   help="fill checkpoint / onnx_file / trt_engine / model_path from this job's results")
    g.add_argument("--jobs_root", "--jobs-root", dest="jobs_root", default=None,
                   help="where job records live (default $GDINO_JOBS_ROOT or results/jobs)")
