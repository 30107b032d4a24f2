"""Reading checkpoint files safely: `torch.load(weights_only=True)`, safetensors, HF model folders.

Checkpoints are untrusted input: unpickling may run arbitrary code, so only tensors, plain containers and
the few classes our own Lightning checkpoints hold (`SAFE_GLOBALS`) are allowed. A pickle that needs any
other code is refused with a CheckpointError that names the class it asked for.
"""
from __future__ import annotations

import collections
import pathlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gdino.errors import CheckpointError

HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# Wrappers around the state dict: Lightning's "state_dict" (ours, TAO's .ckpt), IDEA's/Open-GroundingDino's
# "model" (groundingdino_swint_ogc.pth), Microsoft's Swin release ("model"), some exports' "module".
WRAPPER_KEYS = ("state_dict", "model", "module")

# What our own Lightning checkpoints hold besides tensors and plain containers (found by loading them):
# the MultiStepLR state's milestones Counter and paths in callback states.
SAFE_GLOBALS: tuple[Any, ...] = (collections.Counter, collections.defaultdict, collections.OrderedDict,
                                 pathlib.PosixPath, pathlib.PurePosixPath, pathlib.WindowsPath,
                                 pathlib.PureWindowsPath)


@dataclass
class Checkpoint:
    """A flat state dict plus the metadata around it (e.g. `gdino_omitted`, `hyper_parameters`)."""

    path: str
    state: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)


def resolve_file(path: str | Path) -> Path:
    """The weights file for `path` (a file, or an HF `save_pretrained` folder)."""
    file = Path(path)
    if file.is_dir():
        found = [file / name for name in HF_WEIGHT_FILES if (file / name).is_file()]
        if not found:
            raise CheckpointError(f"{path} holds no {' or '.join(HF_WEIGHT_FILES)}",
                                  hint="give a checkpoint file or an HF save_pretrained folder")
        return found[0]
    if not file.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist",
                              hint="check the path (results_dir holds model_epoch_*.pth files after training)")
    return file


def load_object(file: Path) -> Any:
    """The unpickled (weights-only) or safetensors content of `file`."""
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(file))
        except Exception as exc:  # noqa: BLE001 - an unreadable file is the user's to fix
            raise CheckpointError(f"cannot read {file}: {exc}") from exc
    try:
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            return torch.load(str(file), map_location="cpu", weights_only=True)
    except pickle_error_types() as exc:
        wanted = re.search(r"GLOBAL ([\w.]+)", str(exc))
        raise CheckpointError(
            f"refused to read {file}: it needs code outside the allowed checkpoint contents "
            f"({wanted.group(1) if wanted else _first_line(exc)})",
            hint="checkpoints are loaded with torch.load(weights_only=True); re-save the model's state_dict "
                 "(torch.save(model.state_dict(), path)) or convert it to .safetensors") from exc
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"cannot read checkpoint {file}: {_first_line(exc)}") from exc


def pickle_error_types() -> tuple[type[BaseException], ...]:
    import pickle

    return (pickle.UnpicklingError,)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def unwrap(obj: Any, path: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors of the innermost state dict and the metadata of the outer dict."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} does not hold a state dict (found {type(obj).__name__})")
    meta = {k: v for k, v in obj.items() if not isinstance(v, torch.Tensor) and k not in WRAPPER_KEYS}
    state = obj
    for _ in range(3):  # e.g. {"model": {"state_dict": ...}}
        inner = next((state[k] for k in WRAPPER_KEYS if isinstance(state.get(k), dict)), None)
        if inner is None:
            break
        state = inner
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path} holds no tensors", hint="is it a model checkpoint?")
    return tensors, meta


def read_checkpoint(path: str | Path) -> Checkpoint:
    file = resolve_file(path)
    state, meta = unwrap(load_object(file), str(path))
    return Checkpoint(str(path), state, meta)
