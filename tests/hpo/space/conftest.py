"""Shared fixtures of the search-space tests: TAO's real train schema and small synthetic schemas."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

TAO_SCHEMA = Path(__file__).resolve().parents[2] / "fixtures" / "tao" / "grounding_dino" / "train.schema.json"


@pytest.fixture(scope="session")
def tao_schema_path() -> Path:
    if not TAO_SCHEMA.is_file():
        pytest.skip(f"TAO reference schema not available at {TAO_SCHEMA}")
    return TAO_SCHEMA


def make_schema(leaves: dict[str, dict[str, Any]], *, defaults: list[str] | None = None,
                disabled: list[str] | None = None) -> dict[str, Any]:
    """A TAO-format schema whose `properties` nest the given dotted leaves."""
    properties: dict[str, Any] = {}
    for dotted, node in leaves.items():
        parts = dotted.split(".")
        level = properties
        for part in parts[:-1]:
            level = level.setdefault(part, {"type": "collection", "properties": {}})["properties"]
        level[parts[-1]] = copy.deepcopy(node)
    schema: dict[str, Any] = {"type": "object", "properties": properties,
                              "automl_default_parameters": list(defaults if defaults is not None else leaves)}
    if disabled:
        schema["automl_disabled_parameters"] = list(disabled)
    return schema


@pytest.fixture(name="make_schema")
def make_schema_fixture():
    return make_schema
