"""`grounding_dino quantize -e spec.yaml`: quantize a model and report the accuracy change (trt.quantize)."""
from __future__ import annotations

import argparse

from cli.args import add_spec_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_spec_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from gdino.spec import load_spec
    from trt.quantize import quantize

    report = quantize(load_spec(args.spec, list(args.overrides)))
    print(f"quantized model: {report['quantized_model']}")
    print("val " + " ".join(f"{k} {report['float'][k]:.4f} -> {report['quantized'][k]:.4f}" for k in report["float"]))
    return 0
