"""Contrastive denoising (DN) queries for Grounding DINO training (DINO, Zhang et al. 2022, §3.3).

During training, noised copies of the ground-truth boxes are fed to the decoder beside the matching
queries; each copy must reconstruct its box (positive) or be rejected as "no object" (negative, noised
further). Their losses need no Hungarian matching: every DN query knows its ground truth.

Layout of the `pad_size = 2 * group_size * num_groups` DN queries, placed before the matching queries:
group g holds `group_size` positive rows then `group_size` negative rows, `group_size` = the largest number
of boxes of an image in the batch; image b fills the first len(boxes_b) rows of each half, the rest is
padding (zero content, reference box 0.5, never supervised as positive).

Behaviour follows the published implementations (read, not copied):
- IDEA-Research/DINO `models/dino/dn_components.py` (`prepare_for_cdn`, `dn_post_process`) and the DN branch
  of `SetCriterion.forward` in `models/dino/dino.py` (direct assignment, `_dn` / `_dn_{i}` losses with the
  normal coefficients, normalised by num_boxes * num_groups);
- NVIDIA/tao_pytorch_backend `nvidia_tao_pytorch/cv/dino/model/dn_components.py`, which TAO's Grounding DINO
  (`nvidia_tao_pytorch/cv/grounding_dino/model/groundingdino.py`) calls with num_classes = max_text_len and a
  label embedding of `dn_labelbook_size + 1` rows (labels are phrase indices; label noise draws a random
  index in [0, max_text_len)). TAO passes targets only when `model.use_dn` is true and builds DN only in
  training; its grounding_dino criterion has no DN term, so we add DINO's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence

import torch
from torch import nn

if TYPE_CHECKING:
    from gdino.config import ModelConfig

# DINO's group rule: from this many (doubled) DN queries on, the budget is split into groups of the batch's
# largest box count instead of being a group count (dn_components.py, `dn_number >= 100`).
_DYNAMIC_GROUP_THRESHOLD = 100
_INVERSE_SIGMOID_EPS = 1e-3  # DINO's util.misc.inverse_sigmoid default


@dataclass(frozen=True)
class DnSettings:
    """`model.dn_number`, `dn_box_noise_scale`, `dn_label_noise_ratio`, `use_dn` (TAO's names)."""

    dn_number: int = 0
    box_noise_scale: float = 1.0
    label_noise_ratio: float = 0.5
    use_dn: bool = True

    @property
    def builds_label_embedding(self) -> bool:
        """TAO creates `label_enc` whenever dn_number > 0 (so checkpoints carry it whatever use_dn says)."""
        return self.dn_number > 0

    @property
    def enabled(self) -> bool:
        return self.dn_number > 0 and self.use_dn

    @classmethod
    def from_config(cls, model_cfg: ModelConfig) -> "DnSettings":
        return cls(dn_number=model_cfg.dn_number, box_noise_scale=model_cfg.dn_box_noise_scale,
                   label_noise_ratio=model_cfg.dn_label_noise_ratio, use_dn=model_cfg.use_dn)


@dataclass
class DnQueries:
    """The DN part of the decoder input for one batch."""

    content: torch.Tensor    # [B, pad_size, d_model] label embeddings (zeros on padding rows)
    reference: torch.Tensor  # [B, pad_size, 4] noised boxes, cxcywh in [0, 1] (sigmoid space)
    attn_mask: torch.Tensor  # [pad_size + Q, pad_size + Q] bool, True = may not attend
    group_size: int          # rows per half group: the largest number of boxes of an image
    num_groups: int

    @property
    def pad_size(self) -> int:
        return 2 * self.group_size * self.num_groups


def dn_group_count(dn_number: int, max_boxes: int) -> int:
    """How many positive+negative groups DINO/TAO build for `dn_number` and the batch's largest box count."""
    doubled = 2 * dn_number
    if max_boxes == 0:
        return 1
    if doubled >= _DYNAMIC_GROUP_THRESHOLD:
        return max(1, doubled // (2 * max_boxes))
    return max(1, doubled)


def dn_attention_mask(group_size: int, num_groups: int, num_queries: int,
                      device: Optional[torch.device] = None) -> torch.Tensor:
    """Decoder self-attention mask, True = blocked: matching queries never see DN queries (they must not learn
    from the ground truth), and DN groups never see each other; DN queries do see the matching queries."""
    pad = 2 * group_size * num_groups
    mask = torch.zeros(pad + num_queries, pad + num_queries, dtype=torch.bool, device=device)
    mask[pad:, :pad] = True
    group = torch.arange(pad, device=device) // max(2 * group_size, 1)
    mask[:pad, :pad] = group[:, None] != group[None, :]
    return mask


def _inverse_sigmoid(x: torch.Tensor, eps: float = _INVERSE_SIGMOID_EPS) -> torch.Tensor:
    x = x.clamp(0.0, 1.0)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def _noised_boxes(boxes: torch.Tensor, negative: torch.Tensor, scale: float) -> torch.Tensor:
    """Move each corner by up to `scale` x half the box size: less than that for positives, between one and
    two times that for negatives (DINO's contrastive noise). boxes [N,4] cxcywh, negative [N] bool."""
    if scale <= 0:
        return boxes
    half = boxes[:, 2:] / 2
    corners = torch.cat([boxes[:, :2] - half, boxes[:, :2] + half], dim=1)
    magnitude = torch.rand_like(boxes) + negative[:, None].to(boxes.dtype)
    sign = torch.randint(0, 2, boxes.shape, device=boxes.device).to(boxes.dtype) * 2 - 1
    corners = (corners + magnitude * sign * half.repeat(1, 2) * scale).clamp(0.0, 1.0)
    return torch.cat([(corners[:, :2] + corners[:, 2:]) / 2, corners[:, 2:] - corners[:, :2]], dim=1)


def _noised_labels(labels: torch.Tensor, ratio: float, num_label_classes: int) -> torch.Tensor:
    """With probability ratio / 2, replace a label by a random index of the caption's token space."""
    if ratio <= 0:
        return labels
    flip = torch.rand(labels.shape, device=labels.device) < ratio * 0.5
    random_labels = torch.randint(0, num_label_classes, labels.shape, device=labels.device)
    return torch.where(flip, random_labels, labels)


def build_dn_queries(targets: Sequence[dict], settings: DnSettings, label_enc: nn.Embedding,
                     num_queries: int, num_label_classes: int) -> DnQueries:
    """DN queries for a batch. targets: per image `boxes` [N,4] cxcywh normalised, `labels` [N] phrase index."""
    device = label_enc.weight.device
    counts = [int(t["labels"].numel()) for t in targets]
    batch, group_size = len(targets), max(counts, default=0)
    num_groups = dn_group_count(settings.dn_number, group_size)
    pad = 2 * group_size * num_groups
    content = label_enc.weight.new_zeros(batch, pad, label_enc.embedding_dim)
    reference_logits = label_enc.weight.new_zeros(batch, pad, 4)
    if group_size:
        # one row per (group, half, image box): image b's j-th box sits at g*2S + half*S + j
        image = torch.cat([torch.full((n,), b, dtype=torch.long) for b, n in enumerate(counts)]).to(device)
        within = torch.cat([torch.arange(n) for n in counts]).to(device)
        labels = torch.cat([t["labels"].long().reshape(-1) for t in targets]).to(device)
        boxes = torch.cat([t["boxes"].float().reshape(-1, 4) for t in targets]).to(device)
        blocks = 2 * num_groups  # even blocks positive, odd blocks negative
        block = torch.arange(blocks, device=device).repeat_interleave(len(labels))
        rows = block * group_size + within.repeat(blocks)
        negative = (block % 2) == 1
        noisy_labels = _noised_labels(labels.repeat(blocks), settings.label_noise_ratio, num_label_classes)
        noisy_boxes = _noised_boxes(boxes.repeat(blocks, 1), negative, settings.box_noise_scale)
        batch_index = image.repeat(blocks)
        content[batch_index, rows] = label_enc(noisy_labels).to(content.dtype)
        reference_logits[batch_index, rows] = _inverse_sigmoid(noisy_boxes).to(reference_logits.dtype)
    return DnQueries(content=content, reference=reference_logits.sigmoid(),
                     attn_mask=dn_attention_mask(group_size, num_groups, num_queries, device),
                     group_size=group_size, num_groups=num_groups)


def dn_assignments(box_counts: Sequence[int], group_size: int, num_groups: int,
                   device: Optional[torch.device] = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per image (positive DN query index, ground-truth index): the direct assignment that replaces matching."""
    result = []
    for count in box_counts:
        gt = torch.arange(count, device=device).repeat(num_groups)
        query = (torch.arange(num_groups, device=device) * 2 * group_size).repeat_interleave(count) + gt
        result.append((query, gt))
    return result
