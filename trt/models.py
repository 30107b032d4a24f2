"""Loading the trained network for deployment: the model package (gdino.model) owns how a checkpoint becomes
an HF GroundingDinoForObjectDetection; this is the one seam trt uses."""
from __future__ import annotations

from typing import Any

from gdino.config import ExperimentConfig
from gdino.errors import CheckpointError


def load_detector(cfg: ExperimentConfig, checkpoint: str | None) -> Any:
    """The HF detector (eval mode, CPU) of `checkpoint`, built from `cfg.model`."""
    from gdino.model import load_network

    if not checkpoint:
        raise CheckpointError("no checkpoint given", hint="set export.checkpoint (or evaluate/inference.checkpoint)")
    net = load_network(cfg, checkpoint)
    return getattr(net, "detector", net).eval()
