"""ResNet weights from timm or torchvision (the same tensor names: conv1, bn1, layer1..4, fc) -> our
`ResNetBackbone` (`body.*`). IDEA's detector holds torchvision's names under `backbone.0.body.`
(IDEA backbone/backbone.py uses torchvision's IntermediateLayerGetter)."""
from __future__ import annotations

import re
from typing import Collection

import torch

from gdino.model.checkpoints.family import Converted

CLASSIFIER = "ImageNet classifier (fc); a detector does not use it"
BN_COUNTER = "batch-norm step counter (num_batches_tracked); frozen batch norm has none"


def is_resnet(keys: Collection[str]) -> bool:
    return any(k.startswith("conv1.") for k in keys) and any(k.startswith("layer1.") for k in keys)


def to_ours(state: dict[str, torch.Tensor]) -> Converted:
    out = Converted()
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            out.ignored[key] = BN_COUNTER
        elif re.match(r"^fc\.(weight|bias)$", key):
            out.ignored[key] = CLASSIFIER
        elif key.startswith(("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4.")):
            out.state["body." + key] = value
        else:
            out.unplaced.append(key)
    return out
