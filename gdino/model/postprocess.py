"""Post-processing shared by the PyTorch, ONNX Runtime and TensorRT paths.

Phrase score = mean token probability over the phrase (sigmoid logits @ row-normalised positive map),
then the top `num_select` over queries x phrases per image; boxes cxcywh (normalised) -> xyxy pixels
of the original image.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torchvision.ops import box_convert


def _tensor(value: Any) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(value)


def phrase_scores(pred_logits: torch.Tensor, positive_map: torch.Tensor) -> torch.Tensor:
    """[B,Q,T] logits, [P,T] or [B,P,T] 0/1 map -> [B,Q,P] phrase probabilities."""
    logits = _tensor(pred_logits).float()
    prob = torch.where(torch.isfinite(logits), logits, torch.full_like(logits, -1e4)).sigmoid()
    pos = _tensor(positive_map).float().to(prob.device)
    width = min(pos.shape[-1], prob.shape[-1])
    prob, pos = prob[..., :width], pos[..., :width]
    pos = pos / pos.sum(-1, keepdim=True).clamp(min=1e-6)
    if pos.dim() == 2:
        return prob @ pos.T
    return torch.bmm(prob, pos.transpose(1, 2))


def postprocess(pred_logits: Any, pred_boxes: Any, positive_map: Any, orig_sizes: Any,
                num_select: int = 300) -> list[dict[str, torch.Tensor]]:
    """Per image `scores` [K], `labels` [K] (phrase index), `boxes` [K,4] xyxy pixels, K = min(num_select, Q*P)."""
    scores_all = phrase_scores(pred_logits, positive_map)  # [B,Q,P]
    boxes = _tensor(pred_boxes).float()
    sizes = _tensor(orig_sizes).float().reshape(-1, 2)  # (h, w)
    batch, _, num_phrases = scores_all.shape
    k = min(int(num_select), scores_all.shape[1] * num_phrases)
    results = []
    for b in range(batch):
        scores, flat = scores_all[b].flatten().topk(k)
        query, label = flat // num_phrases, flat % num_phrases
        h, w = sizes[b].tolist()
        xyxy = box_convert(boxes[b, query], "cxcywh", "xyxy") * torch.tensor([w, h, w, h])
        results.append({"scores": scores, "labels": label, "boxes": xyxy})
    return results


def to_coco_detections(results: Sequence[dict], image_ids: Sequence[int], category_ids: Sequence[Sequence[int]],
                       conf_threshold: float = 0.0) -> list[dict]:
    """COCO result dicts (xywh pixels); `category_ids[i][label]` maps phrase index -> COCO id."""
    detections = []
    for result, image_id, cat_ids in zip(results, image_ids, category_ids):
        for score, label, box in zip(result["scores"].tolist(), result["labels"].tolist(), result["boxes"].tolist()):
            if score < conf_threshold:
                continue
            x1, y1, x2, y2 = box
            detections.append({"image_id": int(image_id), "category_id": int(cat_ids[label]),
                               "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)})
    return detections
