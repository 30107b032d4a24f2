"""Checkpoints of other families rebuilt from key/shape fixtures (names and shapes taken from the reference
implementations, never produced by inverting our own mapping), with seeded values."""
from __future__ import annotations

import json
from pathlib import Path

import torch

FIXTURES = Path(__file__).parent / "fixtures"
SEED = 20261202


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def seeded_state(entries: list[list], seed: int = SEED, tied: list[list[str]] = ()) -> dict[str, torch.Tensor]:
    """A state dict with the fixture's names, shapes and dtypes: small normal values (norm weights near 1),
    drawn in fixture order from one seeded generator, so the same fixture gives the same tensors anywhere.
    Names in one `tied` group are one tensor in the reference model (IDEA's shared box head), so they get
    the first name's value, as in a real checkpoint."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape, dtype in entries:
        if dtype.startswith("torch.int"):
            state[name] = torch.zeros(shape, dtype=getattr(torch, dtype.removeprefix("torch.")))
            continue
        value = torch.randn(shape, generator=generator) * 0.02
        leaf = name.rsplit(".", 2)
        if name.endswith(".weight") and ("norm" in leaf[-2].lower()):
            value = value + 1.0
        state[name] = value
    for group in tied:
        for name in group[1:]:
            state[name] = state[group[0]]
    return state


def fixture_state(name: str) -> dict[str, torch.Tensor]:
    """`seeded_state` of a key fixture (with its tied groups)."""
    data = fixture(name)
    return seeded_state(data["entries"], data.get("seed", SEED), data.get("tied", []))


def tao_names(idea_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """IDEA names -> TAO's, as TAO's own converter does (nvidia_tao_pytorch/cv/grounding_dino/model/utils.py
    `grounding_dino_parser`: `model.model.` in front, `backbone.0` -> `backbone.0.body`; it drops
    `bert.embeddings.position_ids` and `label_enc.weight`), wrapped as TAO's Lightning checkpoint."""
    out = {}
    for key, value in idea_state.items():
        if key == "bert.embeddings.position_ids" or "label_enc.weight" in key:
            continue
        if key.startswith("backbone.0"):
            key = key.replace("backbone.0", "backbone.0.body", 1)
        out[f"model.model.{key}"] = value
    return out
