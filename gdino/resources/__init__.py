"""Packaged copies of the generated schemas/ and references/ (written by `grounding_dino schema --write`).

Installed code reads them with importlib.resources (`files()`), never from the repository checkout:
a wheel installed on a cluster node has no checkout. The top-level schemas/ and references/ of the
repository are the reviewable copies; `grounding_dino schema --check` keeps both equal to the generator.
"""
from __future__ import annotations

from importlib.resources import files
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importlib.resources.abc is 3.11+; the annotation is only read by type checkers
    from importlib.resources.abc import Traversable

def resources() -> "Traversable":
    """The packaged resources folder: `resources() / "schemas" / "train.schema.json"`."""
    return files(__name__)
