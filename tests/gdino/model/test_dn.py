"""Denoising training (model.dn_number > 0): queries, attention mask, losses; dn_number 0 unchanged."""
from __future__ import annotations

import pytest
import torch
from tiny_model import tiny_model_cfg, two_image_batch

from gdino.model.criterion import CriterionSettings, SetCriterion
from gdino.model.dn import DnSettings, build_dn_queries, dn_assignments, dn_attention_mask, dn_group_count
from gdino.model.network import build_network


def test_attention_mask_blocks_dn_from_matching_and_groups_from_each_other():
    size, groups, queries = 2, 3, 5
    mask = dn_attention_mask(size, groups, queries)
    pad = 2 * size * groups
    assert mask.shape == (pad + queries, pad + queries)
    assert mask[pad:, :pad].all()          # matching queries never see a DN query
    assert not mask[pad:, pad:].any()      # ... but see each other
    assert not mask[:pad, pad:].any()      # DN queries see the matching queries
    for g in range(groups):
        rows = slice(2 * size * g, 2 * size * (g + 1))
        inside = mask[rows, rows]
        assert not inside.any()            # positives and negatives of one group see each other
        outside = torch.cat([mask[rows, : 2 * size * g], mask[rows, 2 * size * (g + 1): pad]], dim=1)
        assert outside.all()               # and no other group


def test_group_count_follows_dino():
    assert dn_group_count(5, 3) == 10             # below 100 doubled queries: 2 * dn_number groups
    assert dn_group_count(100, 4) == 200 // 8     # from there: ~2 * dn_number queries in groups of 2 * max boxes
    assert dn_group_count(100, 0) == 1
    assert dn_group_count(100, 500) == 1


def test_queries_hold_noised_copies_of_the_ground_truth_in_place():
    torch.manual_seed(0)
    label_enc = torch.nn.Embedding(33, 8)
    boxes = torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.3, 0.4]])
    targets = [{"boxes": boxes, "labels": torch.tensor([0, 1])},
               {"boxes": torch.tensor([[0.5, 0.5, 0.4, 0.3]]), "labels": torch.tensor([0])}]
    settings = DnSettings(dn_number=2, box_noise_scale=0.4, label_noise_ratio=0.0)
    dn = build_dn_queries(targets, settings, label_enc, num_queries=6, num_label_classes=32)
    assert (dn.group_size, dn.num_groups, dn.pad_size) == (2, 4, 16)
    assert dn.content.shape == (2, 16, 8) and dn.reference.shape == (2, 16, 4)
    half = torch.cat([boxes[:, 2:] / 2] * 2, dim=1)
    for (queries, gts) in dn_assignments([2, 1], dn.group_size, dn.num_groups)[:1]:
        corners = torch.cat([dn.reference[0, queries, :2] - dn.reference[0, queries, 2:] / 2,
                             dn.reference[0, queries, :2] + dn.reference[0, queries, 2:] / 2], 1)
        true = torch.cat([boxes[gts, :2] - boxes[gts, 2:] / 2, boxes[gts, :2] + boxes[gts, 2:] / 2], 1)
        assert ((corners - true).abs() <= 0.4 * half[gts] + 1e-3).all()  # positives: within the noise scale
        negatives = queries + dn.group_size
        neg_corners = torch.cat([dn.reference[0, negatives, :2] - dn.reference[0, negatives, 2:] / 2,
                                 dn.reference[0, negatives, :2] + dn.reference[0, negatives, 2:] / 2], 1)
        assert ((neg_corners - true).abs().amax(1) >= 0.4 * half[gts].amin(1) - 1e-3).all()  # negatives: farther
        assert torch.equal(dn.content[0, queries], label_enc(targets[0]["labels"][gts]))  # no label noise here
    padding = [2 * dn.group_size * g + 1 for g in range(dn.num_groups)]  # image 1 has one box: row 1 is padding
    assert not dn.content[1, padding].any() and torch.allclose(dn.reference[1, padding], torch.full((4, 4), 0.5))


def test_label_noise_flips_about_half_the_ratio():
    torch.manual_seed(0)
    label_enc = torch.nn.Embedding(257, 4)
    targets = [{"boxes": torch.rand(50, 4) * 0.5 + 0.25, "labels": torch.zeros(50, dtype=torch.long)}]
    dn = build_dn_queries(targets, DnSettings(dn_number=100, label_noise_ratio=0.5), label_enc, 10, 256)
    flipped = (dn.content != label_enc.weight[0]).any(-1).float().mean()
    assert 0.15 < float(flipped) < 0.35  # ratio / 2 = 0.25 (flips to 0 itself are rare: 1/256)


@pytest.fixture(scope="module")
def dn_cfg(tiny_bert):
    return tiny_model_cfg(tiny_bert, dn_number=3, dn_box_noise_scale=0.4)


