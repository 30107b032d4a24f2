"""Under DDP the DistributedSampler pads the validation set by repeating images; their detections must be
counted once before COCO evaluation."""
from __future__ import annotations

import json
from pathlib import Path

import pytest


def _detections(image_id: int, score: float) -> list[dict]:
    return [{"image_id": image_id, "category_id": 1, "bbox": [1.0, 2.0, 3.0, 4.0], "score": score}]


def test_merge_keeps_one_result_list_per_image():
    from gdino.engine.validation import merge_per_image

    rank0 = {0: _detections(0, 0.9), 2: _detections(2, 0.8)}
    rank1 = {1: _detections(1, 0.7), 0: _detections(0, 0.9)}  # image 0 again: the sampler's padding
    merged = merge_per_image([rank0, rank1])
    assert sorted(d["image_id"] for d in merged) == [0, 1, 2]
    assert merge_per_image([{}, {}]) == []


def _rank_main(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    from gdino.engine.validation import gather_per_image

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        # DistributedSampler(3 images, 2 replicas) gives rank 0 images [0, 2] and rank 1 [1, 0]
        own = {0: {0: _detections(0, 0.9), 2: _detections(2, 0.8)}, 1: {1: _detections(1, 0.7), 0: _detections(0, 0.9)}}
        merged = gather_per_image(own[rank])
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(merged))
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(180)
def test_two_process_gloo_group_evaluates_each_image_once(tmp_path):
    import torch.multiprocessing as mp
    from torch.utils.data import DistributedSampler

    # the padding this test reproduces is the sampler's own
    shards = [list(DistributedSampler(range(3), num_replicas=2, rank=r, shuffle=False)) for r in (0, 1)]
    assert shards == [[0, 2], [1, 0]]
    mp.spawn(_rank_main, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        merged = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert sorted(d["image_id"] for d in merged) == [0, 1, 2]
