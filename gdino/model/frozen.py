"""Frozen parts left out of checkpoints, and the record that lets a loader put them back.

A frozen pretrained text encoder (`train.freeze: [bert]`) never changes during training, so saving it in
every trial checkpoint only costs disk (MiniLM: 91 MB, BERT-base: 440 MB per checkpoint). A checkpoint
that leaves it out carries, under `OMITTED_KEY`, where it came from:

    {"gdino_omitted": {"text_encoder": {"prefixes": ["detector.model.text_backbone."],
                                        "source": "<model.text_encoder_type>",
                                        "fingerprint": "<sha256 hex of the module's state dict>"}}}

A loader rebuilds each part from `source`, checks `fingerprint` and refuses the checkpoint when they
differ. Prefixes use the network's own names (`GroundingDinoNet.state_dict()`); Lightning checkpoints add
`net.` in front, which `strip_omitted` accepts too.

A part is left out only when it is frozen *and* equal to what its source rebuilds (so a text encoder that
came from `train.pretrained_model_path` and differs from `text_encoder_type`'s weights is kept).
"""
from __future__ import annotations

import functools
import hashlib
import logging
from typing import Any, Mapping

import torch
from torch import nn

log = logging.getLogger(__name__)

OMITTED_KEY = "gdino_omitted"
TEXT_ENCODER = "text_encoder"
TEXT_ENCODER_PREFIX = "detector.model.text_backbone."
LIGHTNING_PREFIX = "net."  # GroundingDinoModule keeps the network as `self.net`


def state_fingerprint(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the sorted (name, shape, dtype, raw bytes) of a state dict."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
        # raw bytes without a copy; a uint8 view also covers dtypes numpy lacks (bfloat16)
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def module_fingerprint(module: nn.Module) -> str:
    """`state_fingerprint` of the module's own state dict (names relative to the module)."""
    return state_fingerprint(module.state_dict())


@functools.lru_cache(maxsize=4)
def source_fingerprint(text_encoder_type: str) -> str | None:
    """The fingerprint of the text encoder `text_encoder_type` builds, or None when it has no pretrained
    weights (a random encoder cannot be rebuilt, so it is never left out). Cached: one load per process."""
    from transformers import BertModel

    from gdino.model.text import load_text_config, load_text_encoder_weights

    model = BertModel(load_text_config(text_encoder_type), add_pooling_layer=False)
    if not load_text_encoder_weights(model, text_encoder_type):
        return None
    return module_fingerprint(model)


def _text_encoder_type(cfg: Any) -> str:
    model = cfg.model if hasattr(cfg, "model") else cfg.get("model", cfg)
    value = model.get("text_encoder_type") if isinstance(model, dict) else model.text_encoder_type
    return str(value)


def _is_frozen(module: nn.Module) -> bool:
    params = list(module.parameters())
    return bool(params) and not any(p.requires_grad for p in params)


def omitted_parts(net: nn.Module, cfg: Any) -> dict[str, dict[str, Any]]:
    """The record of the parts a checkpoint of `net` leaves out (empty when nothing can be left out).

    `net` is a GroundingDinoNet whose freezing is applied (parameters' requires_grad); `cfg` is the
    ExperimentConfig (or its spec dict) the network was built from."""
    text = getattr(net, "text_backbone", None)
    if not isinstance(text, nn.Module) or not _is_frozen(text):
        return {}
    source = _text_encoder_type(cfg)
    fingerprint = module_fingerprint(text)
    expected = source_fingerprint(source)
    if fingerprint != expected:
        log.info("the frozen text encoder differs from %s's weights (from train.pretrained_model_path?): "
                 "checkpoints keep it", source)
        return {}
    return {TEXT_ENCODER: {"prefixes": [TEXT_ENCODER_PREFIX], "source": source, "fingerprint": fingerprint}}


def is_omitted(key: str, omitted: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether state-dict `key` (network or Lightning naming) belongs to an omitted part."""
    name = key.removeprefix(LIGHTNING_PREFIX)
    return any(name.startswith(prefix) for part in omitted.values() for prefix in part["prefixes"])


def strip_omitted(state: Mapping[str, Any], omitted: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """`state` without the tensors of the omitted parts."""
    return {k: v for k, v in state.items() if not is_omitted(k, omitted)}


def omitted_bytes(state: Mapping[str, Any], omitted: Mapping[str, Mapping[str, Any]]) -> int:
    """Bytes the omitted parts would take in `state` (for the log line and the footprint bench)."""
    return sum(v.numel() * v.element_size() for k, v in state.items()
               if isinstance(v, torch.Tensor) and is_omitted(k, omitted))


def restore_omitted(net: nn.Module, omitted: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """Rebuild each omitted part of `net` from its recorded source and check its fingerprint; returns the
    tensors restored per part. A loader calls this for a checkpoint that carries `OMITTED_KEY`.

    Raises CheckpointError when a part is unknown, its source has no weights, or the rebuilt part differs
    from the one the checkpoint was trained with."""
    from gdino.errors import CheckpointError
    from gdino.model.text import load_text_encoder_weights

    restored: dict[str, int] = {}
    for part, entry in omitted.items():
        if part != TEXT_ENCODER or list(entry.get("prefixes", [])) != [TEXT_ENCODER_PREFIX]:
            raise CheckpointError(f"the checkpoint left out an unknown part {part!r} ({entry.get('prefixes')})",
                                  hint="load it with the version of gdino-automl that wrote it")
        text = net.get_submodule(TEXT_ENCODER_PREFIX.removesuffix("."))
        source = str(entry["source"])
        if module_fingerprint(text) != entry["fingerprint"]:  # already equal when built with its weights
            if not load_text_encoder_weights(text, source):
                raise CheckpointError(f"the checkpoint left out its frozen text encoder, and {source!r} has no "
                                      "weights here to rebuild it from",
                                      hint="install the text encoder's weights (model.text_encoder_type)")
            if module_fingerprint(text) != entry["fingerprint"]:
                raise CheckpointError(f"the checkpoint left out its frozen text encoder ({source!r}), but the "
                                      "one built here differs from the one it was trained with",
                                      hint="use the text encoder weights the checkpoint was trained with")
        restored[part] = len(text.state_dict())
    return restored
