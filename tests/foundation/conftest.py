"""Shared fixtures: the real TAO grounding_dino schemas and templates (tests/fixtures/tao, read-only)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gdino.actions import SPEC_ACTION_NAMES

TAO_DIR = Path(os.environ.get("GDINO_TAO_REFERENCE",
                              Path(__file__).resolve().parents[1] / "fixtures" / "tao" / "grounding_dino"))
ACTIONS = SPEC_ACTION_NAMES
REPO = Path(__file__).resolve().parents[2]


def tao_schema(action: str) -> dict:
    return json.loads((TAO_DIR / f"{action}.schema.json").read_text())


def tao_templates() -> list[Path]:
    return sorted(TAO_DIR.glob("spec_template_*.yaml"))


requires_tao = pytest.mark.skipif(not TAO_DIR.is_dir(), reason=f"TAO reference files not found at {TAO_DIR}")
