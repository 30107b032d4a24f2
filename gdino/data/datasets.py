"""Torch datasets and the collate function: the data -> model contract of docs/ARCHITECTURE.md.

A sample is `{"image": FloatTensor[3,H,W] (normalised), "target": {...}}`, target keys:
`boxes` [N,4] normalised cxcywh (relative to the unpadded image), `labels` [N] index into `phrases`,
`phrases` (caption order), `caption`, `image_id`, `orig_size` (h, w), `size` (h, w); COCO splits add
`category_ids` (phrase index -> COCO id); inference samples add `file_name` (the image path).
A batch is `{"images": [B,3,H,W], "pixel_mask": [B,H,W] bool (True = real pixel), "targets": [...]}`.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from gdino.data.annotations import CocoSource, ImageRecord, OdvgSource
from gdino.data.captions import (TokenCounter, build_od_caption, build_vg_caption, fit_caption,
                                 join_caption)
from gdino.data.transforms import (AugmentationSettings, Sample, clamp_boxes, eval_resize, fixed_pad,
                                   to_tensors, train_augment)
from gdino.errors import DatasetError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def load_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError as exc:
        raise DatasetError(f"image not found: {path}", hint="check image_dir and the file names") from exc
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DatasetError(f"cannot decode image {path}: {exc}", hint="re-encode or remove the file") from exc


class _SeededDataset(torch.utils.data.Dataset):
    """Per-sample randomness from (seed, epoch, index) when a seed is set, else from torch's RNG.

    torch's RNG is what Lightning's `seed_everything(workers=True)` seeds in every loader worker, so
    both ways are reproducible under a seed; the explicit one also does not depend on worker count.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _rng(self, index: int) -> np.random.Generator:
        if self.seed is not None:
            return np.random.default_rng([self.seed, self.epoch, index])
        return np.random.default_rng([index, int(torch.randint(0, 2**31 - 1, ()).item())])


class OdvgDataset(_SeededDataset):
    """Training data from one ODVG source: TAO's OD mode (label map) or VG mode (grounding lines)."""

    def __init__(self, source: OdvgSource, image_root: Path, augmentation: AugmentationSettings,
                 counter: TokenCounter, max_labels: int, max_text_len: int, train: bool = True,
                 seed: int | None = None) -> None:
        super().__init__(seed)
        self.records = source.records
        self.vocabulary = (list(dict.fromkeys(source.label_map[k] for k in sorted(source.label_map)))
                           if source.label_map else
                           list(dict.fromkeys(p for r in source.records if r.mode == "od" for p in r.phrases)))
        self.image_root = Path(image_root)
        self.augmentation = augmentation
        self.counter = counter
        self.max_labels = max_labels
        self.max_text_len = max_text_len
        self.train = train

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        rng = self._rng(index)
        image = load_image(self.image_root / record.file_name)
        boxes, keep = clamp_boxes(record.boxes, image.width, image.height)
        box_phrases = [p for p, k in zip(record.phrases, keep) if k]
        boxes = boxes[keep]
        if record.mode == "vg":
            caption = build_vg_caption(box_phrases, rng, self.counter, self.max_text_len)
        else:
            caption = build_od_caption(box_phrases, self.vocabulary, self.max_labels, rng, self.counter,
                                       self.max_text_len)
        index_of = {p: i for i, p in enumerate(caption.phrases)}
        has_tokens = np.array([p in index_of for p in box_phrases], dtype=bool)
        labels = np.array([index_of[p] for p in box_phrases if p in index_of], dtype=np.int64)
        orig = (image.height, image.width)
        sample = Sample(image, boxes[has_tokens], labels)
        sample = train_augment(sample, self.augmentation, rng) if self.train else eval_resize(sample, self.augmentation)
        return _to_item(sample, self.augmentation, caption.phrases, record, pad=self.train, orig=orig)


