"""A checkpoint family: how to recognise its key names and turn them into our network's names."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Collection

import torch
from torch import nn


@dataclass
class Converted:
    """A checkpoint in network names, plus what the family knowingly does not place.

    `ignored`: source tensors not needed by design (recomputed buffers, a classifier head, BERT's pooler)
    -> why. `unplaced`: source tensors this family has no place for (reported as left over).
    `fresh`: network-name prefixes this family's checkpoints never contain -> why (e.g. Swin's per-level
    output norms are not in ImageNet checkpoints; TAO/IDEA also start them fresh)."""

    state: dict[str, torch.Tensor] = field(default_factory=dict)
    ignored: dict[str, str] = field(default_factory=dict)
    unplaced: list[str] = field(default_factory=list)
    fresh: dict[str, str] = field(default_factory=dict)

    def merge(self, other: "Converted", prefix: str = "") -> None:
        self.state.update({prefix + k: v for k, v in other.state.items()})
        self.ignored.update(other.ignored)
        self.unplaced.extend(other.unplaced)
        self.fresh.update({prefix + k: v for k, v in other.fresh.items()})


class Family(ABC):
    """One checkpoint layout. `detect` looks at key names only; `to_network` renames (and splits/fuses)."""

    name: str = ""

    @abstractmethod
    def detect(self, keys: Collection[str]) -> bool:
        """True when `keys` are this family's."""

    @abstractmethod
    def to_network(self, state: dict[str, torch.Tensor], net: nn.Module) -> Converted:
        """`state` in the names of `net` (a GroundingDinoNet, or a backbone for backbone families)."""


def strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Remove `prefix` where present (e.g. DDP's `module.`)."""
    return {k.removeprefix(prefix): v for k, v in state.items()}


def all_start_with(keys: Collection[str], prefix: str) -> bool:
    return bool(keys) and all(k.startswith(prefix) for k in keys)
