"""Building the network from explicit sub-configs; explicit text inputs; backbones; heads."""
from __future__ import annotations

import pytest
import torch
from tiny_model import tiny_model_cfg, two_image_batch

from gdino.model.network import ContrastiveHead, build_network


def test_outputs_cover_every_decoder_layer_and_the_encoder(tiny_net, tokenizer):
    images, text, _ = two_image_batch(tokenizer)
    out = tiny_net(images, **text.model_inputs())
    assert out["pred_logits"].shape == (2, 12, 32) and out["pred_boxes"].shape == (2, 12, 4)
    assert len(out["aux_outputs"]) == 1  # dec_layers=2
    assert out["interm_outputs"]["pred_logits"].shape == (2, 12, 32)
    assert out["text_mask"][1].sum() == 4  # [CLS] cat . [SEP]
    assert torch.isinf(out["pred_logits"][1, :, 4:]).all()  # padded tokens are -inf, as in HF
    assert ((out["pred_boxes"] >= 0) & (out["pred_boxes"] <= 1)).all()


def test_given_text_self_attention_mask_is_what_the_network_uses(tiny_net, tokenizer):
    tiny_net.eval()
    images, text, _ = two_image_batch(tokenizer)
    inputs = text.model_inputs()
    with torch.no_grad():
        reference = tiny_net(images, **inputs)["pred_logits"]
        changed = dict(inputs, text_self_attention_masks=torch.ones_like(inputs["text_self_attention_masks"]))
        other = tiny_net(images, **changed)["pred_logits"]
    finite = torch.isfinite(reference)
    assert not torch.allclose(reference[finite], other[finite])


def test_network_matches_hf_forward_on_the_same_inputs(tiny_net, tokenizer):
    """Our explicit masks equal what HF computes itself, so the outputs agree with HF's own forward."""
    tiny_net.eval()
    images, text, _ = two_image_batch(tokenizer)
    with torch.no_grad():
        ours = tiny_net(images, **text.model_inputs())
        hf = tiny_net.detector(pixel_values=images, input_ids=text.input_ids, attention_mask=text.attention_mask,
                               token_type_ids=text.token_type_ids)
    assert torch.allclose(ours["pred_boxes"], hf.pred_boxes, atol=1e-6)
    finite = torch.isfinite(hf.logits)
    assert torch.equal(finite, torch.isfinite(ours["pred_logits"]))
    assert torch.allclose(ours["pred_logits"][finite], hf.logits[finite], atol=1e-5)


def test_swin_backbone_runs_at_a_non_224_input(tiny_bert, tokenizer):
    cfg = tiny_model_cfg(tiny_bert, backbone="swin_tiny_224_1k", num_queries=8)
    net = build_network(cfg)
    assert net.backbone.channels == [192, 384, 768]
    images, text, _ = two_image_batch(tokenizer)
    images = torch.nn.functional.interpolate(images, size=(64, 96))
    with torch.no_grad():
        out = net.eval()(images, **text.model_inputs())
    assert out["pred_boxes"].shape == (2, 8, 4)


def test_scaled_biased_head_replaces_the_plain_dot_product(tiny_bert, tokenizer):
    net = build_network(tiny_model_cfg(tiny_bert, log_scale="auto", class_embed_bias=True))
    assert all(isinstance(h, ContrastiveHead) and h.bias is not None for h in net.detector.class_embed)
    assert isinstance(net.detector.model.encoder_output_class_embed, ContrastiveHead)
    head = ContrastiveHead(8, "auto", bias=False)
    v, t = torch.ones(1, 1, 16), torch.ones(1, 2, 16)
    assert torch.allclose(head(v, t, torch.ones(1, 2, dtype=torch.bool))[0, 0, :2], torch.tensor([4.0, 4.0]))


def test_activation_checkpointing_keeps_the_gradients(tiny_net, tokenizer):
    images, text, _ = two_image_batch(tokenizer)
    tiny_net.backbone.set_grad_checkpointing(True)
    tiny_net(images, **text.model_inputs())["pred_boxes"].sum().backward()
    grads = [p.grad for n, p in tiny_net.named_parameters() if "backbone.conv_encoder" in n and p.requires_grad]
    assert grads and all(g is not None for g in grads)


