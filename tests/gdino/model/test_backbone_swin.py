"""Swin as TAO builds it, and Swin/ResNet backbone files in every layout loading completely.

The official-layout Swin-T here is the backbone part of IDEA's detector state dict (fixture
idea_swint_tiny.json: IDEA's own names and shapes, `backbone.0.*`), not made from our mapping; timm's layout
is timm's own model; the official -> timm conversion used for the reference model is timm's own
`checkpoint_filter_fn`.
"""
from __future__ import annotations

import pytest
import torch
from reference_states import fixture, seeded_state

from gdino.errors import CheckpointError
from gdino.model.backbone import BACKBONES, SwinBackbone, build_backbone, load_backbone_weights

SWIN_T_TENSORS = 169       # timm's swin_tiny without its classifier head and final norm
SWIN_T_LEVEL_NORMS = 6     # weight + bias of norm1, norm2, norm3 (return_interm_indices [1, 2, 3])


@pytest.fixture(scope="module")
def official_swin_t() -> dict[str, torch.Tensor]:
    """IDEA's Swin-T backbone tensors (official layout, with IDEA's per-level norms), seeded values."""
    entries = [e for e in fixture("idea_swint_tiny.json")["entries"] if e[0].startswith("backbone.0.")]
    return {k.removeprefix("backbone.0."): v for k, v in seeded_state(entries).items()}


@pytest.fixture(scope="module")
def swin_t() -> SwinBackbone:
    return build_backbone("swin_tiny_224_1k", [1, 2, 3]).eval()


def _timm_reference(state: dict[str, torch.Tensor]):
    """timm's own Swin-T (the settings TAO needs: any size, always shifted) with `state` via timm's filter."""
    import timm
    from timm.models.swin_transformer import checkpoint_filter_fn

    model = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, strict_img_size=False,
                              always_partition=True).eval()
    model.load_state_dict(checkpoint_filter_fn(state, model), strict=False)
    return model


def _reference_features(model, norms, pixels) -> list[torch.Tensor]:
    """timm's stage outputs 1..3 through our backbone's per-level norms (timm's own model has none)."""
    stages = model.forward_intermediates(pixels, indices=[1, 2, 3], intermediates_only=True)
    return [norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2) for norm, x in zip(norms, stages)]


def test_tao_settings_per_backbone_name():
    assert BACKBONES["swin_tiny_224_1k"].depths == (2, 2, 6, 2)
    assert BACKBONES["swin_base_224_22k"].depths == (2, 2, 12, 2)  # TAO's, not IDEA's (2, 2, 18, 2)
    assert BACKBONES["swin_large_384_22k"].window_size == 12
    assert BACKBONES["swin_base_384_22k"].embed_dim == 128


def test_swin_t_is_built_as_tao_builds_it(swin_t):
    assert swin_t.size_divisibility == 4
    blocks = [b for stage in swin_t.body.layers for b in stage.blocks]
    assert blocks[-1].drop_path1.drop_prob == pytest.approx(0.2)  # linear decay up to drop_path 0.2
    last_stage = swin_t.body.layers[-1].blocks  # a 7x7 window and a shift even where the map is smaller
    assert last_stage[1].window_size == (7, 7) and last_stage[1].shift_size == (3, 3)
    assert sorted(k for k in swin_t.state_dict() if not k.startswith("body.")) == [
        f"norm{i}.{p}" for i in (1, 2, 3) for p in ("bias", "weight")]
    features = swin_t(torch.randn(1, 3, 97, 131)).feature_maps  # no multiple of anything
    assert [tuple(f.shape) for f in features] == [(1, 192, 13, 17), (1, 384, 7, 9), (1, 768, 4, 5)]


def test_timm_layout_loads_169_tensors_and_computes_as_timm(swin_t, tmp_path):
    import timm

    torch.manual_seed(0)
    reference = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False)
    torch.save(reference.state_dict(), tmp_path / "swin_tiny_timm.pth")  # a new user's first try
    report = load_backbone_weights(swin_t, str(tmp_path / "swin_tiny_timm.pth"))
    count = report.parts["backbone"]
    assert (count.loaded, count.fresh, count.expected) == (SWIN_T_TENSORS, SWIN_T_LEVEL_NORMS,
                                                         SWIN_T_TENSORS + SWIN_T_LEVEL_NORMS)
    assert report.ok and sorted(report.ignored) == ["head.fc.bias", "head.fc.weight", "norm.bias", "norm.weight"]
    # 224x224: every stage map is a whole number of 7x7 windows, where timm's and TAO's orders agree
    pixels = torch.randn(1, 3, 224, 224)
    timm_model = _timm_reference(reference.state_dict())
    norms = [swin_t.norm1, swin_t.norm2, swin_t.norm3]
    with torch.no_grad():
        for ours, theirs in zip(swin_t(pixels).feature_maps, _reference_features(timm_model, norms, pixels)):
            assert (ours - theirs).abs().max() <= 1e-4


