"""Backbones for Grounding DINO, built as TAO builds them, returning NCHW feature maps at any input size.

HF's own `TimmBackbone` cannot run timm's Swin (channels-last features, a 224x224 assertion; notes/gdino.md
§1.4), and timm's Swin differs from the Swin that IDEA and TAO train in three ways that change the outputs
of their checkpoints. So `SwinBackbone` wraps timm's `SwinTransformer` and makes it compute what
TAO's does (NVIDIA/tao_pytorch_backend nvidia_tao_pytorch/cv/backbone_v2/swin.py and swin_utils.py;
IDEA-Research/GroundingDINO groundingdino/models/GroundingDINO/backbone/swin_transformer.py):

- shifted windows in every second block of every stage at any input size: TAO never shrinks the window
  or drops the shift when a feature map is smaller than the window (timm: `always_partition=True`);
- a feature map that is not a multiple of the window is zero-padded *before* the cyclic shift and the
  shift mask is computed on the padded map (timm shifts first, then pads: `_pad_then_shift_attention`);
- each returned stage has its own output LayerNorm, `norm{i}` for stage i, as TAO/IDEA name them;
- the input is zero-padded right/bottom to a multiple of the patch size, as TAO's/IDEA's PatchEmbed does;
- stochastic depth 0.2 (IDEA's SwinTransformer default; TAO's backbone_v2 default at 6.25.10 is 0.1).

ResNets are timm's (same tensor names as torchvision's). Every backbone exposes `size_divisibility`: the
multiple its input is padded to internally; a caller that pads images and pixel masks to it itself gets
masks that match the padded pixels exactly.
"""
from __future__ import annotations

import logging
import types
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

SWIN_DROP_PATH_RATE = 0.2  # IDEA groundingdino/models/GroundingDINO/backbone/swin_transformer.py SwinTransformer
SWIN_PATCH_SIZE = 4


@dataclass(frozen=True)
class BackboneSpec:
    timm_name: str
    channels_last: bool     # Swin returns NHWC
    first_stage_index: int  # timm feature index of stage 0 (stride 4): resnet's index 0 is the stem
    embed_dim: int = 0      # Swin only: TAO's embed dim, depths, heads and window per `model.backbone`
    depths: tuple[int, ...] = ()
    num_heads: tuple[int, ...] = ()
    window_size: int = 0
    pretrain_img_size: int = 224