@pytest.mark.slow
def test_full_tao_default_network_runs_one_training_step():
    """Swin-T, 900 queries, 6+6 layers, BERT-base-size random text encoder: one step on the CPU (~12 GB)."""
    import tempfile
    from pathlib import Path

    from tiny_model import make_tiny_bert
    from transformers import BertConfig

    from gdino.config import ModelConfig
    from gdino.model.criterion import CriterionSettings, SetCriterion
    from gdino.model.text import load_tokenizer

    folder = make_tiny_bert(Path(tempfile.mkdtemp()) / "bert-base-size")
    BertConfig(vocab_size=30522).save_pretrained(folder)  # bert-base-uncased's shape, random weights
    cfg = ModelConfig(text_encoder_type=str(folder))
    assert (cfg.backbone, cfg.num_queries, cfg.enc_layers, cfg.dec_layers) == ("swin_tiny_224_1k", 900, 6, 6)
    net = build_network(cfg)
    images, text, targets = two_image_batch(load_tokenizer(str(folder)), max_text_len=256)
    images = torch.randn(1, 3, 544, 960)
    text.positive_maps, targets = text.positive_maps[:1], targets[:1]
    inputs = {k: v[:1] for k, v in text.model_inputs().items()}
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    loss, parts = SetCriterion(CriterionSettings.from_config(cfg))(net(images, **inputs), targets, text.positive_maps)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and "loss_ce_interm" in parts and "loss_giou_4" in parts


# ------------------------------------------------------------------ our forward = HF's, plus padding and refinement
def _hf_forward_with_given_masks(net, images, inputs, pixel_mask=None):
    """HF's own forward, told to use our precomputed sub-sentence masks (what the network did before it ran
    HF's submodules itself)."""
    import transformers.models.grounding_dino.modeling_grounding_dino as gdm

    original = gdm.generate_masks_with_special_tokens_and_transfer_map
    gdm.generate_masks_with_special_tokens_and_transfer_map = (
        lambda input_ids, special_tokens: (inputs["text_self_attention_masks"], inputs["position_ids"]))
    try:
        return net.detector(pixel_values=images, input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                            token_type_ids=inputs["token_type_ids"], pixel_mask=pixel_mask, return_dict=True)
    finally:
        gdm.generate_masks_with_special_tokens_and_transfer_map = original


def test_forward_is_bit_identical_to_hf_forward(tiny_net, tokenizer):
    """dn_number 0: running HF's submodules ourselves changes no bit (logits, boxes, encoder proposals)."""
    images, text, _ = two_image_batch(tokenizer)
    mask = torch.ones(2, 64, 64, dtype=torch.bool)
    mask[1, :, 40:] = False
    inputs = text.model_inputs()
    with torch.no_grad():  # training mode: the encoder's fusion drop-path draws the same random numbers
        torch.manual_seed(5)
        ours = tiny_net.train()(images, **inputs, pixel_mask=mask)
        torch.manual_seed(5)
        hf = _hf_forward_with_given_masks(tiny_net, images, inputs, mask.long())
    assert torch.equal(ours["pred_boxes"], hf.pred_boxes) and torch.equal(ours["pred_logits"], hf.logits)
    topk = torch.topk(hf.enc_outputs_class.max(-1)[0], tiny_net.num_queries, dim=1)[1]
    hf_interm = torch.gather(hf.enc_outputs_coord_logits, 1, topk.unsqueeze(-1).expand(-1, -1, 4)).sigmoid()
    assert torch.equal(ours["interm_outputs"]["pred_boxes"], hf_interm)


def test_layer_l_box_head_learns_from_layer_l_plus_1(tiny_bert, tokenizer):
    """Look forward twice: with one box head per layer, layer 1's box loss alone reaches layer 0's head (through
    the un-detached refined reference); HF's own forward (detached references) gives it nothing."""
    from transformers import GroundingDinoForObjectDetection

    from gdino.model import network

    cfg = tiny_model_cfg(tiny_bert)
    config = network.hf_config(cfg)
    config.decoder_bbox_embed_share = False
    torch.manual_seed(0)
    net = network.GroundingDinoNet(GroundingDinoForObjectDetection(config))  # HF's tiny timm resnet backbone
    head0, head1 = net.detector.bbox_embed[0], net.detector.bbox_embed[1]
    assert head0.layers[0].weight is not head1.layers[0].weight
    with torch.no_grad():  # DETR init zeroes the last layer, which would block the gradient of the earlier ones
        for head in (head0, head1):
            head.layers[-1].weight.normal_(0, 0.01)
    images, text, _ = two_image_batch(tokenizer)
    inputs = text.model_inputs()
    layer1_loss = net(images, **inputs)["pred_boxes"].sum()  # dec_layers=2: the last layer is layer 1
    grads = torch.autograd.grad(layer1_loss, list(head0.parameters()), allow_unused=True)
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    hf_loss = _hf_forward_with_given_masks(net, images, inputs).pred_boxes.sum()
    hf_grads = torch.autograd.grad(hf_loss, list(head0.parameters()), allow_unused=True)
    assert all(g is None or g.abs().sum() == 0 for g in hf_grads)


