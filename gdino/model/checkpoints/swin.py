"""Swin backbone weights in three layouts -> our `SwinBackbone` (`body.*` = timm's layout, `norm{i}`).

- official (microsoft/Swin-Transformer, also inside IDEA's and TAO's detectors): `layers.{i}.downsample`
  *closes* stage i, fused `attn.qkv`, persistent `relative_position_index` buffers, per-level `norm{i}`
  in the detection code (IDEA swin_transformer.py; TAO backbone_v2/swin.py), `norm`/`head` in ImageNet
  releases;
- timm: `layers.{i}.downsample` *opens* stage i (timm swin_transformer.py `checkpoint_filter_fn` moves
  official downsamples one stage up; the PatchMerging weights need no reordering for Swin v1),
  `features_only` models name stages `layers_{i}`;
- HF transformers Swin (GroundingDino's default backbone): q/k/v split, `layernorm_before/after`,
  `hidden_states_norms.stage{k}` for stage k-1 (transformers convert_grounding_dino_to_hf.py
  `create_rename_keys` / `read_in_q_k_v`, in either the saved names or transformers 5's in-memory names).
All names here are relative to the backbone module.
"""
from __future__ import annotations

import re
from typing import Callable, Collection

import torch

from gdino.model.checkpoints.family import Converted

RECOMPUTED = "recomputed buffer (relative_position_index / attn_mask)"
CLASSIFIER = "ImageNet classifier head / final norm (a detector does not use them; IDEA/TAO drop them too)"
OUTPUT_NORMS = ("per-level output norms are not part of ImageNet Swin checkpoints; "
                "TAO and IDEA also start them fresh (load_state_dict(strict=False))")

_BUFFER = re.compile(r"(relative_position_index|attn_mask)$")
_CLASSIFIER = re.compile(r"^(norm|head(\.fc)?)\.(weight|bias)$")
_LEVEL_NORM = re.compile(r"^norm(\d)\.(weight|bias)$")


def is_swin(keys: Collection[str]) -> bool:
    return any(k.startswith(("patch_embed.", "embeddings.patch_embeddings.", "swin.embeddings.")) for k in keys)


def layout(keys: Collection[str]) -> str:
    """'hf', 'official' or 'timm' for backbone-relative Swin keys."""
    if any(k.startswith(("embeddings.", "swin.embeddings.", "encoder.layers.", "swin.encoder.")) for k in keys):
        return "hf"
    if any(re.match(r"layers[._]0\.downsample\.", k) for k in keys):
        return "official"
    return "timm"


def _level_norms_fresh(state: dict[str, torch.Tensor], out: Converted) -> None:
    if not any(_LEVEL_NORM.match(k) for k in state):
        out.fresh["norm"] = OUTPUT_NORMS


def official_to_ours(state: dict[str, torch.Tensor]) -> Converted:
    """Microsoft's layout: a stage's patch merging is `layers.N.downsample` (end of stage N); ours, as
    timm, holds it at the start of stage N+1."""
    def rename(key: str) -> str:
        m = re.match(r"^layers\.(\d+)\.downsample\.(.+)$", key)
        return f"layers.{int(m.group(1)) + 1}.downsample.{m.group(2)}" if m else key

    return _to_ours(state, rename)


def timm_to_ours(state: dict[str, torch.Tensor]) -> Converted:
    """timm's layout; `features_only` models name their stages `layers_N` instead of `layers.N`."""
    return _to_ours(state, lambda key: re.sub(r"^layers_(\d+)\.", r"layers.\1.", key))


def _to_ours(state: dict[str, torch.Tensor], rename: Callable[[str], str]) -> Converted:
    """Backbone-relative Swin keys -> ours: buffers and the classifier are ignored (with the reason),
    per-level output norms kept, stage tensors renamed under `body.`, anything else unplaced."""
    out = Converted()
    for key, value in state.items():
        if _BUFFER.search(key):
            out.ignored[key] = RECOMPUTED
        elif _CLASSIFIER.match(key):
            out.ignored[key] = CLASSIFIER
        elif _LEVEL_NORM.match(key):
            out.state[key] = value
        elif (ours := rename(key)).startswith(("patch_embed.", "layers.")):
            out.state["body." + ours] = value
        else:
            out.unplaced.append(key)
    _level_norms_fresh(state, out)
    return out


# HF Swin block tensor names (saved names | transformers 5 in-memory names) -> timm's
_HF_BLOCK = {
    "layernorm_before": "norm1", "layernorm_after": "norm2",
    "attention.output.dense": "attn.proj", "attention.o_proj": "attn.proj",
    "attention.self.relative_position_bias_table": "attn.relative_position_bias_table",
    "attention.relative_position_bias.relative_position_bias_table": "attn.relative_position_bias_table",
    "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2",
}
_HF_QKV = {"attention.self.query": 0, "attention.self.key": 1, "attention.self.value": 2,
           "attention.q_proj": 0, "attention.k_proj": 1, "attention.v_proj": 2}


def hf_to_ours(state: dict[str, torch.Tensor]) -> Converted:
    out = Converted()
    qkv: dict[str, list] = {}  # "body.layers.i.blocks.j.attn.qkv.weight" -> [q, k, v]
    for raw, value in state.items():
        key = raw.removeprefix("swin.")
        if _BUFFER.search(key):
            out.ignored[raw] = RECOMPUTED
        elif key in ("layernorm.weight", "layernorm.bias"):
            out.ignored[raw] = CLASSIFIER
        elif m := re.match(r"^hidden_states_norms\.stage(\d)\.(weight|bias)$", key):
            out.state[f"norm{int(m.group(1)) - 1}.{m.group(2)}"] = value
        elif key.startswith("embeddings.patch_embeddings.projection."):
            out.state["body.patch_embed.proj." + key.rsplit(".", 1)[1]] = value
        elif key.startswith("embeddings.norm."):
            out.state["body.patch_embed.norm." + key.rsplit(".", 1)[1]] = value
        elif m := re.match(r"^encoder\.layers\.(\d+)\.downsample\.(.+)$", key):
            out.state[f"body.layers.{int(m.group(1)) + 1}.downsample.{m.group(2)}"] = value
        elif m := re.match(r"^encoder\.layers\.(\d+)\.blocks\.(\d+)\.(.+)$", key):
            block, rest = f"body.layers.{m.group(1)}.blocks.{m.group(2)}.", m.group(3)
            name, _, leaf = rest.rpartition(".")
            if rest in _HF_BLOCK:  # relative_position_bias_table: a parameter without a weight/bias leaf
                out.state[block + _HF_BLOCK[rest]] = value
            elif name in _HF_QKV:
                qkv.setdefault(f"{block}attn.qkv.{leaf}", [None, None, None])[_HF_QKV[name]] = value
            elif name in _HF_BLOCK:
                out.state[f"{block}{_HF_BLOCK[name]}.{leaf}"] = value
            else:
                out.unplaced.append(raw)
        else:
            out.unplaced.append(raw)
    for name, parts in qkv.items():
        if any(p is None for p in parts):
            out.unplaced.append(name + " (incomplete q/k/v)")
        else:
            out.state[name] = torch.cat(parts, dim=0)  # timm's fused qkv: rows [q; k; v]
    if not any("hidden_states_norms" in k for k in state):
        out.fresh["norm"] = OUTPUT_NORMS
    return out


def to_ours(state: dict[str, torch.Tensor]) -> tuple[str, Converted]:
    kind = layout(state.keys())
    convert = {"hf": hf_to_ours, "official": official_to_ours, "timm": timm_to_ours}[kind]
    return kind, convert(state)
