"""Post-processing: phrase scores from token probabilities, top-k, boxes in pixels."""
from __future__ import annotations

import math

import torch

from gdino.model.postprocess import phrase_scores, postprocess, to_coco_detections


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_phrase_score_is_the_mean_token_probability():
    logits = torch.full((1, 2, 5), float("-inf"))
    logits[0, 0, 1:3] = torch.tensor([_logit(0.9), _logit(0.5)])
    logits[0, 1, 3] = _logit(0.2)
    pos = torch.tensor([[0, 1, 1, 0, 0], [0, 0, 0, 1, 0]], dtype=torch.float)
    scores = phrase_scores(logits, pos)
    assert torch.allclose(scores[0, 0], torch.tensor([0.7, 0.0]), atol=1e-6)
    assert torch.allclose(scores[0, 1], torch.tensor([0.0, 0.2]), atol=1e-6)


def test_postprocess_top_k_and_pixel_boxes():
    logits = torch.full((1, 3, 4), -10.0)
    logits[0, 2, 1] = _logit(0.8)  # query 2 -> phrase 0
    logits[0, 0, 2] = _logit(0.6)  # query 0 -> phrase 1
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.4], [0.1, 0.1, 0.1, 0.1], [0.25, 0.5, 0.5, 1.0]]])
    pos = torch.tensor([[0, 1, 0, 0], [0, 0, 1, 0]], dtype=torch.float)
    (result,) = postprocess(logits, boxes, pos, [(100, 200)], num_select=2)
    assert result["labels"].tolist() == [0, 1]
    assert torch.allclose(result["scores"], torch.tensor([0.8, 0.6]), atol=1e-5)
    assert torch.allclose(result["boxes"][0], torch.tensor([0.0, 0.0, 100.0, 100.0]))
    assert torch.allclose(result["boxes"][1], torch.tensor([80.0, 30.0, 120.0, 70.0]))
    dets = to_coco_detections([result], [7], [[3, 5]], conf_threshold=0.7)
    assert dets == [{"image_id": 7, "category_id": 3, "bbox": [0.0, 0.0, 100.0, 100.0],
                     "score": result["scores"][0].item()}]


def test_num_select_is_capped_by_queries_times_phrases():
    (result,) = postprocess(torch.zeros(1, 2, 4), torch.rand(1, 2, 4), torch.eye(4)[:3], [(10, 10)], num_select=300)
    assert result["scores"].shape == (6,)