def _odd_size_batch(sizes):
    from gdino.data.datasets import collate_fn

    torch.manual_seed(2)
    return collate_fn([{"image": torch.randn(3, h, w), "target": {"size": (h, w)}} for h, w in sizes])


FAST_BACKBONES = ["resnet_18", "resnet_50", "swin_tiny_224_1k"]
SLOW_BACKBONES = ["swin_base_224_22k", "swin_base_384_22k", "swin_large_224_22k", "swin_large_384_22k"]


@pytest.mark.parametrize("backbone", FAST_BACKBONES + [pytest.param(b, marks=pytest.mark.slow) for b in SLOW_BACKBONES])
def test_every_backbone_runs_at_odd_input_sizes(tiny_bert, tokenizer, backbone):
    """One odd-sized image (97x131), then a batch of two different odd sizes, through our forward and HF's own
    (the export / inference path): the network pads images and masks to what the backbone needs."""
    from gdino.model.backbone import BACKBONES

    assert set(FAST_BACKBONES + SLOW_BACKBONES) == set(BACKBONES)
    torch.manual_seed(0)
    net = build_network(tiny_model_cfg(tiny_bert, backbone=backbone, num_queries=8)).eval()
    assert net.size_divisibility >= 1
    _, text, _ = two_image_batch(tokenizer)
    inputs = text.model_inputs()
    single = {k: v[:1] for k, v in inputs.items()}
    with torch.no_grad():
        out = net(torch.randn(1, 3, 97, 131), **single)
        assert out["pred_boxes"].shape == (1, 8, 4) and torch.isfinite(out["pred_boxes"]).all()
        hf = net.detector(pixel_values=torch.randn(1, 3, 97, 131), input_ids=single["input_ids"],
                          attention_mask=single["attention_mask"], token_type_ids=single["token_type_ids"])
        assert torch.isfinite(hf.pred_boxes).all()
        batch = _odd_size_batch([(97, 131), (101, 89)])
        assert batch["images"].shape[-2:] == (101, 131)
        out = net(batch["images"], **inputs, pixel_mask=batch["pixel_mask"])
        assert out["pred_boxes"].shape == (2, 8, 4) and torch.isfinite(out["pred_boxes"]).all()


def test_padding_masks_the_padded_pixels():
    from gdino.model.network import pad_to_multiple

    images = torch.ones(2, 3, 97, 131)
    mask = torch.ones(2, 97, 131, dtype=torch.bool)
    mask[1, :, 100:] = False
    padded, padded_mask = pad_to_multiple(images, mask, 32)
    assert padded.shape[-2:] == (128, 160) and padded_mask.shape == (2, 128, 160)
    assert padded_mask.dtype == torch.bool and padded_mask[0, :97, :131].all() and not padded_mask[0, 97:].any()
    assert not padded_mask[1, :, 100:].any() and padded[:, :, 97:].abs().sum() == 0
    same, none = pad_to_multiple(torch.ones(1, 3, 64, 64), None, 32)
    assert same.shape == (1, 3, 64, 64) and none is None  # nothing to pad: unchanged
    _, made = pad_to_multiple(torch.ones(1, 3, 65, 64), None, 32)
    assert made.shape == (1, 96, 64) and made[0, :65].all() and not made[0, 65:].any()


def test_collate_pads_to_the_batch_max_rounded_to_a_multiple():
    from gdino.data.datasets import collate_fn

    items = [{"image": torch.ones(3, h, w), "target": {"size": (h, w)}} for h, w in [(97, 131), (101, 89)]]
    plain = collate_fn(items)
    assert plain["images"].shape[-2:] == (101, 131)
    rounded = collate_fn(items, size_divisibility=32)
    assert rounded["images"].shape[-2:] == (128, 160)
    mask = rounded["pixel_mask"]
    assert mask[0, :97, :131].all() and not mask[0, 97:].any() and not mask[0, :, 131:].any()
    assert mask[1, :101, :89].all() and not mask[1, :, 89:].any()
