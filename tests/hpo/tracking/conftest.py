"""Fixtures of the tracking tests: a private local Ray instance and a real `mlflow server` on loopback.

Both are module-scoped (Ray takes ~5 s, the MLflow server ~16 s to start on 2 cores) and stopped by
what we started: `ray.shutdown()` for the instance `ray.init` started, the server's own process group
(it was started in a new session) for the server.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tracking_sweeps, tracking_server: shared helpers

from tracking_server import MlflowServer  # noqa: E402


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def ray_local() -> Iterator[str]:
    import ray
    import tracking_sweeps

    if ray.is_initialized():
        yield ray.get_runtime_context().gcs_address
        return
    temp_dir = tracking_sweeps.start_private_ray()
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def fast_mlflow_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our writer retries forever itself; MLflow's own retry ladder (minutes) would only slow recovery."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
