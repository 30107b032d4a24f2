"""MlflowWriter against a real SQLite store: get-or-create by tags, no duplicate steps on reuse,
refused writes skipped, an unreachable server never blocks the caller."""
from __future__ import annotations

from pathlib import Path

import pytest
from tracking_server import free_port

from hpo.tracking.mlflow_callback import default_tracking_uri
from hpo.tracking.writer import MlflowWriter

LOOKUP = {"sweep_id": "s1", "trial_id": "t1"}


def write_epochs(uri: str, epochs: range) -> MlflowWriter:
    writer = MlflowWriter(uri, "writer-test")
    writer.ensure_run("trial", lookup_tags=LOOKUP, tags={"state": "RUNNING"}, run_name="trial_t1")
    writer.log_params("trial", {"train.optim.lr": 0.01})
    for epoch in epochs:
        writer.log_metrics("trial", {"val_mAP50": epoch / 10}, step=epoch)
    writer.terminate("trial", "FINISHED")
    assert writer.close(timeout=120), writer.last_error
    return writer


def test_a_second_writer_reuses_the_run_and_skips_logged_steps(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = default_tracking_uri(tmp_path)
    first = write_epochs(uri, range(1, 4))
    second = write_epochs(uri, range(2, 6))  # a resumed trial re-reports epochs 2-3
    assert first.runs["trial"].run_id == second.runs["trial"].run_id
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("writer-test").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    history = client.get_metric_history(runs[0].info.run_id, "val_mAP50")
    assert [(m.step, m.value) for m in history] == [(1, 0.1), (2, 0.2), (3, 0.3), (4, 0.4), (5, 0.5)]


def test_a_refused_write_is_skipped_and_the_rest_still_arrives(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = default_tracking_uri(tmp_path)
    writer = MlflowWriter(uri, "writer-test")
    writer.ensure_run("run", lookup_tags={"k": "v"}, tags={}, run_name="r")
    writer.log_params("run", {"a": 1})
    assert writer.flush(timeout=120)
    writer.runs["run"].params.clear()  # forget it was logged: MLflow refuses a changed param value
    writer.log_params("run", {"a": 2})
    writer.set_tags("run", {"after": "yes"})
    assert writer.close(timeout=120)
    assert writer.dropped == 1
    run = MlflowClient(uri).get_run(writer.runs["run"].run_id)
    assert run.data.params["a"] == "1" and run.data.tags["after"] == "yes"


def test_unreachable_server_never_blocks_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    writer = MlflowWriter(f"http://127.0.0.1:{free_port()}", "nowhere")  # nothing listens there
    writer.ensure_run("run", lookup_tags={"k": "v"}, tags={}, run_name="r")
    for step in range(100):
        writer.log_metrics("run", {"x": float(step)}, step=step)
    # every call above returned although nothing can be written: the ops wait in the queue
    assert writer.flush(timeout=1) is False
    while writer.failures == 0:  # wait for the first failed attempt (importing mlflow takes a while)
        writer.flush(timeout=0.5)
    assert writer.pending == 101 and writer.runs == {} and "Connection refused" in writer.last_error
