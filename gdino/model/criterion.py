"""Our Grounding DINO criterion (not HF's `out.loss`, which never trains the query-selection head).

Per image Hungarian matching (`set_cost_class/bbox/giou`; class cost = focal positive-minus-negative
cost averaged over the phrase's tokens), then
  - sigmoid focal loss (`focal_alpha`, `focal_gamma`) over the *valid* text tokens, target 1 on every
    token of the matched phrase, summed and divided by the number of boxes (`cls_loss_coef`);
  - L1 and GIoU on cxcywh boxes (`bbox_loss_coef`, `giou_loss_coef`);
for the last decoder layer, every earlier layer (`aux_loss`) and the encoder's un-detached top-k
proposals (`interm_loss_coef`, class only with `no_interm_box_loss`), as Open-GroundingDino does; and, when
the network was given DN queries (`model.dn_number > 0`), the same three losses on them with direct
assignment (`_dn`, `_dn_{i}`; gdino.model.dn).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from scipy.optimize import linear_sum_assignment
from torchvision.ops import box_convert, generalized_box_iou

from gdino.config import ModelConfig
from gdino.model.dn import dn_assignments


@dataclass(frozen=True)
class CriterionSettings:
    set_cost_class: float = 1.0
    set_cost_bbox: float = 5.0
    set_cost_giou: float = 2.0
    cls_loss_coef: float = 2.0
    bbox_loss_coef: float = 5.0
    giou_loss_coef: float = 2.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    aux_loss: bool = True
    interm_loss_coef: float = 1.0
    no_interm_box_loss: bool = False
    loss_types: tuple[str, ...] = ("labels", "boxes")

    @classmethod
    def from_config(cls, model_cfg: ModelConfig) -> "CriterionSettings":
        values: dict[str, Any] = {name: getattr(model_cfg, name) for name in cls.__dataclass_fields__}
        values["loss_types"] = tuple(values["loss_types"])
        return cls(**values)


def _xyxy(boxes: torch.Tensor) -> torch.Tensor:
    return box_convert(boxes, "cxcywh", "xyxy")


class HungarianMatcher:
    """One-to-one assignment of queries to the ground-truth boxes of one image."""

    def __init__(self, settings: CriterionSettings) -> None:
        self.s = settings

    @torch.no_grad()
    def match(self, logits: torch.Tensor, boxes: torch.Tensor, text_mask: torch.Tensor,
              gt_boxes: torch.Tensor, gt_token_maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """logits [Q,T], boxes [Q,4], text_mask [T], gt_boxes [N,4], gt_token_maps [N,T] -> (query idx, gt idx)."""
        if gt_boxes.shape[0] == 0:
            empty = torch.zeros(0, dtype=torch.long)
            return empty, empty
        s = self.s
        prob = torch.where(text_mask, logits.float(), torch.zeros_like(logits, dtype=torch.float)).sigmoid()
        neg = (1 - s.focal_alpha) * prob.pow(s.focal_gamma) * -(1 - prob + 1e-8).log()
        pos = s.focal_alpha * (1 - prob).pow(s.focal_gamma) * -(prob + 1e-8).log()
        token_weights = gt_token_maps.float() * text_mask.float()
        token_weights = token_weights / token_weights.sum(-1, keepdim=True).clamp(min=1.0)
        cost_class = (pos - neg) @ token_weights.T
        cost_bbox = torch.cdist(boxes.float(), gt_boxes.float(), p=1)
        cost_giou = -generalized_box_iou(_xyxy(boxes.float()), _xyxy(gt_boxes.float()))
        cost = s.set_cost_bbox * cost_bbox + s.set_cost_class * cost_class + s.set_cost_giou * cost_giou
        cost = torch.nan_to_num(cost, nan=1e8, posinf=1e8, neginf=-1e8)
        rows, cols = linear_sum_assignment(cost.cpu().numpy())
        return torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor, alpha: float,
                       gamma: float) -> torch.Tensor:
    """Sum of the focal loss over valid entries (padded token slots hold -inf logits and are skipped)."""
    logits = torch.where(valid, logits.float(), torch.zeros_like(logits, dtype=torch.float))
    prob = logits.sigmoid()
    ce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t).pow(gamma)
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return (loss * valid.float()).sum()


class SetCriterion(torch.nn.Module):
    """`forward(outputs, targets, positive_maps) -> (total loss, {name: value})`.

    outputs: GroundingDinoNet's dict. targets: per image `boxes` [N,4] cxcywh normalised and `labels`
    [N] (phrase index). positive_maps: per image [num_phrases, max_text_len] 0/1 token maps.
    """

    def __init__(self, settings: CriterionSettings) -> None:
        super().__init__()
        self.s = settings
        self.matcher = HungarianMatcher(settings)

    def forward(self, outputs: dict, targets: Sequence[dict], positive_maps: Sequence[torch.Tensor]):
        s = self.s
        text_mask = outputs["text_mask"]
        token_maps = [pm[t["labels"].long()] if t["labels"].numel() else pm.new_zeros(0, pm.shape[-1])
                      for pm, t in zip(positive_maps, targets)]
        num_boxes = self._num_boxes(targets, outputs["pred_boxes"].device)
        stages = [("", outputs)]
        if s.aux_loss:
            stages += [(f"_{i}", aux) for i, aux in enumerate(outputs.get("aux_outputs") or [])]
        if outputs.get("interm_outputs") is not None and s.interm_loss_coef > 0:
            stages.append(("_interm", outputs["interm_outputs"]))
        losses: dict[str, torch.Tensor] = {}
        total = outputs["pred_logits"].new_zeros((), dtype=torch.float)
        for suffix, stage in stages:
            indices = self._match(stage, targets, token_maps, text_mask)
            parts = self._stage_losses(stage, targets, token_maps, text_mask, num_boxes, indices)
            total = self._add(total, losses, parts, suffix, s.interm_loss_coef if suffix == "_interm" else 1.0,
                              class_only=suffix == "_interm" and s.no_interm_box_loss)
        if outputs.get("dn_outputs") is not None:
            total = self._add_dn_losses(total, losses, outputs, targets, token_maps, text_mask, num_boxes)
        return total, losses

    def _add(self, total: torch.Tensor, losses: dict, parts: dict, suffix: str, weight: float,
             class_only: bool = False) -> torch.Tensor:
        s = self.s
        for name, value in parts.items():
            losses[name + suffix] = value.detach()
            if class_only and name != "loss_ce":
                continue
            coef = {"loss_ce": s.cls_loss_coef, "loss_bbox": s.bbox_loss_coef, "loss_giou": s.giou_loss_coef}[name]
            total = total + weight * coef * value
        return total

    def _add_dn_losses(self, total: torch.Tensor, losses: dict, outputs: dict, targets: Sequence[dict],
                       token_maps: list[torch.Tensor], text_mask: torch.Tensor, num_boxes: float) -> torch.Tensor:
        """Denoising losses (`_dn`, `_dn_{i}` per aux layer), as DINO's criterion: every positive DN query is
        assigned its own ground truth (no matching); negatives and padding rows are pushed to "no object";
        normalised by num_boxes x num_groups; the normal coefficients (IDEA-Research/DINO models/dino/dino.py)."""
        dn, meta = outputs["dn_outputs"], outputs["dn_meta"]
        indices = dn_assignments([len(t["boxes"]) for t in targets], meta["group_size"], meta["num_groups"],
                                 device=dn["pred_logits"].device)
        stages = [("_dn", dn)]
        if self.s.aux_loss:
            stages += [(f"_dn_{i}", aux) for i, aux in enumerate(dn.get("aux_outputs") or [])]
        for suffix, stage in stages:
            parts = self._stage_losses(stage, targets, token_maps, text_mask, num_boxes * meta["num_groups"], indices)
            total = self._add(total, losses, parts, suffix, 1.0)
        return total

    def _match(self, stage: dict, targets: Sequence[dict], token_maps: list[torch.Tensor],
               text_mask: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        logits, boxes = stage["pred_logits"], stage["pred_boxes"]
        return [self.matcher.match(logits[b], boxes[b], text_mask[b], target["boxes"], token_maps[b])
                for b, target in enumerate(targets)]

    def _stage_losses(self, stage: dict, targets: Sequence[dict], token_maps: list[torch.Tensor],
                      text_mask: torch.Tensor, num_boxes: float,
                      indices: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Losses of one stage given (query index, ground-truth index) per image."""
        s = self.s
        logits, boxes = stage["pred_logits"], stage["pred_boxes"]
        cls_target = torch.zeros_like(logits, dtype=torch.float)
        matched_pred, matched_gt = [], []
        for b, (target, (q_idx, g_idx)) in enumerate(zip(targets, indices)):
            q_idx, g_idx = q_idx.to(logits.device), g_idx.to(logits.device)
            if q_idx.numel():
                cls_target[b, q_idx] = token_maps[b][g_idx].float()
                matched_pred.append(boxes[b, q_idx])
                matched_gt.append(target["boxes"][g_idx].to(boxes))
        out = {}
        if "labels" in s.loss_types:
            valid = text_mask[:, None, :].expand_as(logits)
            out["loss_ce"] = sigmoid_focal_loss(logits, cls_target, valid, s.focal_alpha, s.focal_gamma) / num_boxes
        if "boxes" in s.loss_types:
            if matched_pred:
                pred, gt = torch.cat(matched_pred).float(), torch.cat(matched_gt).float()
                out["loss_bbox"] = (pred - gt).abs().sum() / num_boxes
                giou = torch.diag(generalized_box_iou(_xyxy(pred), _xyxy(gt)))
                out["loss_giou"] = (1 - giou).sum() / num_boxes
            else:
                out["loss_bbox"] = out["loss_giou"] = boxes.sum() * 0.0
        return out

    @staticmethod
    def _num_boxes(targets: Sequence[dict], device: torch.device) -> float:
        """Boxes in the whole (distributed) batch, averaged over processes, at least 1."""
        count = torch.tensor(float(sum(len(t["boxes"]) for t in targets)), device=device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(count)
            count = count / torch.distributed.get_world_size()
        return max(float(count.item()), 1.0)
