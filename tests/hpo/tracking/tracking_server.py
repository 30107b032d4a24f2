"""A real `mlflow server` on loopback for the tracking tests (SQLite backend, local artifact folder),
stoppable and restartable, read back through its REST API."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

SERVER_START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """`mlflow server` with a SQLite backend and a local artifact folder; stoppable and restartable."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = root / "mlflow.db"
        self.artifacts = root / "artifacts"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{self.db}",
                   "--artifacts-destination", str(self.artifacts), "--host", "127.0.0.1",
                   "--port", str(self.port), "--workers", "1"]
        env = {**os.environ, "MLFLOW_ENABLE_TELEMETRY": "false", "DO_NOT_TRACK": "1"}
        log = open(self.root / "server.log", "ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)  # its own group: stop it and its workers
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {(self.root / 'server.log').read_text()[-2000:]}")
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)  # polling for readiness, not a timed assertion
        raise RuntimeError("mlflow server did not become healthy")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)  # the group of the process we started, nothing else
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    # ---- reading back through the REST API
    def api(self, endpoint: str, body: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
        if body is not None:
            reply = requests.post(f"{self.url}/api/2.0/mlflow/{endpoint}", json=body, timeout=30)
        else:
            reply = requests.get(f"{self.url}/api/2.0/mlflow/{endpoint}", params=params, timeout=30)
        reply.raise_for_status()
        return reply.json()

    def runs(self, experiment_name: str) -> list[dict[str, Any]]:
        experiment = self.api("experiments/get-by-name", experiment_name=experiment_name)["experiment"]
        runs, token = [], None
        while True:
            body = {"experiment_ids": [experiment["experiment_id"]], "max_results": 1000}
            if token:
                body["page_token"] = token
            page = self.api("runs/search", body)
            runs += page.get("runs", [])
            token = page.get("next_page_token")
            if not token:
                return runs

    def history(self, run_id: str, key: str) -> list[dict[str, Any]]:
        return self.api("metrics/get-history", run_id=run_id, metric_key=key).get("metrics", [])


def tags_of(run: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def params_of(run: dict[str, Any]) -> dict[str, str]:
    return {p["key"]: p["value"] for p in run["data"].get("params", [])}
