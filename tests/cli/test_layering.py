"""The layers import one way: cli -> hpo -> gdino, trt; trt -> gdino; gdino imports none of them.

Checked on the source text (every import statement, also the ones inside functions) and by importing
each lower package in a fresh interpreter and looking at what it pulled in."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from cli.registry import ACTIONS, JOB_ACTIONS, SCHEMA_ACTIONS
from gdino.actions import SPEC_ACTION_NAMES

REPO = Path(__file__).resolve().parents[2]
# package -> the project packages it must never import
FORBIDDEN = {"gdino": ("cli", "hpo", "trt"), "trt": ("cli", "hpo"), "hpo": ("cli",)}


def _imports_of(package: str, names: tuple[str, ...]) -> list[str]:
    pattern = re.compile(rf"^\s*(from\s+({'|'.join(names)})(\.|\s)|import\s+({'|'.join(names)})(\.|\s|$|,))")
    hits = []
    for path in sorted((REPO / package).rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.match(line):
                hits.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    return hits


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_upward_import_statements(package):
    assert _imports_of(package, FORBIDDEN[package]) == []


def test_the_pattern_finds_an_upward_import(tmp_path):
    """The check above can fail: the same pattern on a file that does import upward."""
    names = FORBIDDEN["gdino"]
    pattern = re.compile(rf"^\s*(from\s+({'|'.join(names)})(\.|\s)|import\s+({'|'.join(names)})(\.|\s|$|,))")
    assert pattern.match("    from hpo.cli import main") and pattern.match("import cli")
    assert not pattern.match("from gdino.spec import load_spec") and not pattern.match("import hpotools")


@pytest.mark.parametrize("package, modules", [
    ("gdino", "gdino.spec, gdino.schema_gen, gdino.actions, gdino.resources"),
    ("trt", "trt.actions, trt.export, trt.engine, trt.quantize"),
    ("hpo", "hpo.api, hpo.policy, hpo.schema_reader, hpo.promote"),
])
def test_importing_a_lower_package_loads_nothing_above_it(package, modules):
    code = (f"import sys; import {modules}; "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(FORBIDDEN[package])!r}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_one_action_table():
    """Every spec-driven action of gdino.actions has exactly one CLI action that runs it as a job."""
    assert SCHEMA_ACTIONS == JOB_ACTIONS == SPEC_ACTION_NAMES
    assert len({a.name for a in ACTIONS}) == len(ACTIONS)
    assert all(a.module.startswith("cli.") for a in ACTIONS)
