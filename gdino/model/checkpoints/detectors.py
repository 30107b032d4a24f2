"""Whole-detector families -> GroundingDinoNet names (`detector.` + HF GroundingDino names).

Our network is HF's `GroundingDinoForObjectDetection` with our backbone module installed at
`detector.model.backbone.conv_encoder.model` (gdino/model/network.py, gdino/model/backbone.py).
"""
from __future__ import annotations

import re
from typing import Any, Collection

import torch
from torch import nn

from gdino.model.checkpoints.backbones import convert_backbone
from gdino.model.checkpoints.family import Converted, Family, all_start_with, strip_prefix

BACKBONE = "detector.model.backbone.conv_encoder.model."
POOLER = "BERT pooler (Grounding DINO uses the token states only)"
POSITION_IDS = "recomputed buffer (BERT position_ids)"
DN_LABELS = "denoising label embedding (label_enc): the configured network has model.dn_number 0"


def _backbone_module(net: Any) -> nn.Module:
    return net.detector.model.backbone.conv_encoder.model


class Ours(Family):
    """Our GroundingDinoNet: Lightning `.ckpt`/TAO-style `.pth` (`net.` + names) or a plain state dict."""

    name = "ours (gdino)"

    def detect(self, keys: Collection[str]) -> bool:
        return any(k.startswith(("detector.", "net.detector.")) for k in keys)

    def to_network(self, state, net):
        # Lightning keeps the network as `net`; anything else in its state dict is reported as left over
        return Converted(state={key.removeprefix("net."): value for key, value in state.items()})


class HuggingFace(Family):
    """HF GroundingDino (`save_pretrained` folder, model.safetensors, pytorch_model.bin, or its state_dict).

    Everything but the backbone has our names already; the backbone is HF's Swin (converted by
    gdino.model.checkpoints.swin.hf_to_ours) or HF's TimmBackbone (`_backbone.` + timm names)."""

    name = "HF transformers GroundingDino"

    def detect(self, keys: Collection[str]) -> bool:
        return (any(k.startswith(("model.text_backbone.", "model.input_proj_vision.", "model.encoder.layers."))
                    for k in keys) and not any(k.startswith("model.model.") for k in keys))

    def to_network(self, state, net):
        out = Converted()
        backbone_state, origin = {}, {}
        hf_backbone = "model.backbone.conv_encoder.model."
        for key, value in state.items():
            if key.startswith(hf_backbone):
                relative = key[len(hf_backbone):].removeprefix("_backbone.")
                backbone_state[relative], origin[relative] = value, key
            else:
                out.state["detector." + key] = value
        _merge_backbone(out, backbone_state, origin, net)
        return out


# IDEA / Open-GroundingDino names -> HF GroundingDino names. Source of the correspondence:
# huggingface/transformers src/transformers/models/grounding_dino/convert_grounding_dino_to_hf.py
# (create_rename_keys), checked against IDEA-Research/GroundingDINO groundingdino/models/GroundingDINO/
# {groundingdino,transformer,fuse_modules}.py and transformers 5.23's module names. nn.MultiheadAttention's
# fused `in_proj_weight/bias` become HF's separate query/key/value (rows [q; k; v]).
_ENCODER_DEFORMABLE = {"self_attn.": "self_attn.", "norm1.": "self_attn_layer_norm.", "linear1.": "fc1.",
                       "linear2.": "fc2.", "norm2.": "final_layer_norm."}
_ENCODER_TEXT = {"self_attn.": "self_attn.", "linear1.": "fc1.", "linear2.": "fc2.", "norm1.": "layer_norm_before.",
                 "norm2.": "layer_norm_after."}
_ENCODER_FUSION = {"gamma_v": "vision_param", "gamma_l": "text_param", "layer_norm_v.": "layer_norm_vision.",
                   "layer_norm_l.": "layer_norm_text.", "attn.v_proj.": "attn.vision_proj.",
                   "attn.l_proj.": "attn.text_proj.", "attn.values_v_proj.": "attn.values_vision_proj.",
                   "attn.values_l_proj.": "attn.values_text_proj.", "attn.out_v_proj.": "attn.out_vision_proj.",
                   "attn.out_l_proj.": "attn.out_text_proj."}
_DECODER_LAYER = {"cross_attn.": "encoder_attn.", "norm1.": "encoder_attn_layer_norm.",
                  "ca_text.": "encoder_attn_text.", "catext_norm.": "encoder_attn_text_layer_norm.",
                  "self_attn.": "self_attn.", "norm2.": "self_attn_layer_norm.", "linear1.": "fc1.",
                  "linear2.": "fc2.", "norm3.": "final_layer_norm."}
