"""`ray start --head` on loopback (private temp dir, free ports), a tiny sweep submitted through the
Ray Jobs API, SUCCEEDED expected. The head is stopped through the PIDs this test started: `ray start
--block` runs in its own session, so its process group is exactly our instance; any straggler is found
by our unique temp dir in its command line. Never `ray stop` (other people's Ray may be running)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest
import requests

pytestmark = [pytest.mark.ray, pytest.mark.timeout(480)]

JOB_DIR = Path(__file__).parent / "job"
RAY = Path(sys.executable).with_name("ray")
GROUNDING_DINO = Path(sys.executable).with_name("grounding_dino")
START_TIMEOUT_S = 180


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class LocalRayHead:
    def __init__(self) -> None:
        self.temp_dir = tempfile.mkdtemp(prefix="rj", dir="/tmp")  # short: socket paths < 107 chars
        (self.gcs, self.dashboard, self.client, self.agent_http, self.agent_grpc, self.runtime_env,
         self.metrics, self.node_manager, self.object_manager) = free_ports(9)
        self.dashboard_url = f"http://127.0.0.1:{self.dashboard}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, "RAY_ADDRESS": f"127.0.0.1:{self.gcs}",  # every Ray process finds *this* cluster
               "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "MLFLOW_ENABLE_TELEMETRY": "false"}
        command = [str(RAY), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={self.gcs}",
                   "--num-cpus=2", "--object-store-memory=200000000", "--include-dashboard=true",
                   "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard}",
                   f"--ray-client-server-port={self.client}", f"--dashboard-agent-listen-port={self.agent_http}",
                   f"--dashboard-agent-grpc-port={self.agent_grpc}", f"--runtime-env-agent-port={self.runtime_env}",
                   f"--metrics-export-port={self.metrics}", f"--node-manager-port={self.node_manager}",
                   f"--object-manager-port={self.object_manager}", f"--temp-dir={self.temp_dir}",
                   "--disable-usage-stats"]
        log = open(Path(self.temp_dir) / "ray-start.log", "ab")
        self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((Path(self.temp_dir) / "ray-start.log").read_text()[-3000:])
            try:
                if requests.get(f"{self.dashboard_url}/api/version", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)  # polling for readiness, not a timed assertion
        raise RuntimeError("the Ray head did not come up")

    def our_pids(self) -> list[int]:
        """Processes whose command line names our private temp dir (only this instance uses it)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if self.temp_dir.encode() in (entry / "cmdline").read_bytes():
                        pids.append(int(entry.name))
                except OSError:
                    continue
        return pids

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)  # `ray start --block` exits once its processes are gone
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        for pid in self.our_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def ray_head() -> Iterator[LocalRayHead]:
    head = LocalRayHead()
    try:
        head.start()
        yield head
    finally:
        head.stop()
    assert head.our_pids() == []  # nothing of ours is left running
    shutil.rmtree(head.temp_dir, ignore_errors=True)


def test_tiny_sweep_submitted_as_a_ray_job_succeeds(ray_head: LocalRayHead, tmp_path: Path) -> None:
    from ray.job_submission import JobStatus, JobSubmissionClient

    from hpo.api import sweep_status

    results, sweep_dir = tmp_path / "results", tmp_path / "sweep"
    client = JobSubmissionClient(ray_head.dashboard_url)
    job_id = client.submit_job(
        # what users run: `ray job submit --working-dir . -- grounding_dino train -e spec.yaml`
        entrypoint=f"{GROUNDING_DINO} train -e sweep_spec.yaml results_dir={results} --sweep-dir {sweep_dir} "
                   f"--backend function --train-fn hpo.testing:quadratic_train_fn",
        runtime_env={"working_dir": str(JOB_DIR),
                     "env_vars": {"HF_HUB_OFFLINE": "1", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}},
        submission_id="gdino-tiny-sweep")
    deadline = time.monotonic() + 300
    status = client.get_job_status(job_id)
    while not status.is_terminal() and time.monotonic() < deadline:
        time.sleep(1)  # polling the job, not a timed assertion
        status = client.get_job_status(job_id)
    logs = client.get_job_logs(job_id)
    assert status == JobStatus.SUCCEEDED, logs[-3000:]
    assert "best trial" in logs and f"sweep dir: {sweep_dir}" in logs  # the summary and the result table
    assert (results / "mlflow.db").is_file() and (results / "report" / "report.html").is_file()
    result = sweep_status(sweep_dir)
    assert result.state == "finished" and len(result.trials) == 2 and result.best_trial_id is not None
    assert ray_head.our_pids()  # the sweep joined our instance, which is still up until the fixture stops it