# TAO's Swin settings per backbone name: nvidia_tao_pytorch/cv/grounding_dino/model/swin_transformer.py
# (note swin_base_224_22k has depths [2, 2, 12, 2] there, unlike IDEA's swin_B_224_22k [2, 2, 18, 2]).
BACKBONES: dict[str, BackboneSpec] = {
    "swin_tiny_224_1k": BackboneSpec("swin_tiny_patch4_window7_224", True, 0, 96, (2, 2, 6, 2), (3, 6, 12, 24), 7),
    "swin_base_224_22k": BackboneSpec("swin_base_patch4_window7_224", True, 0, 128, (2, 2, 12, 2), (4, 8, 16, 32), 7),
    "swin_base_384_22k": BackboneSpec("swin_base_patch4_window12_384", True, 0, 128, (2, 2, 18, 2), (4, 8, 16, 32),
                                      12, 384),
    "swin_large_224_22k": BackboneSpec("swin_large_patch4_window7_224", True, 0, 192, (2, 2, 18, 2),
                                       (6, 12, 24, 48), 7),
    "swin_large_384_22k": BackboneSpec("swin_large_patch4_window12_384", True, 0, 192, (2, 2, 18, 2),
                                       (6, 12, 24, 48), 12, 384),
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


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad an NCHW batch right/bottom to a multiple of `multiple` (TAO/IDEA PatchEmbed)."""
    pad_h = (multiple - x.shape[-2] % multiple) % multiple
    pad_w = (multiple - x.shape[-1] % multiple) % multiple
    return F.pad(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x


def _pad_then_shift_attention(self, x: torch.Tensor) -> torch.Tensor:
    """Window attention of one timm `SwinTransformerBlock`, in TAO's/IDEA's order: zero-pad the map to
    whole windows, then shift, with the shift mask of the padded map (swin_utils.py
    SwinTransformerBlock.forward; timm's `_attn` shifts first and pads after, which moves other pixels
    into the wrapped-around windows whenever the map is not a multiple of the window)."""
    from timm.models.swin_transformer import window_partition, window_reverse

    _, height, width, channels = x.shape
    win_h, win_w = self.window_size
    x = F.pad(x, (0, 0, 0, (win_w - width % win_w) % win_w, 0, (win_h - height % win_h) % win_h))
    _, padded_h, padded_w, _ = x.shape
    shifted = any(self.shift_size)
    if shifted:
        x = torch.roll(x, shifts=(-self.shift_size[0], -self.shift_size[1]), dims=(1, 2))
    windows = window_partition(x, self.window_size).view(-1, self.window_area, channels)
    mask = self.get_attn_mask(x) if shifted else None
    windows = self.attn(windows, mask=mask).view(-1, win_h, win_w, channels)
    x = window_reverse(windows, self.window_size, padded_h, padded_w)
    if shifted:
        x = torch.roll(x, shifts=self.shift_size, dims=(1, 2))
    return x[:, :height, :width, :].contiguous()


class SwinBackbone(nn.Module):
    """timm's SwinTransformer computing TAO's Swin, plus TAO's per-level output norms.

    State-dict names: `body.*` (timm's layout: `layers.{i}.downsample` opens stage i) and `norm{i}` for
    each returned stage i (TAO/IDEA's names)."""

    channels_last = True
    size_divisibility = SWIN_PATCH_SIZE
    body: Any  # timm's SwinTransformer

    def __init__(self, spec: BackboneSpec, out_stages: Sequence[int], *, embed_dim: int | None = None,
                 depths: Sequence[int] | None = None, num_heads: Sequence[int] | None = None,
                 window_size: int | None = None, drop_path_rate: float = SWIN_DROP_PATH_RATE) -> None:
        super().__init__()
        from timm.models.swin_transformer import SwinTransformer

        embed_dim = embed_dim or spec.embed_dim
        depths = tuple(depths or spec.depths)
        self.body = SwinTransformer(
            img_size=spec.pretrain_img_size, patch_size=SWIN_PATCH_SIZE, embed_dim=embed_dim, depths=depths,
            num_heads=tuple(num_heads or spec.num_heads), window_size=window_size or spec.window_size,
            drop_path_rate=drop_path_rate, num_classes=0, always_partition=True, strict_img_size=False)
        self.body.norm = nn.Identity()  # classification-only; TAO has a norm per returned stage instead
        for stage in self.body.layers:
            for block in stage.blocks:
                block._attn = types.MethodType(_pad_then_shift_attention, block)
        self.out_stages = tuple(out_stages)
        dims = [embed_dim * 2 ** i for i in range(len(depths))]
        for i in self.out_stages:
            self.add_module(f"norm{i}", nn.LayerNorm(dims[i]))
        self.channels = [dims[i] for i in self.out_stages]

    def forward(self, pixel_values: torch.Tensor, return_dict: bool = True, **_: object) -> _Features:
        x = self.body.patch_embed(_pad_to_multiple(pixel_values, SWIN_PATCH_SIZE))  # NHWC
        features = []
        for i, stage in enumerate(self.body.layers):
            x = stage(x)
            if i in self.out_stages:
                features.append(getattr(self, f"norm{i}")(x).permute(0, 3, 1, 2).contiguous())
            if i >= max(self.out_stages):
                break
        return _Features(tuple(features))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute backbone activations in the backward pass (train.activation_checkpoint)."""
        self.body.set_grad_checkpointing(enable)


class ResNetBackbone(nn.Module):
    """timm's ResNet (`features_only`), NCHW; names under `body.` are torchvision's/timm's (conv1, layer1...)."""

    channels_last = False
    size_divisibility = 1  # convolutions take any size; HF resizes the pixel mask to each feature map
    body: Any  # timm's features_only ResNet

    def __init__(self, spec: BackboneSpec, out_stages: Sequence[int]) -> None:
        super().__init__()
        import timm

        self.out_stages = tuple(out_stages)
        self.body = timm.create_model(spec.timm_name, pretrained=False, features_only=True,
                                      out_indices=tuple(spec.first_stage_index + i for i in self.out_stages))
        self.channels = list(self.body.feature_info.channels())

    def forward(self, pixel_values: torch.Tensor, return_dict: bool = True, **_: object) -> _Features:
        return _Features(tuple(self.body(pixel_values)))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.body.set_grad_checkpointing(enable)


def build_backbone(backbone: str, out_stages: Sequence[int], **swin_overrides: object) -> nn.Module:
    """The backbone for `model.backbone`, returning TAO stages `out_stages` (0 = stride 4 ... 3 = stride 32)."""
    spec = BACKBONES[backbone]
    if spec.channels_last:
        return SwinBackbone(spec, out_stages, **swin_overrides)  # type: ignore[arg-type]
    return ResNetBackbone(spec, out_stages)


def install_backbone(detector: Any, backbone: str, return_interm_indices: Sequence[int],
                     **swin_overrides: object) -> nn.Module:
    """Replace the HF detector's backbone by ours (frozen batch norm, as HF does for its own)."""
    from transformers.models.grounding_dino.modeling_grounding_dino import replace_batch_norm

    ours = build_backbone(backbone, [i for i in return_interm_indices if i <= 3], **swin_overrides)
    conv_encoder = detector.model.backbone.conv_encoder
    if list(conv_encoder.intermediate_channel_sizes) != ours.channels:
        raise RuntimeError(f"backbone channels {ours.channels} differ from {conv_encoder.intermediate_channel_sizes}")
    with torch.no_grad():
        replace_batch_norm(ours)
    conv_encoder.model = ours
    return ours


def load_backbone_weights(backbone: nn.Module, path: str, *, allow_partial: bool = False):
    """`model.pretrained_backbone_path`: official/timm Swin or timm/torchvision ResNet weights, converted by
    name, with the load table (gdino.model.checkpoints). Returns the LoadReport."""
    from gdino.model.checkpoints import load_backbone_checkpoint

    return load_backbone_checkpoint(backbone, path, allow_partial=allow_partial)