# whole-prefix renames (first match wins)
_PREFIXES = (
    ("transformer.level_embed", "model.level_embed"),
    ("transformer.tgt_embed.", "model.query_position_embeddings."),
    ("transformer.enc_output_norm.", "model.enc_output_norm."),
    ("transformer.enc_output.", "model.enc_output."),
    ("transformer.enc_out_bbox_embed.", "model.encoder_output_bbox_embed."),
    ("transformer.enc_out_class_embed.", "model.encoder_output_class_embed."),
    ("transformer.decoder.norm.", "model.decoder.layer_norm."),
    ("transformer.decoder.ref_point_head.", "model.decoder.reference_points_head."),
    ("transformer.decoder.bbox_embed.", "model.decoder.bbox_embed."),
    ("transformer.decoder.class_embed.", "class_embed."),  # IDEA/TAO alias of the top-level class_embed
    ("bert.", "model.text_backbone."),
    ("feat_map.", "model.text_projection."),
    ("input_proj.", "model.input_proj_vision."),
    ("bbox_embed.", "bbox_embed."),
    ("class_embed.", "class_embed."),
)
_LAYER_TABLES = (
    (re.compile(r"^transformer\.encoder\.layers\.(\d+)\.(.+)$"), "model.encoder.layers.{}.deformable_layer.",
     _ENCODER_DEFORMABLE),
    (re.compile(r"^transformer\.encoder\.text_layers\.(\d+)\.(.+)$"), "model.encoder.layers.{}.text_enhancer_layer.",
     _ENCODER_TEXT),
    (re.compile(r"^transformer\.encoder\.fusion_layers\.(\d+)\.(.+)$"), "model.encoder.layers.{}.fusion_layer.",
     _ENCODER_FUSION),
    (re.compile(r"^transformer\.decoder\.layers\.(\d+)\.(.+)$"), "model.decoder.layers.{}.", _DECODER_LAYER),
)


def idea_name_to_hf(key: str) -> str | None:
    """The HF name of one IDEA (non-backbone) tensor; None when IDEA's layout has no such name."""
    for pattern, target, table in _LAYER_TABLES:
        if m := pattern.match(key):
            rest = m.group(2)
            for src, dst in table.items():
                if rest == src or rest.startswith(src):
                    return target.format(m.group(1)) + dst + rest[len(src):]
            return None
    for src, dst in _PREFIXES:
        if key == src or key.startswith(src):
            return dst + key[len(src):]
    return None


def _split_in_proj(name: str, value: torch.Tensor, out: dict[str, torch.Tensor]) -> bool:
    """`x.in_proj_weight` / `x.in_proj_bias` (fused) -> `x.query/key/value.weight|bias` (HF)."""
    m = re.match(r"^(.*)\.in_proj_(weight|bias)$", name)
    if not m:
        return False
    for part, chunk in zip(("query", "key", "value"), value.chunk(3, dim=0)):
        out[f"{m.group(1)}.{part}.{m.group(2)}"] = chunk.clone()
    return True


class Idea(Family):
    """IDEA's GroundingDINO `.pth` (groundingdino_swint_ogc.pth: {"model": ...}) and Open-GroundingDino's
    checkpoints (the same names, DDP's `module.` prefix or not)."""

    name = "IDEA / Open-GroundingDino"

    def detect(self, keys: Collection[str]) -> bool:
        keys = [k.removeprefix("module.") for k in keys]
        return any(k.startswith("transformer.") for k in keys) and any(k.startswith(("bert.", "feat_map."))
                                                                        for k in keys)

    def to_network(self, state, net):
        return idea_to_network(strip_prefix(state, "module.") if all_start_with(state, "module.") else state, net)


class Tao(Family):
    """NVIDIA TAO's grounding_dino `.pth`/`.ckpt`: a Lightning state dict whose model is at `model.model.`
    (pl_gdino_model.py `self.model` -> build_nn_model.py GDINOModel `self.model`), backbone at
    `backbone.0.body.` (TAO backbone.py BackboneBase `self.body`), otherwise IDEA's names
    (TAO utils.py `grounding_dino_parser` maps IDEA -> TAO by exactly these prefixes)."""

    name = "NVIDIA TAO grounding_dino"

    def detect(self, keys: Collection[str]) -> bool:
        return any(k.startswith("model.model.transformer.") for k in keys)

    def to_network(self, state, net):
        idea = {}
        unplaced = []
        for key, value in state.items():
            if not key.startswith("model.model."):
                unplaced.append(key)
                continue
            idea[key[len("model.model."):].replace("backbone.0.body.", "backbone.0.", 1)] = value
        out = idea_to_network(idea, net)
        out.unplaced.extend(unplaced)
        return out


def idea_to_network(state: dict[str, torch.Tensor], net: nn.Module) -> Converted:
    out = Converted()
    backbone_state, origin = {}, {}
    own = net.state_dict()
    label_enc = next((k for k in own if k.endswith("label_enc.weight")), None)
    for key, value in state.items():
        if key.startswith("backbone.0."):
            relative = key[len("backbone.0."):].removeprefix("body.")
            backbone_state[relative], origin[relative] = value, key
        elif key.startswith("backbone.1."):
            out.unplaced.append(key)  # IDEA's sine position embedding has no tensors
        elif key.startswith("bert.pooler."):
            out.ignored[key] = POOLER
        elif key == "bert.embeddings.position_ids":
            out.ignored[key] = POSITION_IDS
        elif key == "label_enc.weight":
            if label_enc is None:
                out.ignored[key] = DN_LABELS
            else:
                out.state[label_enc] = value
        else:
            name = idea_name_to_hf(key)
            if name is None:
                out.unplaced.append(key)
            elif not _split_in_proj("detector." + name, value, out.state):
                out.state["detector." + name] = value
    _merge_backbone(out, backbone_state, origin, net)
    return out


def _merge_backbone(out: Converted, backbone_state: dict[str, torch.Tensor], origin: dict[str, str],
                    net: nn.Module) -> None:
    """Convert the backbone part and add it to `out`, reporting unplaced/ignored tensors by their source names."""
    _, converted = convert_backbone(backbone_state, _backbone_module(net))
    converted.unplaced = [origin.get(k.split(" ")[0], k) for k in converted.unplaced]
    converted.ignored = {origin.get(k, k): why for k, why in converted.ignored.items()}
    out.merge(converted, prefix=BACKBONE)


DETECTOR_FAMILIES: tuple[Family, ...] = (Ours(), Tao(), Idea(), HuggingFace())
