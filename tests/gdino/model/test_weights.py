"""Loading our own checkpoints: the load table, refused partial loads, allow_partial_load, safe unpickling,
frozen parts left out of a checkpoint (gdino_omitted)."""
from __future__ import annotations

import argparse
import logging

import pytest
import torch
from tiny_model import tiny_model_cfg

from gdino.errors import CheckpointError
from gdino.model.network import build_network
from gdino.model.weights import load_weights, read_state_dict


def _other(tiny_bert, **changes):
    torch.manual_seed(1)
    return build_network(tiny_model_cfg(tiny_bert, **changes))


def test_our_state_dict_loads_every_part_and_logs_the_table(tiny_net, tiny_bert, tmp_path, caplog):
    torch.save(tiny_net.state_dict(), tmp_path / "m.pth")
    other = _other(tiny_bert)
    with caplog.at_level(logging.INFO):
        report = load_weights(other, tmp_path / "m.pth")
    assert report.ok and report.family == "ours (gdino)"
    assert {p for p, c in report.parts.items() if c.expected} == {"backbone", "text encoder", "encoder", "decoder",
                                                                   "heads"}
    assert all(c.loaded == c.expected for c in report.parts.values())
    backbone = report.parts["backbone"]
    assert f"backbone      {backbone.expected}/{backbone.expected} tensors" in caplog.text
    for name, value in tiny_net.state_dict().items():
        assert torch.equal(other.state_dict()[name], value), name


def test_lightning_style_checkpoint_loads(tiny_net, tiny_bert, tmp_path):
    torch.save({"state_dict": {f"net.{k}": v for k, v in tiny_net.state_dict().items()},
                "hyper_parameters": {"spec": {"model": {"hidden_dim": 32}}}}, tmp_path / "m.ckpt")
    assert load_weights(_other(tiny_bert), tmp_path / "m.ckpt").ok


def test_a_removed_tensor_is_an_error_naming_it(tiny_net, tiny_bert, tmp_path):
    state = tiny_net.state_dict()
    del state["detector.model.level_embed"]
    torch.save(state, tmp_path / "m.pth")
    with pytest.raises(CheckpointError, match=r"1 network tensors not in the checkpoint \(encoder: "
                                              r"detector\.model\.level_embed\)") as err:
        load_weights(_other(tiny_bert), tmp_path / "m.pth")
    assert "allow_partial_load" in str(err.value)


def test_a_tensor_that_fits_nowhere_is_an_error(tiny_net, tiny_bert, tmp_path):
    state = tiny_net.state_dict()
    state["detector.model.no_such_tensor"] = torch.zeros(2)
    torch.save(state, tmp_path / "m.pth")
    with pytest.raises(CheckpointError, match="fit nowhere.*no_such_tensor"):
        load_weights(_other(tiny_bert), tmp_path / "m.pth")


def test_allow_partial_load_gives_the_table_and_a_warning(tiny_net, tiny_bert, tmp_path, caplog):
    torch.save(tiny_net.state_dict(), tmp_path / "m.pth")
    other = _other(tiny_bert, num_queries=6, allow_partial_load=True)  # query embedding shape differs
    before = other.state_dict()["detector.model.query_position_embeddings.weight"].clone()
    with caplog.at_level(logging.INFO):
        report = load_weights(other, tmp_path / "m.pth")
    assert not report.ok
    assert report.mismatched == ["detector.model.query_position_embeddings.weight (12, 32) vs (6, 32)"]
    assert report.missing == ["detector.model.query_position_embeddings.weight"]
    assert report.parts["decoder"].loaded == report.parts["decoder"].expected - 1
    assert "PARTIAL LOAD" in caplog.text
    assert torch.equal(other.state_dict()["detector.model.query_position_embeddings.weight"], before)
    name = "detector.model.input_proj_vision.0.0.weight"
    assert torch.equal(other.state_dict()[name], tiny_net.state_dict()[name])
    with pytest.raises(CheckpointError, match="differ in shape"):
        load_weights(_other(tiny_bert, num_queries=6), tmp_path / "m.pth")


def test_a_pickle_that_needs_code_is_refused(tiny_net, tmp_path):
    torch.save({"state_dict": tiny_net.state_dict(), "args": argparse.Namespace(lr=1.0)}, tmp_path / "m.pth")
    with pytest.raises(CheckpointError, match="refused to read .*argparse.Namespace"):
        read_state_dict(tmp_path / "m.pth")


def test_unrelated_or_missing_files_are_checkpoint_errors(tiny_net, tmp_path):
    torch.save({"something": torch.zeros(3)}, tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match="unknown checkpoint layout"):
        load_weights(tiny_net, tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_weights(tiny_net, tmp_path / "missing.pth")


def _omitting(net, fingerprint: str) -> dict:
    prefix = "detector.model.text_backbone."
    return {"state_dict": {f"net.{k}": v for k, v in net.state_dict().items() if not k.startswith(prefix)},
            "gdino_omitted": {"text_encoder": {"prefixes": [f"net.{prefix}"], "source": "tiny-bert",
                                               "fingerprint": fingerprint}}}


def test_a_left_out_text_encoder_counts_as_loaded_when_its_source_matches(tiny_net, tiny_bert, tmp_path):
    from gdino.model.frozen import module_fingerprint

    other = _other(tiny_bert)
    other.text_backbone.load_state_dict(tiny_net.text_backbone.state_dict())  # "rebuilt from the same source"
    torch.save(_omitting(tiny_net, module_fingerprint(tiny_net.text_backbone)), tmp_path / "m.ckpt")
    report = load_weights(other, tmp_path / "m.ckpt")
    text = report.parts["text encoder"]
    assert report.ok and text.kept == text.expected > 0 and text.loaded == 0
    torch.save(_omitting(tiny_net, "0" * 64), tmp_path / "bad.ckpt")
    with pytest.raises(CheckpointError, match="left out its text_encoder .*differs from that source"):
        load_weights(_other(tiny_bert), tmp_path / "bad.ckpt")


def test_different_values_for_a_tied_tensor_are_refused(tiny_net, tiny_bert, tmp_path):
    """HF shares one box head across decoder layers; a checkpoint with per-layer heads cannot fit it."""
    state = tiny_net.state_dict()
    state["detector.bbox_embed.1.layers.0.weight"] = state["detector.bbox_embed.1.layers.0.weight"] + 1.0
    torch.save(state, tmp_path / "m.pth")
    with pytest.raises(CheckpointError, match="tied to .* different values"):
        load_weights(_other(tiny_bert), tmp_path / "m.pth")
