"""`grounding_dino export -e spec.yaml`: a checkpoint to ONNX with TAO's interface (trt.export)."""
from __future__ import annotations

import argparse

from cli.args import add_spec_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_spec_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from gdino.spec import load_spec
    from trt.export import export_onnx

    path = export_onnx(load_spec(args.spec, list(args.overrides)))
    print(f"ONNX file stored at {path}")
    return 0