def test_dn_number_zero_is_unchanged_and_dn_never_runs_at_inference(tiny_bert, dn_cfg, tokenizer):
    """Same seed -> same weights; without targets (or in eval) a DN network computes exactly what a plain one does."""
    images, text, targets = two_image_batch(tokenizer)
    torch.manual_seed(0)
    plain = build_network(tiny_model_cfg(tiny_bert)).eval()
    torch.manual_seed(0)
    with_dn = build_network(dn_cfg).eval()
    assert plain.label_enc is None and with_dn.label_enc is not None
    with torch.no_grad():
        a = plain(images, **text.model_inputs())
        b = with_dn(images, **text.model_inputs(), targets=targets)  # eval: targets are ignored
    assert "dn_outputs" not in b
    assert torch.equal(a["pred_logits"], b["pred_logits"]) and torch.equal(a["pred_boxes"], b["pred_boxes"])


def test_matching_queries_do_not_see_the_dn_queries(dn_cfg, tokenizer):
    torch.manual_seed(0)
    net = build_network(dn_cfg).train()  # dropout_ratio 0: training forward is deterministic
    images, text, targets = two_image_batch(tokenizer)
    with torch.no_grad():  # same seed: the encoder's fusion drop-path draws the same numbers in both runs
        torch.manual_seed(5)
        without = net(images, **text.model_inputs())
        torch.manual_seed(5)
        with_dn = net(images, **text.model_inputs(), targets=targets)
    meta = with_dn["dn_meta"]
    assert meta["pad_size"] == 2 * 2 * 6  # 2 boxes at most, 2 * dn_number groups
    assert with_dn["dn_outputs"]["pred_boxes"].shape == (2, meta["pad_size"], 4)
    assert len(with_dn["dn_outputs"]["aux_outputs"]) == 1
    assert with_dn["pred_logits"].shape == without["pred_logits"].shape
    assert torch.allclose(with_dn["pred_boxes"], without["pred_boxes"], atol=1e-5)
    finite = torch.isfinite(without["pred_logits"])
    assert torch.allclose(with_dn["pred_logits"][finite], without["pred_logits"][finite], atol=1e-4)


def test_dn_losses_fall_on_a_tiny_overfit_run(tiny_bert, tokenizer):
    """One image, 30 AdamW steps, the same noise every step (a fixed batch to overfit). Measured on a 2-core CPU
    (first 3 -> last 3 steps): loss_ce_dn ~22 -> 0.26, loss_bbox_dn 0.285 -> 0.256, loss_giou_dn 0.666 -> 0.634;
    the box terms fall slowly (the decoder must learn each query's noise from its position), so their margins
    are smaller."""
    cfg = tiny_model_cfg(tiny_bert, dn_number=3, dn_box_noise_scale=1.0)
    torch.manual_seed(0)
    net = build_network(cfg).train()
    images, text, targets = two_image_batch(tokenizer)
    # one image, 96 px: a 64 px image has a 1x1 extra level, which GroupNorm refuses in training
    images = torch.nn.functional.interpolate(images[:1], size=(96, 96))
    targets, maps = targets[:1], text.positive_maps[:1]
    inputs = {k: v[:1] for k, v in text.model_inputs().items()}
    criterion = SetCriterion(CriterionSettings.from_config(cfg))
    optimizer = torch.optim.AdamW(net.parameters(), lr=5e-3)
    history = []
    for _ in range(30):
        torch.manual_seed(1)  # same DN noise and drop-path draws every step
        loss, parts = criterion(net(images, **inputs, targets=targets), targets, maps)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append({k: float(v) for k, v in parts.items()})
    assert {"loss_ce_dn", "loss_bbox_dn", "loss_giou_dn", "loss_ce_dn_0", "loss_bbox_dn_0"} <= set(history[0])
    for name, factor in (("loss_ce_dn", 0.3), ("loss_bbox_dn", 0.95), ("loss_giou_dn", 0.98)):
        first = sum(h[name] for h in history[:3]) / 3
        last = sum(h[name] for h in history[-3:]) / 3
        assert last < factor * first, (name, first, last)
    assert net.label_enc.weight.grad is not None and net.label_enc.weight.grad.abs().sum() > 0


def test_an_image_without_boxes_still_trains_every_parameter(dn_cfg, tokenizer):
    """No box in the batch: no DN query, but the DN embedding stays in the graph (DDP needs every gradient)."""
    torch.manual_seed(0)
    net = build_network(dn_cfg).train()
    images, text, _ = two_image_batch(tokenizer)
    targets = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}] * 2
    outputs = net(images, **text.model_inputs(), targets=targets)
    assert "dn_outputs" not in outputs
    loss, _ = SetCriterion(CriterionSettings.from_config(dn_cfg))(outputs, targets, text.positive_maps)
    loss.backward()
    assert net.label_enc.weight.grad is not None
