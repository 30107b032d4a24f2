"""Loading weights into GroundingDinoNet: our checkpoints, Lightning checkpoints and HF-format weights.

Tensors that do not exist in the network or whose shape differs are skipped with one warning that
lists them (TAO's `pretrained_model_path` behaviour).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from gdino.errors import CheckpointError

log = logging.getLogger(__name__)

HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A flat state dict from a .ckpt/.pth/.bin/.safetensors file or an HF model folder."""
    file = Path(path)
    if file.is_dir():
        found = [file / name for name in HF_WEIGHT_FILES if (file / name).is_file()]
        if not found:
            raise CheckpointError(f"{path} holds no {' or '.join(HF_WEIGHT_FILES)}")
        file = found[0]
    if not file.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist", hint="check the path (results_dir holds "
                              "model_epoch_*.pth files after training)")
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(file))
        else:
            state = torch.load(str(file), map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - an unreadable file is the user's to fix
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a state dict")
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def to_network_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Lightning ("net.detector...") and HF ("model...", "bbox_embed...") names -> GroundingDinoNet names."""
    out = {}
    for key, value in state.items():
        key = key.removeprefix("net.")
        if not key.startswith("detector."):
            key = "detector." + key
        out[key] = value
    return out


def load_weights(net: torch.nn.Module, path: str | Path, *, what: str = "pretrained_model_path") -> list[str]:
    """Load what fits; returns the skipped names (also logged)."""
    state = to_network_keys(read_state_dict(path))
    own = net.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise CheckpointError(f"{what}: no tensor of {path} fits the configured network",
                              hint="is the checkpoint from a network with the same model.* settings?")
    skipped = sorted(set(state) - set(usable))
    net.load_state_dict(usable, strict=False)
    if skipped:
        details = ", ".join(f"{k} {tuple(state[k].shape)}" + (f" vs {tuple(own[k].shape)}" if k in own else " absent")
                            for k in skipped[:20])
        log.warning("%s %s: skipped %d mismatched or unknown tensors: %s%s", what, path, len(skipped), details,
                    " ..." if len(skipped) > 20 else "")
    missing = sorted(set(own) - set(usable))
    if missing:
        log.info("%s %s: %d network tensors not in the file keep their initial values", what, path, len(missing))
    return skipped


def checkpoint_model_config(path: str | Path) -> dict | None:
    """The `model` section saved in one of our Lightning checkpoints, if any."""
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception:  # noqa: BLE001
        return None
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    spec = (hparams or {}).get("spec") if isinstance(hparams, dict) else None
    return spec.get("model") if isinstance(spec, dict) else None


def load_network(cfg: Any, checkpoint: str | Path):
    """`cfg.model`'s network with `checkpoint`'s weights, in eval mode (used by evaluate, inference, export)."""
    from gdino.model.network import build_network

    model_cfg = cfg.model if hasattr(cfg, "model") else cfg["model"]
    net = build_network(model_cfg, load_pretrained=False)
    load_weights(net, checkpoint, what="checkpoint")
    return net.eval()
