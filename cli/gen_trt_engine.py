"""`grounding_dino gen_trt_engine -e spec.yaml`: a TensorRT engine from an ONNX file (trt.engine)."""
from __future__ import annotations

import argparse

from cli.args import add_spec_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_spec_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from gdino.spec import load_spec
    from trt.engine import build_engine, settings_from_config

    cfg = load_spec(args.spec, list(args.overrides))
    path = build_engine(settings_from_config(cfg))
    print(f"TensorRT engine was saved at {path}")
    return 0
