"""Fixtures for the model tests (helpers in tiny_model.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_model import make_tiny_bert, tiny_model_cfg


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("text") / "tiny-bert")


@pytest.fixture(scope="session")
def tiny_cfg(tiny_bert):
    return tiny_model_cfg(tiny_bert)


@pytest.fixture()
def tiny_net(tiny_cfg):
    from gdino.model.network import build_network

    torch.manual_seed(0)
    return build_network(tiny_cfg)


@pytest.fixture(scope="session")
def tokenizer(tiny_bert):
    from gdino.model.text import load_tokenizer

    return load_tokenizer(str(tiny_bert))
