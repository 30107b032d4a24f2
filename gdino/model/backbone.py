"""timm backbones for Grounding DINO: NCHW feature maps at any input size.

HF's own `TimmBackbone` cannot run timm's Swin: Swin returns channels-last features and asserts a
224x224 input unless built with `strict_img_size=False` (notes/gdino.md §1.4). `TimmNchwBackbone`
builds the timm model itself and permutes features to NCHW; it is swapped into the HF detector in
place of the `TimmBackbone` the HF config created (same channels, so the input projections fit).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from gdino.errors import CheckpointError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackboneSpec:
    timm_name: str
    channels_last: bool     # Swin returns NHWC
    first_stage_index: int  # timm feature index of stage 0 (stride 4): resnet's index 0 is the stem


BACKBONES: dict[str, BackboneSpec] = {
    "swin_tiny_224_1k": BackboneSpec("swin_tiny_patch4_window7_224", True, 0),
    "swin_base_224_22k": BackboneSpec("swin_base_patch4_window7_224", True, 0),
    "swin_base_384_22k": BackboneSpec("swin_base_patch4_window12_384", True, 0),
    "swin_large_224_22k": BackboneSpec("swin_large_patch4_window7_224", True, 0),
    "swin_large_384_22k": BackboneSpec("swin_large_patch4_window12_384", True, 0),
    "resnet_50": BackboneSpec("resnet50", False, 1),
    "resnet_18": BackboneSpec("resnet18", False, 1),
}


def timm_out_indices(backbone: str, return_interm_indices: Sequence[int]) -> tuple[int, ...]:
    """TAO stage indices (0 = stride 4 ... 3 = stride 32; 4 = an extra level) -> timm feature indices."""
    spec = BACKBONES[backbone]
    return tuple(spec.first_stage_index + i for i in return_interm_indices if i <= 3)


class _Features:
    """What HF's conv encoder reads: `.feature_maps`."""

    def __init__(self, feature_maps: tuple[torch.Tensor, ...]) -> None:
        self.feature_maps = feature_maps


class TimmNchwBackbone(nn.Module):
    """A timm `features_only` model whose features are always NCHW."""

    def __init__(self, backbone: str, out_indices: Sequence[int]) -> None:
        super().__init__()
        import timm

        spec = BACKBONES[backbone]
        kwargs = {"strict_img_size": False} if spec.channels_last else {}
        self.timm_model = timm.create_model(spec.timm_name, pretrained=False, features_only=True,
                                            out_indices=tuple(out_indices), **kwargs)
        self.channels_last = spec.channels_last
        self.channels = list(self.timm_model.feature_info.channels())

    def forward(self, pixel_values: torch.Tensor, return_dict: bool = True, **_: object) -> _Features:
        features = self.timm_model(pixel_values)
        if self.channels_last:
            features = [f.permute(0, 3, 1, 2).contiguous() for f in features]
        return _Features(tuple(features))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute backbone activations in the backward pass (train.activation_checkpoint)."""
        self.timm_model.set_grad_checkpointing(enable)


def install_backbone(detector: nn.Module, backbone: str, out_indices: Sequence[int]) -> TimmNchwBackbone:
    """Replace the HF detector's backbone by ours (frozen batch norm, as HF does for its own)."""
    from transformers.models.grounding_dino.modeling_grounding_dino import replace_batch_norm

    ours = TimmNchwBackbone(backbone, out_indices)
    conv_encoder = detector.model.backbone.conv_encoder
    if list(conv_encoder.intermediate_channel_sizes) != ours.channels:
        raise RuntimeError(f"backbone channels {ours.channels} differ from {conv_encoder.intermediate_channel_sizes}")
    with torch.no_grad():
        replace_batch_norm(ours)
    conv_encoder.model = ours
    return ours


def load_backbone_weights(backbone: TimmNchwBackbone, path: str) -> None:
    """timm or official Swin/ResNet weights (a state dict, possibly under "model"/"state_dict")."""
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"model.pretrained_backbone_path {path} does not exist",
                              hint="point it at a timm or official Swin/ResNet .pth/.safetensors file")
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(file))
        else:
            state = torch.load(str(file), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise CheckpointError(f"cannot read backbone weights {path}: {exc}") from exc
    for key in ("model", "state_dict", "module"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    state = _official_to_timm(backbone, state)
    own = backbone.timm_model.state_dict()
    # features_only Swin wraps the model (keys "model.layers..."); plain checkpoints do not
    candidates = [state, {f"model.{k}": v for k, v in state.items()},
                  {k.removeprefix("model."): v for k, v in state.items()}]
    state = max(candidates, key=lambda s: sum(k in own and own[k].shape == v.shape for k, v in s.items()))
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(set(state) - set(usable))
    missing = sorted(set(own) - set(usable))
    if not usable:
        raise CheckpointError(f"no tensor of {path} fits backbone {backbone.timm_model.__class__.__name__}",
                              hint="is it the weights of the configured model.backbone?")
    backbone.timm_model.load_state_dict(usable, strict=False)
    if skipped or missing:
        log.warning("backbone weights %s: skipped %d tensors (%s), %d backbone tensors not in the file (%s)",
                    path, len(skipped), ", ".join(skipped[:10]), len(missing), ", ".join(missing[:10]))


def _official_to_timm(backbone: TimmNchwBackbone, state: dict) -> dict:
    """Official Swin checkpoints use `layers.N.blocks...`; timm's filter converts them."""
    if not backbone.channels_last or not any(k.startswith("layers.") and ".downsample." in k for k in state):
        return state
    try:
        from timm.models.swin_transformer import checkpoint_filter_fn

        return checkpoint_filter_fn(state, backbone.timm_model)
    except Exception:  # noqa: BLE001 - fall back to the raw names; mismatches are reported by the caller
        return state
