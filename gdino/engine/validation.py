"""Validation results across processes: one result list per image, whatever the sampler repeated.

Kept free of Lightning and transformers so that a process group can use it cheaply.
"""
from __future__ import annotations

import torch


def merge_per_image(parts: list[dict[int, list[dict]]]) -> list[dict]:
    """One result list per image_id, first one kept: under DDP the DistributedSampler pads the last batches by
    repeating images, and a repeated image's detections counted twice would be false positives in COCOeval."""
    merged: dict[int, list[dict]] = {}
    for part in parts:
        for image_id, detections in part.items():
            merged.setdefault(int(image_id), detections)
    return [d for image_id in sorted(merged) for d in merged[image_id]]


def gather_per_image(per_image: dict[int, list[dict]]) -> list[dict]:
    """Every process's per-image detections (DDP), de-duplicated by image_id; the dict's own in one process."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return merge_per_image([per_image])
    gathered: list = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, per_image)
    return merge_per_image(gathered)
