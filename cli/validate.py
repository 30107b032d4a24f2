"""`grounding_dino validate -e spec.yaml [key=value ...] [--action A]`: print the resolved spec or its errors.

Exit 0 with the resolved YAML on stdout (secrets shown as '***'); on problems the router prints the
`SpecErrors` (every problem at once) and exits 2.
"""
from __future__ import annotations

import argparse
import sys

from cli.args import add_spec_arguments
from cli.registry import SCHEMA_ACTIONS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_spec_arguments(parser)
    parser.add_argument("--action", choices=SCHEMA_ACTIONS, default=None,
                        help="also check the values this action requires (e.g. evaluate.checkpoint for evaluate)")


def run(args: argparse.Namespace) -> int:
    from gdino.spec import dump_spec, load_spec

    cfg = load_spec(args.spec, args.overrides, action=args.action)
    sys.stdout.write(dump_spec(cfg))
    return 0
