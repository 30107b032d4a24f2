"""TAO's Deformable-DETR augmentation, driven by `dataset.augmentation`, deterministic given an rng.

train: flip(p) -> one of {resize to `scales` | resize to `train_random_resize` -> random crop
       [train_random_crop_min, train_random_crop_max] -> resize to `scales`} (longer side capped at
       `random_resize_max_size`) -> normalise -> fixed padding (when `fixed_padding`).
eval:  resize to `test_random_resize` (capped at `random_resize_max_size`) -> normalise.
Boxes are xyxy pixels until the end, then normalised cxcywh relative to the unpadded image.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class AugmentationSettings:
    scales: tuple[int, ...] = (480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800)
    input_mean: tuple[float, ...] = IMAGENET_MEAN
    input_std: tuple[float, ...] = IMAGENET_STD
    train_random_resize: tuple[int, ...] = (400, 500, 600)
    horizontal_flip_prob: float = 0.5
    train_random_crop_min: int = 384
    train_random_crop_max: int = 600
    random_resize_max_size: int = 1333
    test_random_resize: int = 800
    fixed_padding: bool = True

    @classmethod
    def from_config(cls, augmentation: Any) -> "AugmentationSettings":
        """From `cfg.dataset.augmentation` (pydantic model or dict); unknown/None fields keep TAO defaults."""
        if augmentation is None:
            return cls()
        get = augmentation.get if isinstance(augmentation, dict) else (lambda k, d=None: getattr(augmentation, k, d))
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            value = get(name, None)
            if value is not None:
                values[name] = tuple(value) if isinstance(value, (list, tuple)) else value
        return cls(**values)


@dataclass
class Sample:
    image: Image.Image
    boxes: np.ndarray  # [N, 4] xyxy pixels
    labels: np.ndarray  # [N] int


def hflip(s: Sample) -> Sample:
    w = s.image.width
    boxes = s.boxes.copy()
    if len(boxes):
        boxes[:, [0, 2]] = w - s.boxes[:, [2, 0]]
    return Sample(s.image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), boxes, s.labels)


def resized_hw(h: int, w: int, size: int, max_size: int | None) -> tuple[int, int]:
    """Shorter side -> size, unless the longer side would exceed max_size (DETR's rule)."""
    short, long = min(h, w), max(h, w)
    if max_size is not None and long / short * size > max_size:
        size = int(round(max_size * short / long))
    if w <= h:
        return int(round(size * h / w)), size
    return size, int(round(size * w / h))


def resize(s: Sample, size: int, max_size: int | None) -> Sample:
    h, w = s.image.height, s.image.width
    nh, nw = resized_hw(h, w, size, max_size)
    image = s.image.resize((nw, nh), Image.Resampling.BILINEAR)
    scale = np.array([nw / w, nh / h, nw / w, nh / h], dtype=np.float32)
    return Sample(image, s.boxes * scale, s.labels)


def crop(s: Sample, top: int, left: int, height: int, width: int) -> Sample:
    image = s.image.crop((left, top, left + width, top + height))
    boxes = s.boxes - np.array([left, top, left, top], dtype=np.float32)
    boxes = np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return Sample(image, boxes[keep], s.labels[keep])


def random_size_crop(s: Sample, min_size: int, max_size: int, rng: np.random.Generator) -> Sample:
    w_hi, h_hi = min(s.image.width, max_size), min(s.image.height, max_size)
    w = int(rng.integers(min(min_size, w_hi), w_hi + 1))
    h = int(rng.integers(min(min_size, h_hi), h_hi + 1))
    top = int(rng.integers(0, s.image.height - h + 1))
    left = int(rng.integers(0, s.image.width - w + 1))
    return crop(s, top, left, h, w)


def train_augment(s: Sample, aug: AugmentationSettings, rng: np.random.Generator) -> Sample:
    if rng.random() < aug.horizontal_flip_prob:
        s = hflip(s)
    if rng.random() < 0.5:
        return resize(s, int(rng.choice(aug.scales)), aug.random_resize_max_size)
    s = resize(s, int(rng.choice(aug.train_random_resize)), None)
    s = random_size_crop(s, aug.train_random_crop_min, aug.train_random_crop_max, rng)
    return resize(s, int(rng.choice(aug.scales)), aug.random_resize_max_size)


def eval_resize(s: Sample, aug: AugmentationSettings) -> Sample:
    return resize(s, aug.test_random_resize, aug.random_resize_max_size)


def to_tensors(s: Sample, aug: AugmentationSettings) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> (normalised image [3,H,W], boxes cxcywh normalised by (W,H), labels)."""
    array = np.asarray(s.image.convert("RGB"), dtype=np.float32) / 255.0
    image = torch.from_numpy(array).permute(2, 0, 1)
    mean = torch.tensor(aug.input_mean, dtype=torch.float32)[:, None, None]
    std = torch.tensor(aug.input_std, dtype=torch.float32)[:, None, None]
    image = (image - mean) / std
    h, w = image.shape[-2:]
    boxes = torch.as_tensor(s.boxes, dtype=torch.float32).reshape(-1, 4)
    cxcywh = torch.stack([(boxes[:, 0] + boxes[:, 2]) / 2 / w, (boxes[:, 1] + boxes[:, 3]) / 2 / h,
                          (boxes[:, 2] - boxes[:, 0]) / w, (boxes[:, 3] - boxes[:, 1]) / h], dim=-1)
    return image, cxcywh, torch.as_tensor(s.labels, dtype=torch.long).reshape(-1)


def fixed_pad(image: torch.Tensor, aug: AugmentationSettings) -> torch.Tensor:
    """Pad bottom/right to (max(scales), random_resize_max_size) so every batch has one shape.

    Never crops: a dimension already larger stays as it is (portrait images).
    """
    h, w = image.shape[-2:]
    target_h = max(h, max(aug.scales))
    target_w = max(w, aug.random_resize_max_size)
    if (target_h, target_w) == (h, w):
        return image
    return torch.nn.functional.pad(image, (0, target_w - w, 0, target_h - h))


def clamp_boxes(boxes: Sequence[Sequence[float]], width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Clamp xyxy boxes to the image; returns (boxes, keep-mask of the non-degenerate ones)."""
    array = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    array = np.clip(array, 0, [width, height, width, height]).astype(np.float32)
    keep = (array[:, 2] > array[:, 0]) & (array[:, 3] > array[:, 1])
    return array, keep
