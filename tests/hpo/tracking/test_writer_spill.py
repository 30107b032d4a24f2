"""Nothing lost (issue 12 part 6): the MLflow writer's spill file. A writer SIGKILLed during a server
outage leaves its buffered writes in the file; the next writer on it replays them, each metric exactly
once, also when writes reached the store but were not yet marked applied."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from waiting import wait_for  # noqa: E402

from hpo.tracking.writer import MlflowWriter

HERE = Path(__file__).parent
KEYS = ("val_mAP50", "train_loss")


def _history(uri: str, experiment: str, key: str) -> list[int]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    [run] = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return sorted(m.step for m in client.get_metric_history(run.info.run_id, key))


def test_writes_applied_but_not_marked_are_not_written_twice(tmp_path):
    uri, spill = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "spill.jsonl"
    first = MlflowWriter(uri, "spill", spill_path=spill)
    first.ensure_run("trial:a", lookup_tags={"trial_id": "a"}, tags={}, run_name="trial_a")
    for step in range(5):
        first.log_metrics("trial:a", {k: step / 10 for k in KEYS}, step=step)
    assert first.flush(timeout=120)
    # the driver died after the store took the writes but before the file said so
    lines = [ln for ln in spill.read_text().splitlines() if "applied" not in json.loads(ln)]
    spill.write_text("\n".join(lines) + "\n")

    second = MlflowWriter(uri, "spill", spill_path=spill)
    assert second.replayed == 6  # ensure_run + 5 metric batches, all replayed ...
    second.log_metrics("trial:a", {k: 0.5 for k in KEYS}, step=5)
    assert second.close(timeout=120), second.last_error
    for key in KEYS:
        assert _history(uri, "spill", key) == [0, 1, 2, 3, 4, 5]  # ... and each step is there once
    assert not spill.exists()  # a complete close leaves no spill file


def test_an_empty_queue_compacts_the_spill_file_and_replay_still_finds_the_runs(tmp_path, monkeypatch):
    import hpo.tracking.writer as writer_module

    monkeypatch.setattr(writer_module, "COMPACT_AFTER_LINES", 10)
    uri, spill = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "spill.jsonl"
    first = MlflowWriter(uri, "spill", spill_path=spill)
    first.ensure_run("trial:a", lookup_tags={"trial_id": "a"}, tags={}, run_name="trial_a")
    for step in range(20):
        first.log_metrics("trial:a", {"val_mAP50": step / 10}, step=step)
    assert first.flush(timeout=120)
    assert len(spill.read_text().splitlines()) < 10  # the ensure_run line and the applied mark

    second = MlflowWriter(uri, "spill", spill_path=spill)
    assert second.replayed == 0
    second.log_metrics("trial:a", {"val_mAP50": 2.0}, step=20)  # its run is found again by its tags
    assert second.close(timeout=120), second.last_error
    assert _history(uri, "spill", "val_mAP50") == list(range(21))


@pytest.mark.mlflow_server
@pytest.mark.reliability
@pytest.mark.timeout(300)
def test_a_writer_killed_during_an_outage_loses_nothing(mlflow_server, tmp_path, fast_mlflow_retries):
    spill = tmp_path / "spill.jsonl"
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"dir": str(tmp_path), "uri": mlflow_server.url, "experiment": "spill-kill",
                                "spill": str(spill)}))
    child = subprocess.Popen([sys.executable, str(HERE / "spill_children.py"), "writer", str(args)],
                             env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    try:
        wait_for(lambda: (tmp_path / "flushed").exists() or child.poll() is not None, 120, "first writes")
        assert child.poll() is None
        mlflow_server.stop()
        (tmp_path / "outage").write_text("down")
        wait_for(lambda: (tmp_path / "queued").exists(), 60, "buffered writes")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    mlflow_server.start()

    replay = MlflowWriter(mlflow_server.url, "spill-kill", spill_path=spill)
    assert replay.replayed == 6  # 5 metric batches and the terminate, all from the killed writer
    assert replay.close(timeout=120), replay.last_error
    [run] = mlflow_server.runs("spill-kill")
    assert run["info"]["status"] == "FINISHED"
    for key in KEYS:
        steps = [m["step"] for m in mlflow_server.history(run["info"]["run_id"], key)]
        assert sorted(steps) == list(range(10)), key  # every step, once
