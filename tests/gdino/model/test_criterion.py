"""Our criterion: query-selection gradients, learning, focal over valid tokens, matching."""
from __future__ import annotations

import torch
from tiny_model import two_image_batch

from gdino.model.criterion import CriterionSettings, HungarianMatcher, SetCriterion, sigmoid_focal_loss

QUERY_SELECTION = ("model.enc_output.", "model.enc_output_norm.", "model.encoder_output_bbox_embed.")


def _query_selection_grads(net, tokenizer, settings):
    images, text, targets = two_image_batch(tokenizer)
    net.zero_grad()
    loss, _ = SetCriterion(settings)(net(images, **text.model_inputs()), targets, text.positive_maps)
    loss.backward()
    return {n: p.grad for n, p in net.named_parameters() if any(k in n for k in QUERY_SELECTION)}


def test_every_query_selection_parameter_gets_a_gradient(tiny_net, tokenizer):
    grads = _query_selection_grads(tiny_net, tokenizer, CriterionSettings())
    assert len(grads) >= 10 and all(g is not None for g in grads.values())
    # the box head's last layer starts at zero (DETR init), which blocks the earlier layers' gradient
    # until one step has moved it
    torch.optim.SGD(tiny_net.parameters(), lr=0.1).step()
    grads = _query_selection_grads(tiny_net, tokenizer, CriterionSettings())
    for name, grad in grads.items():
        assert grad is not None and grad.abs().sum() > 0, name


def test_without_the_interm_loss_the_query_selection_head_gets_none(tiny_net, tokenizer):
    """What HF's own loss does (notes/gdino.md §1.2): shows the test above can fail."""
    grads = _query_selection_grads(tiny_net, tokenizer, CriterionSettings(interm_loss_coef=0.0))
    assert all(g is None or g.abs().sum() == 0 for g in grads.values())


def test_loss_falls_when_overfitting_one_batch(tiny_net, tokenizer):
    images, text, targets = two_image_batch(tokenizer)
    criterion = SetCriterion(CriterionSettings())
    optimizer = torch.optim.AdamW(tiny_net.parameters(), lr=1e-3)
    losses = []
    for _ in range(5):
        loss, _ = criterion(tiny_net(images, **text.model_inputs()), targets, text.positive_maps)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_loss_terms_follow_the_settings(tiny_net, tokenizer):
    images, text, targets = two_image_batch(tokenizer)
    outputs = tiny_net(images, **text.model_inputs())
    _, with_aux = SetCriterion(CriterionSettings())(outputs, targets, text.positive_maps)
    assert {"loss_ce", "loss_bbox", "loss_giou", "loss_ce_0", "loss_ce_interm", "loss_bbox_interm"} <= set(with_aux)
    _, plain = SetCriterion(CriterionSettings(aux_loss=False, loss_types=("labels",)))(outputs, targets,
                                                                                       text.positive_maps)
    assert set(plain) == {"loss_ce", "loss_ce_interm"}
    boxes_off, _ = SetCriterion(CriterionSettings(no_interm_box_loss=True, aux_loss=False))(
        outputs, targets, text.positive_maps)
    boxes_on, _ = SetCriterion(CriterionSettings(aux_loss=False))(outputs, targets, text.positive_maps)
    assert boxes_off < boxes_on


def test_focal_loss_ignores_padded_tokens():
    logits = torch.tensor([[[2.0, -1.0, float("-inf")]]])
    targets = torch.tensor([[[1.0, 0.0, 0.0]]])
    valid = torch.tensor([[[True, True, False]]])
    loss = sigmoid_focal_loss(logits, targets, valid, 0.25, 2.0)
    only_valid = sigmoid_focal_loss(logits[..., :2], targets[..., :2], valid[..., :2], 0.25, 2.0)
    assert torch.isfinite(loss) and torch.allclose(loss, only_valid)


def test_matcher_pairs_each_box_with_its_closest_query():
    matcher = HungarianMatcher(CriterionSettings())
    boxes = torch.tensor([[0.2, 0.2, 0.1, 0.1], [0.8, 0.8, 0.2, 0.2], [0.5, 0.5, 0.3, 0.3]])
    gt = torch.tensor([[0.79, 0.8, 0.2, 0.2], [0.21, 0.2, 0.1, 0.1]])
    logits = torch.zeros(3, 4)
    q, g = matcher.match(logits, boxes, torch.ones(4, dtype=torch.bool), gt, torch.eye(4)[:2])
    assert dict(zip(g.tolist(), q.tolist())) == {0: 1, 1: 0}
