"""Loading the trained network for deployment: the model package (gdino.model) owns how a checkpoint becomes
an HF GroundingDinoForObjectDetection; this is the one seam trt uses."""
from __future__ import annotations

from typing import Any

from gdino.errors import CheckpointError, DependencyMissing


def load_detector(cfg: Any, checkpoint: str | None):
    """The HF detector (eval mode, CPU) of `checkpoint`, built from `cfg.model`."""
    if not checkpoint:
        raise CheckpointError("no checkpoint given", hint="set export.checkpoint (or evaluate/inference.checkpoint)")
    try:
        from gdino.model import load_network
    except ImportError as exc:
        raise DependencyMissing("gdino.model.load_network is not available in this installation",
                                hint="install the complete gdino-automl package") from exc
    net = load_network(cfg, checkpoint)
    return getattr(net, "detector", net).eval()
