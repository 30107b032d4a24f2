"""Loading weights into GroundingDinoNet: the entry points the engine, export and promotion use.

The work is done by gdino.model.checkpoints (families detected by tensor names, converted by name, loaded
completely or refused with a CheckpointError; `model.allow_partial_load` turns that into a warning).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import torch

from gdino.model.checkpoints import LoadReport, load_checkpoint, read_checkpoint
from gdino.model.checkpoints.reading import load_object, resolve_file

if TYPE_CHECKING:
    from gdino.config import ExperimentConfig
    from gdino.model.network import GroundingDinoNet

log = logging.getLogger(__name__)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The flat tensors of a .ckpt/.pth/.bin/.safetensors file or an HF model folder (read weights-only)."""
    return read_checkpoint(path).state


def load_weights(net: torch.nn.Module, path: str | Path, *, what: str = "train.pretrained_model_path",
                 allow_partial: Optional[bool] = None) -> LoadReport:
    """Load checkpoint `path` (any supported family) into `net`; logs the load table and returns it.

    `allow_partial` defaults to the network's `model.allow_partial_load` (set by build_network)."""
    if allow_partial is None:
        allow_partial = bool(getattr(net, "allow_partial_load", False))
    return load_checkpoint(net, path, what=what, allow_partial=allow_partial)


def checkpoint_model_config(path: str | Path) -> dict | None:
    """The `model` section saved in one of our Lightning checkpoints, if any (read weights-only)."""
    try:
        ckpt = load_object(resolve_file(path))
    except Exception:  # noqa: BLE001 - no readable config: the caller uses the spec's own
        return None
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    spec = (hparams or {}).get("spec") if isinstance(hparams, dict) else None
    return spec.get("model") if isinstance(spec, dict) else None


def load_network(cfg: ExperimentConfig, checkpoint: str | Path, *, what: str = "checkpoint") -> GroundingDinoNet:
    """`cfg.model`'s network with `checkpoint`'s weights, in eval mode (used by evaluate, inference, export).

    The text encoder is built from its source first, so a checkpoint that left it out (gdino_omitted) can
    be checked against it; every other tensor must come from the checkpoint."""
    from gdino.model.network import build_network

    net = build_network(cfg.model, load_pretrained=False, load_text_encoder=True)
    load_weights(net, checkpoint, what=what)
    return net.eval()
