"""The sweep tests' private 2-CPU local Ray cluster: one per test module (`cluster`), started on first
use and shut down after the module (never `ray stop`: other Ray instances may run on the machine)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from hpo.sweep.cluster import connect, disconnect, preflight

    c = connect(None, tmp_path_factory.mktemp("ray"), num_cpus=2, object_store_memory=200_000_000)
    try:
        preflight(c)
        yield c
    finally:
        disconnect(c)
