"""`grounding_dino inference -e spec.yaml`: detect the captioned phrases with a checkpoint, ONNX file or
TensorRT engine (trt.actions.infer picks the backend)."""
from __future__ import annotations

import argparse

from cli.args import add_spec_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_spec_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from gdino.spec import load_spec
    from trt.actions import infer

    out = infer(load_spec(args.spec, list(args.overrides)))
    print(f"inference results in {out}")
    return 0
