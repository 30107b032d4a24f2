"""Backbone families (`model.pretrained_backbone_path`), and the backbone part of detector families."""
from __future__ import annotations

from typing import Collection

import torch
from torch import nn

from gdino.model.checkpoints import resnet, swin
from gdino.model.checkpoints.family import Converted, Family

# Prefixes a backbone file may carry: DDP's `module.`, a whole IDEA/TAO detector's backbone
# (`backbone.0.`, TAO: `model.model.backbone.0.body.`), a Lightning wrapper's `model.`.
_BACKBONE_PREFIXES = ("module.", "model.model.", "backbone.0.", "body.", "model.")


def strip_backbone_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in _BACKBONE_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def convert_backbone(state: dict[str, torch.Tensor], backbone: nn.Module) -> tuple[str, Converted]:
    """Backbone-relative `state` (any supported layout) -> names of our backbone module."""
    keys = state.keys()
    if swin.is_swin(keys):
        kind, converted = swin.to_ours(state)
        return f"Swin ({kind} layout)", converted
    if resnet.is_resnet(keys):
        return "ResNet (timm/torchvision layout)", resnet.to_ours(state)
    return "unknown backbone layout", Converted(unplaced=list(keys))


class SwinOfficial(Family):
    name = "Swin, official (Microsoft/IDEA/TAO) layout"

    def detect(self, keys: Collection[str]) -> bool:
        return swin.is_swin(keys) and swin.layout(keys) == "official"

    def to_network(self, state, net):
        return swin.official_to_ours(state)


class SwinTimm(Family):
    name = "Swin, timm layout"

    def detect(self, keys: Collection[str]) -> bool:
        return swin.is_swin(keys) and swin.layout(keys) == "timm"

    def to_network(self, state, net):
        return swin.timm_to_ours(state)


class SwinHF(Family):
    name = "Swin, HF transformers layout"

    def detect(self, keys: Collection[str]) -> bool:
        return swin.is_swin(keys) and swin.layout(keys) == "hf"

    def to_network(self, state, net):
        return swin.hf_to_ours(state)


class ResNet(Family):
    name = "ResNet, timm/torchvision layout"

    def detect(self, keys: Collection[str]) -> bool:
        return resnet.is_resnet(keys)

    def to_network(self, state, net):
        return resnet.to_ours(state)


class OursBackbone(Family):
    """A backbone state dict saved from our own backbone module (`body.*`, `norm{i}`)."""

    name = "our backbone"

    def detect(self, keys: Collection[str]) -> bool:
        return bool(keys) and all(k.startswith("body.") or swin._LEVEL_NORM.match(k) for k in keys)

    def to_network(self, state, net):
        return Converted(state=dict(state))


BACKBONE_FAMILIES: tuple[Family, ...] = (OursBackbone(), SwinHF(), SwinOfficial(), SwinTimm(), ResNet())
