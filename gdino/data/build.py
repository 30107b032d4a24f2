"""`build_dataset(cfg, split)`: the configured data sources -> a torch Dataset (docs/ARCHITECTURE.md).

Annotation problems are collected and raised together as one DatasetError before any image is read;
`gdino.data.check` reports the same problems (plus image-level ones) without raising.
"""
from __future__ import annotations

from typing import Any

import torch

from gdino.data import sources
from gdino.data.annotations import load_coco, load_odvg, raise_on_errors
from gdino.data.captions import token_counter
from gdino.data.datasets import CocoDataset, InferenceDataset, OdvgDataset, list_images
from gdino.data.transforms import AugmentationSettings
from gdino.errors import DatasetError, UnsupportedError

SPLITS = ("train", "val", "test", "infer")
EVAL_SOURCE_KEY = {"val": "val_data_sources", "test": "test_data_sources"}


def get(obj: Any, name: str, default: Any = None) -> Any:
    """Field access that works on the pydantic config and on plain dicts (tests, hand-built specs)."""
    if obj is None:
        return default
    value = obj.get(name, default) if isinstance(obj, dict) else getattr(obj, name, default)
    return default if value is None else value


def build_dataset(cfg: Any, split: str, *, seed: int | None = None) -> torch.utils.data.Dataset:
    """train -> ODVG sources (concatenated); val/test -> the COCO source; infer -> raw images + captions."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    dataset_cfg = get(cfg, "dataset")
    augmentation = AugmentationSettings.from_config(get(dataset_cfg, "augmentation"))
    if split == "infer":
        return _build_infer(dataset_cfg, augmentation)
    model_cfg = get(cfg, "model")
    max_text_len = int(get(model_cfg, "max_text_len", 256))
    counter = token_counter(get(model_cfg, "text_encoder_type", None))
    if split == "train":
        return _build_train(dataset_cfg, augmentation, counter, max_text_len, seed)
    return _build_eval(dataset_cfg, split, augmentation, counter, max_text_len)


def _build_train(dataset_cfg: Any, augmentation, counter, max_text_len: int, seed: int | None):
    train_sources = [s for s in get(dataset_cfg, "train_data_sources", []) if get(s, "json_file")]
    if not train_sources:
        raise DatasetError("dataset.train_data_sources is empty",
                           hint="add {image_dir, json_file, label_map} entries (ODVG jsonl)")
    parts = []
    for i, src in enumerate(train_sources):
        odvg = load_odvg(get(src, "json_file"), get(src, "label_map") or None)
        raise_on_errors(odvg.issues, f"dataset.train_data_sources[{i}]")
        image_root = sources.resolve_images_for(get(src, "image_dir"), [r.file_name for r in odvg.records])
        parts.append(OdvgDataset(odvg, image_root, augmentation, counter,
                                 max_labels=int(get(dataset_cfg, "max_labels", 50)),
                                 max_text_len=max_text_len, train=True, seed=seed))
    return parts[0] if len(parts) == 1 else torch.utils.data.ConcatDataset(parts)


def _build_eval(dataset_cfg: Any, split: str, augmentation, counter, max_text_len: int) -> CocoDataset:
    key = EVAL_SOURCE_KEY[split]
    src = get(dataset_cfg, key)
    if isinstance(src, (list, tuple)):
        if len(src) != 1:
            raise UnsupportedError(f"dataset.{key} must be one COCO source, got {len(src)}",
                                   hint="merge the annotation files into one COCO json")
        src = src[0]
    if not get(src, "json_file"):
        raise DatasetError(f"dataset.{key}.json_file is not set", hint="point it at a COCO annotations.json")
    coco = load_coco(get(src, "json_file"))
    raise_on_errors(coco.issues, f"dataset.{key}")
    image_root = sources.resolve_images_for(get(src, "image_dir"), [r.file_name for r in coco.records])
    return CocoDataset(coco, image_root, augmentation, counter, max_text_len)


def _build_infer(dataset_cfg: Any, augmentation) -> InferenceDataset:
    src = get(dataset_cfg, "infer_data_sources")
    image_dirs = get(src, "image_dir", [])
    image_dirs = [image_dirs] if isinstance(image_dirs, str) else [d for d in image_dirs if d]
    paths = [p for d in image_dirs for p in list_images(sources.resolve_image_dir(d))]
    captions = [c for c in get(src, "captions", []) if c]
    if not captions and get(src, "classmap"):  # the skill bank's form: one class name per line of label_map.txt
        captions = sources.read_text_lines(get(src, "classmap"))
    return InferenceDataset(paths, infer_phrases(captions), augmentation)


def infer_phrases(captions: list[str] | str) -> list[str]:
    """`["red circle", "blue square . cat"]` -> unique phrases; " . " inside one caption separates phrases."""
    captions = [captions] if isinstance(captions, str) else list(captions)
    phrases = [p.strip() for c in captions for p in str(c).split(".")]
    return list(dict.fromkeys(p for p in phrases if p))