def test_official_layout_loads_everything_and_equals_timms_conversion(swin_t, official_swin_t, tmp_path):
    torch.save({"model": official_swin_t}, tmp_path / "swin_tiny_official.pth")
    report = load_backbone_weights(swin_t, str(tmp_path / "swin_tiny_official.pth"))
    count = report.parts["backbone"]
    assert report.ok and count.loaded == count.expected == SWIN_T_TENSORS + SWIN_T_LEVEL_NORMS
    assert all(k.endswith("relative_position_index") for k in report.ignored)
    timm_model = _timm_reference(official_swin_t)
    norms = [swin_t.norm1, swin_t.norm2, swin_t.norm3]
    pixels = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        for ours, theirs in zip(swin_t(pixels).feature_maps, _reference_features(timm_model, norms, pixels)):
            assert (ours - theirs).abs().max() <= 1e-4
        # 97x131: timm shifts and then pads, TAO/IDEA pad and then shift, so timm's own model differs there
        # (IDEA's own outputs at this size are matched in test_weights_families.py)
        odd = torch.randn(1, 3, 100, 132)
        differences = [(a - b).abs().max() for a, b in
                       zip(swin_t(odd).feature_maps, _reference_features(timm_model, norms, odd))]
        assert max(differences) > 1e-3


def test_official_imagenet_release_and_detector_prefixes(swin_t, official_swin_t, tmp_path):
    """Microsoft's ImageNet release: no per-level norms (they start fresh, as in TAO), a classifier to drop."""
    release = {k: v for k, v in official_swin_t.items() if not k.startswith("norm")}
    release.update({"norm.weight": torch.ones(768), "norm.bias": torch.zeros(768),
                    "head.weight": torch.zeros(1000, 768), "head.bias": torch.zeros(1000)})
    torch.save({"model": release}, tmp_path / "swin_tiny_patch4_window7_224.pth")
    report = load_backbone_weights(swin_t, str(tmp_path / "swin_tiny_patch4_window7_224.pth"))
    assert report.ok and report.parts["backbone"].loaded == SWIN_T_TENSORS
    tao_backbone = {f"model.model.backbone.0.body.{k}": v for k, v in official_swin_t.items()}
    torch.save({"state_dict": tao_backbone}, tmp_path / "tao_backbone.pth")
    report = load_backbone_weights(swin_t, str(tmp_path / "tao_backbone.pth"))
    assert report.ok and report.parts["backbone"].loaded == SWIN_T_TENSORS + SWIN_T_LEVEL_NORMS


def test_hf_swin_backbone_layout(swin_t, tmp_path):
    from transformers import SwinBackbone as HfSwinBackbone
    from transformers import SwinConfig

    hf = HfSwinBackbone(SwinConfig(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7,
                                   out_indices=[2, 3, 4]))
    torch.save(hf.state_dict(), tmp_path / "hf_swin.pth")
    report = load_backbone_weights(swin_t, str(tmp_path / "hf_swin.pth"))
    assert report.ok and report.parts["backbone"].loaded == SWIN_T_TENSORS + SWIN_T_LEVEL_NORMS
    block = "encoder.layers.0.blocks.1.attention."
    fused = swin_t.state_dict()["body.layers.0.blocks.1.attn.qkv.weight"]
    assert torch.equal(fused[96:192], hf.state_dict()["swin." + block + "k_proj.weight"])


def test_a_wrong_backbone_file_is_refused(swin_t, official_swin_t, tmp_path):
    partial = {k: v for k, v in official_swin_t.items() if "layers.3" not in k}
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match="not in the checkpoint .*body.layers.3"):
        load_backbone_weights(swin_t, str(tmp_path / "partial.pth"))


def test_resnet_from_torchvision_loads_completely(tmp_path):
    import torchvision
    from transformers.models.grounding_dino.modeling_grounding_dino import replace_batch_norm

    ours = build_backbone("resnet_18", [1, 2, 3])
    replace_batch_norm(ours)  # as install_backbone does: frozen BN has no step counter
    reference = torchvision.models.resnet18()
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    report = load_backbone_weights(ours, str(tmp_path / "resnet18.pth"))
    assert report.ok and report.parts["backbone"].loaded == report.parts["backbone"].expected
    assert {why for why in report.ignored.values()} == {
        "ImageNet classifier (fc); a detector does not use it",
        "batch-norm step counter (num_batches_tracked); frozen batch norm has none"}
    assert torch.equal(ours.state_dict()["body.layer4.1.conv2.weight"], reference.state_dict()["layer4.1.conv2.weight"])
