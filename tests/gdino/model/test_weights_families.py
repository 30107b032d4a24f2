"""IDEA, Open-GroundingDino, TAO and HF checkpoints load completely and give the reference's outputs.

IDEA/TAO: the tensor names, shapes and dtypes are IDEA's own `GroundingDINO.state_dict()` (fixture
idea_swint_tiny.json, written by fixtures/make_idea_fixture.py from IDEA's code); the expected outputs are
IDEA's forward on those seeded values (idea_swint_tiny_outputs.pt). TAO's names are IDEA's renamed by TAO's
own converter (reference_states.tao_names). HF: a tiny `GroundingDinoForObjectDetection` with an HF Swin-T
backbone, saved with `save_pretrained`, against HF's own forward.
"""
from __future__ import annotations

import pytest
import torch
from idea_reference import CAPTION, TINY
from reference_states import FIXTURES, fixture_state, tao_names
from tiny_model import tiny_model_cfg

from gdino.model.network import build_network
from gdino.model.weights import load_weights

SIZES = ((96, 96), (97, 131))
TOLERANCE = 1e-4


def image(height: int, width: int) -> torch.Tensor:
    """The same seeded image as fixtures/make_idea_fixture.py."""
    return torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(height * 1000 + width))


@pytest.fixture(scope="module")
def idea_state() -> dict[str, torch.Tensor]:
    return fixture_state("idea_swint_tiny.json")


@pytest.fixture(scope="module")
def idea_outputs() -> dict:
    return torch.load(FIXTURES / "idea_swint_tiny_outputs.pt", weights_only=True)


def _idea_net(tiny_bert, **changes):
    return build_network(tiny_model_cfg(tiny_bert, backbone="swin_tiny_224_1k", **{**TINY, **changes}),
                         load_pretrained=False).eval()


@pytest.fixture(scope="module")
def idea_net(tiny_bert):
    """One network for the IDEA-shaped checkpoints: every test loads all of its tensors (or fails first)."""
    return _idea_net(tiny_bert)


def _text(tokenizer):
    from gdino.model.text import tokenize_batch

    return tokenize_batch(tokenizer, [CAPTION], [["red circle", "blue square"]], TINY["max_text_len"])


def assert_same_outputs(net, tokenizer, expected: dict, logit_offset: float = 0.0) -> None:
    text = _text(tokenizer)
    width = text.input_ids.shape[1]
    with torch.no_grad():
        for height, img_width in SIZES:
            out = net(image(height, img_width), **text.model_inputs())
            ref = expected[f"{height}x{img_width}"]
            ours, theirs = out["pred_logits"][..., :width], ref["pred_logits"][..., :width] + logit_offset
            finite = torch.isfinite(theirs)
            assert torch.equal(torch.isfinite(ours), finite)
            assert (ours[finite] - theirs[finite]).abs().max() <= TOLERANCE, (height, img_width)
            assert (out["pred_boxes"] - ref["pred_boxes"]).abs().max() <= TOLERANCE, (height, img_width)


def _assert_complete(report) -> None:
    assert report.ok, report.summary()
    assert all(c.loaded == c.expected for c in report.parts.values()), report.summary()


def test_idea_checkpoint_loads_completely_and_matches_ideas_outputs(idea_state, idea_outputs, idea_net, tokenizer,
                                                                    tmp_path):
    torch.save({"model": idea_state}, tmp_path / "groundingdino_tiny.pth")  # IDEA's release format
    net = idea_net
    report = load_weights(net, tmp_path / "groundingdino_tiny.pth")
    assert report.family == "IDEA / Open-GroundingDino"
    _assert_complete(report)
    # nothing left over: every IDEA tensor is placed except the pooler and recomputed index buffers
    assert set(report.ignored) == {k for k in idea_state if k.startswith("bert.pooler.")
                                   or k.endswith("relative_position_index")}
    assert_same_outputs(net, tokenizer, idea_outputs)


def test_open_groundingdino_module_prefix(idea_state, idea_net, tmp_path):
    torch.save({"model": {f"module.{k}": v for k, v in idea_state.items()}}, tmp_path / "checkpoint0011.pth")
    _assert_complete(load_weights(idea_net, tmp_path / "checkpoint0011.pth"))


@pytest.mark.parametrize("suffix", [".pth", ".ckpt"])
def test_tao_checkpoint_loads_completely_and_matches(idea_state, idea_outputs, idea_net, tokenizer, tmp_path,
                                                     suffix):
    path = tmp_path / f"model_epoch_011{suffix}"
    torch.save({"state_dict": tao_names(idea_state), "tao_model": "grounding_dino", "epoch": 11}, path)
    report = load_weights(idea_net, path)
    assert report.family == "NVIDIA TAO grounding_dino"
    _assert_complete(report)
    if suffix == ".pth":  # the same tensors as the IDEA test; one output check is enough for the wrapper
        assert_same_outputs(idea_net, tokenizer, idea_outputs)


def test_tao_contrastive_bias_of_shape_1_loads_into_our_scalar(idea_state, idea_outputs, tiny_bert, tokenizer,
                                                              tmp_path):
    """TAO's ContrastiveEmbed keeps `bias` as a [1] parameter (model_utils.py), shared by every decoder layer
    and copied for the encoder; ours are scalars. A constant bias shifts every logit by itself."""
    state = tao_names(idea_state)
    bias = torch.tensor([-0.5])
    for layer in range(TINY["dec_layers"]):
        state[f"model.model.class_embed.{layer}.bias"] = bias
        state[f"model.model.transformer.decoder.class_embed.{layer}.bias"] = bias
    state["model.model.transformer.enc_out_class_embed.bias"] = bias
    torch.save({"state_dict": state}, tmp_path / "tao.pth")
    net = _idea_net(tiny_bert, class_embed_bias=True)
    _assert_complete(load_weights(net, tmp_path / "tao.pth"))
    assert_same_outputs(net, tokenizer, idea_outputs, logit_offset=-0.5)


