"""CLI glue for plain training, checkpoint evaluation and inference.

hpo.train_entry calls `run_train(args)` when the AutoML policy is off; trt.actions calls
`run_evaluate` / `run_inference` (or `evaluate` / `infer` directly) for training checkpoints.
gdino imports neither hpo nor trt, so the `-e spec.yaml key=value ...` arguments are declared here.
"""
from __future__ import annotations

import argparse
import json
import sys


def _add_spec_arguments(parser: argparse.ArgumentParser) -> None:
    if any(a.dest == "spec" for a in parser._actions):  # already added by the caller (hpo.cli)
        return
    parser.add_argument("-e", "--experiment_spec", "--experiment-spec", dest="spec", required=True,
                        help="experiment spec YAML (TAO format)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted overrides, e.g. train.optim.lr=1e-4 num_epochs=3")


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    _add_spec_arguments(parser)


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    _add_spec_arguments(parser)


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    _add_spec_arguments(parser)


def _load(args: argparse.Namespace, action: str):
    from gdino.spec import load_spec

    return load_spec(args.spec, list(getattr(args, "overrides", None) or ()), action=action)


def run_train(args: argparse.Namespace) -> int:
    """Plain training (one run): gdino.engine.train.fit; prints the last validation metrics."""
    from gdino.engine.train import fit

    trainer = fit(_load(args, "train"))
    metrics = {k: round(float(v), 5) for k, v in trainer.callback_metrics.items()
               if k in ("val_mAP", "val_mAP50", "val_loss", "train_loss")}
    print(json.dumps(metrics))
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from gdino.engine.evaluate import evaluate

    metrics = evaluate(_load(args, "evaluate"))
    print(" ".join(f"{k}={metrics[k]:.4f}" for k in ("AP", "AP50", "AP75")))
    return 0


def run_inference(args: argparse.Namespace) -> int:
    from gdino.engine.inference import infer

    folder = infer(_load(args, "inference"))
    print(f"inference results in {folder}", file=sys.stderr)
    return 0
