"""Our trainer's own checkpoints load through the weights-only allow-list, completely."""
from __future__ import annotations

import logging
from pathlib import Path

from gdino.model.checkpoints import read_checkpoint
from gdino.model.weights import checkpoint_model_config, load_network


def test_trained_checkpoint_loads_weights_only_and_completely(trained, caplog):
    cfg, _, _ = trained
    checkpoints = sorted(Path(cfg.results_dir).glob("*.pth"))
    assert checkpoints, "the tiny run wrote no checkpoint"
    checkpoint = read_checkpoint(checkpoints[-1])  # torch.load(weights_only=True) with our safe globals
    assert "hyper_parameters" in checkpoint.meta
    assert checkpoint_model_config(checkpoints[-1])["hidden_dim"] == cfg.model.hidden_dim
    with caplog.at_level(logging.INFO):
        net = load_network(cfg, checkpoints[-1])
    assert "ours (gdino)" in caplog.text and "NOT LOADED" not in caplog.text
    assert not net.training