def test_a_tensor_missing_from_a_tao_checkpoint_is_named(idea_state, idea_net, tmp_path):
    from gdino.errors import CheckpointError

    state = tao_names(idea_state)
    del state["model.model.transformer.encoder.text_layers.0.self_attn.in_proj_weight"]
    torch.save({"state_dict": state}, tmp_path / "tao.pth")
    with pytest.raises(CheckpointError, match=r"3 network tensors not in the checkpoint \(encoder: "
                                              r"detector\.model\.encoder\.layers\.0\.text_enhancer_layer"):
        load_weights(idea_net, tmp_path / "tao.pth")


# ------------------------------------------------------------------------------------------------ HF
def _hf_detector(net_cfg):
    """An HF GroundingDino with HF's own Swin-T backbone and otherwise our network's configuration."""
    from transformers import GroundingDinoForObjectDetection, SwinConfig

    from gdino.model.network import hf_config

    config = hf_config(net_cfg)
    config.backbone_config = SwinConfig(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7,
                                        out_indices=[2, 3, 4], drop_path_rate=0.0)
    torch.manual_seed(3)
    detector = GroundingDinoForObjectDetection(config).eval()
    with torch.no_grad():  # HF initialises some tensors to constants; random values make the comparison bite
        for name, tensor in detector.state_dict().items():
            if tensor.is_floating_point() and "norm" not in name:
                tensor.normal_(0.0, 0.02)
    return detector


# HF's Swin drops the shift and shrinks the window on a stage whose map is not larger than the window
# (transformers SwinLayer.set_shift_and_window_size); TAO/IDEA never do. So HF's outputs equal ours (TAO's
# Swin) when every stage map exceeds 7: inputs above 224 px per side.
HF_SIZES = ((256, 256), (263, 301))


@pytest.fixture(scope="module")
def hf_pair(tiny_bert):
    """(HF detector with an HF Swin-T backbone, our network of the same configuration)."""
    net_cfg = tiny_model_cfg(tiny_bert, backbone="swin_tiny_224_1k", hidden_dim=64, nheads=4, num_queries=20,
                             max_text_len=32)
    return _hf_detector(net_cfg), build_network(net_cfg, load_pretrained=False).eval()


def test_hf_save_pretrained_folder_loads_completely_and_matches_hf(hf_pair, tokenizer, tmp_path):
    detector, net = hf_pair
    detector.save_pretrained(tmp_path / "hf")
    report = load_weights(net, tmp_path / "hf")
    assert report.family == "HF transformers GroundingDino"
    _assert_complete(report)
    assert report.parts["backbone"].expected == 175  # 169 Swin-T tensors + 3 per-level norms
    text = _text(tokenizer)
    with torch.no_grad():
        for height, width in HF_SIZES:
            pixels = image(height, width)
            theirs = detector(pixel_values=pixels, input_ids=text.input_ids, attention_mask=text.attention_mask,
                              token_type_ids=text.token_type_ids)
            ours = net(pixels, **text.model_inputs())
            finite = torch.isfinite(theirs.logits)
            assert torch.equal(torch.isfinite(ours["pred_logits"]), finite)
            assert (ours["pred_logits"][finite] - theirs.logits[finite]).abs().max() <= TOLERANCE
            assert (ours["pred_boxes"] - theirs.pred_boxes).abs().max() <= TOLERANCE


def test_hf_single_weights_files(hf_pair, tmp_path):
    from safetensors.torch import save_file

    detector, net = hf_pair
    state = detector.state_dict()  # transformers 5's in-memory names (q_proj, ...), tied aliases included
    torch.save(state, tmp_path / "pytorch_model.bin")
    untied = {k: v.contiguous() for k, v in state.items()  # safetensors keeps one name per shared tensor
              if "decoder.bbox_embed" not in k
              and not (k.startswith("bbox_embed.") and not k.startswith("bbox_embed.0."))}
    save_file(untied, str(tmp_path / "model.safetensors"))
    for name in ("pytorch_model.bin", "model.safetensors"):
        _assert_complete(load_weights(net, tmp_path / name))


@pytest.mark.slow
def test_fixture_is_what_ideas_own_code_computes(idea_state, idea_outputs, tmp_path):
    """Only where IDEA's code is installed (see idea_reference.py; never in CI): the stored names, shapes and
    outputs are still what IDEA's model gives for the seeded values."""
    import idea_reference
    from tiny_model import make_tiny_bert
    from transformers import BertConfig, BertModel

    if not idea_reference.available():
        pytest.skip("IDEA's GroundingDINO code (rf-groundingdino) is not installed; see idea_reference.py")
    bert = make_tiny_bert(tmp_path / "bert")
    BertModel(BertConfig.from_pretrained(bert), add_pooling_layer=False).save_pretrained(bert)
    model = idea_reference.build_idea_model(bert)
    own = model.state_dict()
    assert [(k, list(v.shape)) for k, v in own.items()] == [(k, list(v.shape)) for k, v in idea_state.items()]
    model.load_state_dict({k: (v if v.is_floating_point() else own[k]) for k, v in idea_state.items()})
    for height, width in SIZES:
        out = idea_reference.idea_outputs(model, image(height, width))
        for key in ("pred_logits", "pred_boxes"):
            assert torch.equal(out[key], idea_outputs[f"{height}x{width}"][key])
