"""Fixtures of the command-line tests: TAO's real train schema (tests/fixtures/tao, read-only)."""
from __future__ import annotations

from pathlib import Path

import pytest

TAO_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "tao" / "grounding_dino"


@pytest.fixture(scope="session")
def tao_schema_path() -> Path:
    return TAO_DIR / "train.schema.json"


@pytest.fixture(autouse=True)
def private_data_cache(tmp_path_factory, monkeypatch) -> Path:
    """Archives extracted by `dataset check` go to this session's own cache, not the user's."""
    cache = tmp_path_factory.getbasetemp() / "gdino-cache"
    monkeypatch.setenv("GDINO_DATA_CACHE", str(cache))
    return cache
