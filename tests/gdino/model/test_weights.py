"""Loading weights: our checkpoints, HF names, mismatched tensors skipped with a warning."""
from __future__ import annotations

import logging

import pytest
import torch

from tiny_model import tiny_model_cfg
from gdino.errors import CheckpointError
from gdino.model.network import build_network
from gdino.model.weights import load_weights


def test_hf_format_weights_load_and_mismatches_are_listed(tiny_net, tiny_bert, tmp_path, caplog):
    hf_state = tiny_net.detector.state_dict()  # HF names: model.*, bbox_embed.*, class_embed.*
    path = tmp_path / "hf.pth"
    torch.save(hf_state, path)
    other = build_network(tiny_model_cfg(tiny_bert, num_queries=6))  # query embedding shape differs
    with caplog.at_level(logging.WARNING):
        skipped = load_weights(other, path)
    assert skipped == ["detector.model.query_position_embeddings.weight"]
    assert "query_position_embeddings" in caplog.text
    name = "detector.model.input_proj_vision.0.0.weight"
    assert torch.equal(other.state_dict()[name], tiny_net.state_dict()[name])


def test_lightning_style_checkpoint_loads(tiny_net, tiny_bert, tmp_path):
    torch.save({"state_dict": {f"net.{k}": v for k, v in tiny_net.state_dict().items()}}, tmp_path / "m.pth")
    other = build_network(tiny_model_cfg(tiny_bert))
    assert load_weights(other, tmp_path / "m.pth") == []


def test_unrelated_file_is_a_checkpoint_error(tiny_net, tmp_path):
    torch.save({"something": torch.zeros(3)}, tmp_path / "x.pth")
    with pytest.raises(CheckpointError):
        load_weights(tiny_net, tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_weights(tiny_net, tmp_path / "missing.pth")
