"""`ray start --head` on loopback (private temp dir, free ports), a tiny sweep submitted through the
Ray Jobs API, SUCCEEDED expected. The head is stopped through the PIDs this test started (ray_nodes.py).
Never `ray stop` (other people's Ray may be running)."""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
from ray_nodes import LocalRayNode

pytestmark = [pytest.mark.ray, pytest.mark.timeout(480)]

JOB_DIR = Path(__file__).parent / "job"


@pytest.fixture
def ray_head() -> Iterator[LocalRayNode]:
    head = LocalRayNode(num_cpus=2)
    try:
        head.start()
        yield head
    finally:
        head.stop()
    assert head.our_pids() == []  # nothing of ours is left running
    shutil.rmtree(head.temp_dir, ignore_errors=True)
    shutil.rmtree(head.marker, ignore_errors=True)


def test_tiny_sweep_submitted_as_a_ray_job_succeeds(ray_head: LocalRayNode, tmp_path: Path) -> None:
    from ray.job_submission import JobStatus, JobSubmissionClient

    from hpo.api import sweep_status

    results, sweep_dir = tmp_path / "results", tmp_path / "sweep"
    client = JobSubmissionClient(ray_head.dashboard_url)
    job_id = client.submit_job(
        # what users run is `ray job submit --working-dir . -- grounding_dino train -e spec.yaml`; the job's
        # cheap_train.py runs that same `train` entry point with the cheap trainable
        entrypoint=f"{sys.executable} cheap_train.py -e sweep_spec.yaml results_dir={results} "
                   f"--sweep-dir {sweep_dir} --backend function",
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
