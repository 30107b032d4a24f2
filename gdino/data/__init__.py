"""Data: ODVG / COCO / raw images (local, fsspec URIs, `images.tar.gz`), TAO captions and augmentation.

Public API (docs/ARCHITECTURE.md): `build_dataset(cfg, split)`, `collate_fn(batch)`.
Importing this package stays light; torch is imported on first use.
"""
from __future__ import annotations

from typing import Any

__all__ = ["build_dataset", "collate_fn"]


def build_dataset(cfg: Any, split: str, **kwargs: Any):
    from gdino.data.build import build_dataset as _build

    return _build(cfg, split, **kwargs)


def collate_fn(batch):
    from gdino.data.datasets import collate_fn as _collate

    return _collate(batch)