class CocoDataset(_SeededDataset):
    """Validation / test data: caption = every category name in id order; label = phrase index."""

    def __init__(self, source: CocoSource, image_root: Path, augmentation: AugmentationSettings,
                 counter: TokenCounter, max_text_len: int) -> None:
        super().__init__(None)
        self.records = source.records
        self.coco_gt = source.coco
        self.category_ids = source.category_ids
        self.category_names = source.category_names
        self.image_root = Path(image_root)
        self.augmentation = augmentation
        fitted = fit_caption(list(self.category_names), set(self.category_names), counter, max_text_len)
        if fitted.dropped_positives:
            log.warning("the evaluation caption (all %d category names) is over max_text_len=%d tokens: categories "
                        "%s cannot be detected", len(self.category_names), max_text_len, fitted.dropped_positives)
        self.phrases = list(self.category_names)
        self._index_of = {name: i for i, name in enumerate(self.phrases)}

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        image = load_image(self.image_root / record.file_name)
        boxes, keep = clamp_boxes(record.boxes, image.width, image.height)
        labels = np.array([self._index_of[p] for p, k in zip(record.phrases, keep) if k], dtype=np.int64)
        orig = (image.height, image.width)
        sample = eval_resize(Sample(image, boxes[keep], labels), self.augmentation)
        item = _to_item(sample, self.augmentation, self.phrases, record, pad=False, orig=orig)
        item["target"]["category_ids"] = list(self.category_ids)
        return item


class InferenceDataset(torch.utils.data.Dataset):
    """Raw images (folders or archives) with one shared list of phrases (`infer_data_sources.captions`)."""

    def __init__(self, image_paths: Sequence[Path], phrases: Sequence[str],
                 augmentation: AugmentationSettings) -> None:
        if not image_paths:
            raise DatasetError("no images found in dataset.infer_data_sources.image_dir",
                               hint=f"expected files ending in {', '.join(IMAGE_SUFFIXES)}")
        if not phrases:
            raise DatasetError("dataset.infer_data_sources.captions is empty", hint='e.g. captions: ["red circle"]')
        self.image_paths = list(image_paths)
        self.phrases = list(phrases)
        self.augmentation = augmentation

    def __len__(self) -> int:
        return len(self.image_paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.image_paths[index]
        image = load_image(path)
        record = ImageRecord(file_name=str(path), image_id=index, height=image.height, width=image.width)
        sample = eval_resize(Sample(image, np.zeros((0, 4), np.float32), np.zeros((0,), np.int64)),
                             self.augmentation)
        item = _to_item(sample, self.augmentation, self.phrases, record, pad=False, orig=(image.height, image.width))
        item["target"]["file_name"] = str(path)
        return item


def _to_item(sample: Sample, aug: AugmentationSettings, phrases: list[str], record: ImageRecord, *,
             pad: bool, orig: tuple[int, int]) -> dict[str, Any]:
    image, boxes, labels = to_tensors(sample, aug)
    size = (int(image.shape[-2]), int(image.shape[-1]))
    if pad and aug.fixed_padding:
        image = fixed_pad(image, aug)
    orig_size = orig  # the decoded image's (h, w): postprocessing scales boxes back to it
    return {"image": image, "target": {
        "boxes": boxes, "labels": labels, "phrases": list(phrases), "caption": join_caption(phrases),
        "image_id": int(record.image_id), "orig_size": (int(orig_size[0]), int(orig_size[1])), "size": size,
    }}


def collate_fn(batch: Sequence[dict[str, Any]], size_divisibility: int = 1) -> dict[str, Any]:
    """Pad to the largest image in the batch, rounded up to a multiple of `size_divisibility` (IDEA/TAO's
    NestedTensor batching); pixel_mask is True over each image's real `size`. The network pads again to what
    its backbone needs (GroundingDinoNet.size_divisibility), so any size works whatever this is given."""
    multiple = max(1, int(size_divisibility))
    height = -(-max(item["image"].shape[-2] for item in batch) // multiple) * multiple
    width = -(-max(item["image"].shape[-1] for item in batch) // multiple) * multiple
    images = torch.zeros(len(batch), 3, height, width, dtype=batch[0]["image"].dtype)
    pixel_mask = torch.zeros(len(batch), height, width, dtype=torch.bool)
    for i, item in enumerate(batch):
        c, h, w = item["image"].shape
        images[i, :, :h, :w] = item["image"]
        real_h, real_w = item["target"]["size"]
        pixel_mask[i, :real_h, :real_w] = True
    return {"images": images, "pixel_mask": pixel_mask, "targets": [item["target"] for item in batch]}


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
