"""The Grounding DINO network, criterion and post-processing (HF transformers + timm backbones).

    net = build_network(cfg.model)              # GroundingDinoNet; net.detector is the HF model
    net = load_network(cfg, "model.pth")        # + weights, eval mode
    criterion = SetCriterion(CriterionSettings.from_config(cfg.model))

The `model.*` support table is `gdino.model.fields.MODEL_FIELDS` (docs/model_fields.md).
"""
from __future__ import annotations

from typing import Any

__all__ = ["build_network", "load_network", "GroundingDinoNet", "SetCriterion", "CriterionSettings"]


def __getattr__(name: str) -> Any:  # torch/transformers load on first use, so `import gdino.model` stays light
    if name in ("build_network", "GroundingDinoNet"):
        from gdino.model import network

        return getattr(network, name)
    if name == "load_network":
        from gdino.model.weights import load_network

        return load_network
    if name in ("SetCriterion", "CriterionSettings"):
        from gdino.model import criterion

        return getattr(criterion, name)
    raise AttributeError(name)
