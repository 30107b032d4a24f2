"""`grounding_dino evaluate -e spec.yaml`: a checkpoint, ONNX file or TensorRT engine on test_data_sources
(trt.actions.evaluate picks the backend)."""
from __future__ import annotations

import argparse

from cli.args import add_spec_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_spec_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from gdino.spec import load_spec
    from trt.actions import evaluate

    metrics = evaluate(load_spec(args.spec, list(args.overrides)))
    print(" ".join(f"{k}={metrics[k]:.4f}" for k in ("AP", "AP50", "AP75") if k in metrics))
    return 0
