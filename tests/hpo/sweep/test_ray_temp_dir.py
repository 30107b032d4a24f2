"""Ray's temp dir (issue 12 part 7): a results dir as short as `/data/runs/exp1` put `<sweep dir>/ray` in
the 43-60 character band where Ray's unix sockets exceed AF_UNIX's 107 bytes and `ray.init` failed. One
real start of a private local instance from such a sweep dir (the path lengths themselves are checked
without Ray in test_reliability_units.py)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

ray = pytest.importorskip("ray")


def test_a_short_results_dir_starts_a_local_ray_instance():
    from hpo.sweep.cluster import connect, disconnect

    if ray.is_initialized():
        pytest.skip("needs a process without Ray (another module's cluster is still up)")
    root = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))  # /tmp/rXXXXXXXX: as short as /data/runs/exp1
    sweep_dir = root / "automl" / "sweep_bohb_20261202-082205"
    assert 43 <= len(str(sweep_dir / "ray")) <= 60  # the band that failed
    cluster = connect(None, sweep_dir, num_cpus=1, object_store_memory=100_000_000)
    try:
        assert cluster.started_here and cluster.temp_dir.startswith("/tmp/gdray-")
        assert ray.get(ray.remote(lambda: 41 + 1).remote(), timeout=120) == 42
    finally:
        disconnect(cluster)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(cluster.temp_dir, ignore_errors=True)
