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

    from transformers import BertConfig

    from tiny_model import make_tiny_bert
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
