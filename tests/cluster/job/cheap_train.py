"""`grounding_dino train` with hpo.testing's cheap trainable standing in for Grounding DINO (the Ray Jobs
test is about the job path, not the model). The command line has no flag for test trainables, so this
parses the real `train` arguments and calls the action's entry point through its Python API."""
import sys

from cli.main import build_parser
from cli.train import run

args = build_parser("train").parse_args(["train", *sys.argv[1:]])
sys.exit(run(args, train_fn="hpo.testing:quadratic_train_fn"))
