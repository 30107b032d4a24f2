"""A real Tune sweep (cheap trainable, local Ray) with MlflowSweepCallback, read back from a real store:
SQLite through MlflowClient, and a real `mlflow server` through its REST API."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import tracking_sweeps as sweeps
from tracking_server import MlflowServer, params_of, tags_of

from hpo.tracking.mlflow_callback import MlflowSweepCallback, default_tracking_uri

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

EXPECTED_STATE = {"good": "FINISHED", "bad": "KILLED", "fail": "FAILED"}
EXPECTED_EPOCHS = {"good": [1, 2, 3, 4], "bad": [1], "fail": [1]}


def make_callback(uri: str, sweep_id: str, experiment: str, **extra_params: Any) -> MlflowSweepCallback:
    return MlflowSweepCallback(uri, experiment, sweep_id, {**sweeps.SWEEP_PARAMS, **extra_params}, sweeps.RESOLVED_SPEC,
                               sweeps.SPACE_TABLE, True, "val_mAP50", "max", system_metrics_interval_s=0.2)


def finish_with_best(callback: MlflowSweepCallback, report_dir: Path | None = None) -> bool:
    table = callback.trial_table()
    best = max((t for t in table if t["score"] is not None), key=lambda t: t["score"])
    return callback.finish({"trial_id": best["trial_id"], "score": best["score"], "params": best["config"],
                            "metrics": {"val_mAP50": best["score"]}}, "max_recommendations reached",
                           report_dir=report_dir)


def check_layout(runs: list[dict[str, Any]], history: Callable[[str, str], list[int]], sweep_id: str) -> None:
    """`runs`: MLflow REST-shaped run dicts; `history(run_id, key)` -> logged steps."""
    parents = [r for r in runs if tags_of(r).get("gdino.run_type") == "sweep"]
    assert len(parents) == 1
    parent = parents[0]
    parent_id = parent["info"]["run_id"]
    assert tags_of(parent)["sweep_id"] == sweep_id and parent["info"]["status"] == "FINISHED"
    assert params_of(parent)["algorithm"] == "asha" and params_of(parent)["max_epochs"] == "4"
    assert params_of(parent)["encryption_key"] == "***"
    assert params_of(parent).get("mlflow.tracking_uri", "http://***@").startswith("http://***@")
    children = [r for r in runs if tags_of(r).get("gdino.run_type") == "trial"]
    assert len(children) == len(sweeps.CASES)
    for child in children:
        tags, params = tags_of(child), params_of(child)
        case = params["case"]
        assert tags["mlflow.parentRunId"] == parent_id
        assert tags["sweep_id"] == sweep_id and tags["trial_id"]
        assert child["info"]["status"] == EXPECTED_STATE[case] == tags["state"]
        assert params["train.optim.lr"] == "0.001"
        assert params["dataset.source_uri"] == "s3://***@bucket/train.tar.gz"
        assert tags["budget"] == str(EXPECTED_EPOCHS[case][-1])
        for key in ("val_mAP50", "val_mAP", "val_loss", "train_loss", "lr"):
            assert history(child["info"]["run_id"], key) == EXPECTED_EPOCHS[case], (case, key)
        assert history(child["info"]["run_id"], "system/cpu_utilization_percentage")
        if case == "fail":
            assert "simulated crash" in tags["error"] and "token=***" in tags["error"]
    best = tags_of(parent)["best_trial_id"]
    assert params_of(next(c for c in children if tags_of(c)["trial_id"] == best))["case"] == "good"


def test_sweep_layout_in_sqlite(ray_local: str, tmp_path: Path) -> None:
    """Also the live progress table, printed by its callback in the same sweep."""
    import io

    from mlflow import MlflowClient

    from hpo.tracking.progress import SweepProgressCallback

    uri = default_tracking_uri(tmp_path / "results")
    assert uri.startswith("sqlite:////")
    callback = make_callback(uri, "sqlite-sweep", "grounding_dino")
    stream = io.StringIO()
    progress = SweepProgressCallback("val_mAP50", "max", max_epochs=sweeps.EPOCHS, total_trials=3,
                                     interval_s=0.0, stream=stream)
    sweeps.run_sweep([callback, progress], tmp_path / "storage")
    assert finish_with_best(callback)

    final = stream.getvalue().split("== sweep:")[-1]
    assert "3 trials" in final and "1 failed" in final and "1 done" in final and "1 stopped" in final
    assert "RUNNING" in stream.getvalue()  # printed while trials ran, not only at the end
    states = {r.params["case"]: r.state for r in progress.rows.values()}
    assert states == {"good": "DONE", "bad": "STOPPED", "fail": "FAILED"}

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("grounding_dino")
    runs = [_as_rest(r) for r in client.search_runs([experiment.experiment_id])]
    check_layout(runs, lambda run_id, key: [m.step for m in client.get_metric_history(run_id, key)],
                 "sqlite-sweep")
    parent = next(r for r in runs if tags_of(r).get("gdino.run_type") == "sweep")
    artifacts = {a.path for a in client.list_artifacts(parent["info"]["run_id"])}
    assert {"spec", "search_space.json"} <= artifacts
    assert (tmp_path / "results" / "mlartifacts").is_dir()  # beside the database, not ./mlruns
    assert sweeps.files_containing(tmp_path / "results", sweeps.SECRETS) == []


@pytest.mark.mlflow_server
def test_sweep_layout_on_server(ray_local: str, mlflow_server: MlflowServer, tmp_path: Path,
                                caplog: pytest.LogCaptureFixture) -> None:
    """Also the secrets case: encryption_key in the spec and the params, credentials in the tracking
    URI itself and in a trial's config, a token in a trial's error: none reaches the store or our logs."""
    import logging

    from hpo.tracking.report import build_report, summary_text

    caplog.set_level(logging.INFO, logger="hpo")
    uri_with_credentials = mlflow_server.url.replace("http://", f"http://alice:{sweeps.URI_PASSWORD}@")
    callback = make_callback(uri_with_credentials, "server-sweep", "gd-server",  # as a careless caller might
                             mlflow={"tracking_uri": uri_with_credentials})
    sweeps.run_sweep([callback], tmp_path / "storage")
    report = build_report(callback.trial_table(), tmp_path / "report", metric="val_mAP50", mode="max")
    assert finish_with_best(callback, report_dir=report.directory)
    logging.getLogger("hpo.tracking.test").info("done; tracking at %s", uri_with_credentials)
    summary = summary_text(callback.trial_table(), tracking_uri=uri_with_credentials, report=report)
    assert not any(s in caplog.text or s in summary for s in sweeps.SECRETS)

    runs = mlflow_server.runs("gd-server")
    check_layout(runs, lambda run_id, key: [m["step"] for m in mlflow_server.history(run_id, key)], "server-sweep")
    parent = next(r for r in runs if tags_of(r).get("gdino.run_type") == "sweep")
    listed = mlflow_server.api("artifacts/list", run_id=parent["info"]["run_id"], path="report")
    assert "report/report.html" in {f["path"] for f in listed.get("files", [])}
    spec_file = next(mlflow_server.artifacts.rglob("resolved_spec.yaml"))
    assert "encryption_key: '***'" in spec_file.read_text()
    assert sweeps.files_containing(mlflow_server.root, sweeps.SECRETS) == []
    assert sweeps.files_containing(report.directory, sweeps.SECRETS) == []


def test_resumed_sweep_reuses_its_runs(ray_local: str, tmp_path: Path) -> None:
    """A trial fails once; Tuner.restore(resume_errored=True) reruns it: its run is reused, not duplicated."""
    from mlflow import MlflowClient
    from ray import tune

    uri = default_tracking_uri(tmp_path / "results")
    space = {**sweeps.param_space(), "case": tune.grid_search(["good", "fail_once"]),
             "marker": str(tmp_path / "failed-once")}
    sweeps.run_sweep([make_callback(uri, "resume", "grounding_dino")], tmp_path / "storage",
                     name="resumable", trainable=sweeps.fail_once_trainable, space=space, scheduler=None)
    restored = tune.Tuner.restore(str(tmp_path / "storage" / "resumable"), trainable=sweeps.fail_once_trainable,
                                  resume_errored=True)
    results = restored.fit()
    assert not results.errors
    callback = next(c for c in restored._local_tuner.get_run_config().callbacks
                    if isinstance(c, MlflowSweepCallback))
    assert {t["state"] for t in callback.trial_table()} == {"FINISHED"}
    assert finish_with_best(callback)

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("grounding_dino")
    runs = client.search_runs([experiment.experiment_id])
    assert len([r for r in runs if r.data.tags["gdino.run_type"] == "sweep"]) == 1
    children = [r for r in runs if r.data.tags["gdino.run_type"] == "trial"]
    assert sorted(r.data.params["case"] for r in children) == ["fail_once", "good"]
    for child in children:
        assert child.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(child.info.run_id, "val_mAP50")] == [1, 2, 3, 4]


def _as_rest(run: Any) -> dict[str, Any]:
    """An MlflowClient Run in the REST API's JSON shape, so one checker reads both stores."""
    return {"info": {"run_id": run.info.run_id, "status": run.info.status},
            "data": {"tags": [{"key": k, "value": v} for k, v in run.data.tags.items()],
                     "params": [{"key": k, "value": v} for k, v in run.data.params.items()]}}


@pytest.mark.mlflow_server
@pytest.mark.reliability
def test_server_outage_mid_sweep(ray_local: str, mlflow_server: MlflowServer, tmp_path: Path,
                                 fast_mlflow_retries: None) -> None:
    """The server is stopped while a trial runs: the sweep goes on, writes wait, and after a restart
    the store holds every run, status and per-epoch metric."""
    import threading

    from ray import tune

    gate = tmp_path / "gate"
    gate.mkdir()
    space = {**sweeps.param_space(), "case": tune.grid_search(["good", "bad"]), "gate": str(gate)}
    callback = make_callback(mlflow_server.url, "outage", "gd-outage")
    assert callback.parent_run_id  # the parent run exists before the outage

    def stop_server_mid_trial() -> None:
        sweeps.wait_for_file(gate / "reached")
        mlflow_server.stop()
        (gate / "release").write_text("go")

    saboteur = threading.Thread(target=stop_server_mid_trial)
    saboteur.start()
    results = sweeps.run_sweep([callback], tmp_path / "storage", name="outage",
                               trainable=sweeps.gated_trainable, space=space)
    saboteur.join()
    assert len(results) == 2 and not results.errors  # the sweep itself never noticed
    assert callback.writer.pending > 0  # epochs 3-4 and the second trial are buffered

    mlflow_server.start()
    assert finish_with_best(callback)
    assert callback.writer.failures > 0

    runs = mlflow_server.runs("gd-outage")
    assert len(runs) == 3
    children = {params_of(r)["case"]: r for r in runs if tags_of(r).get("gdino.run_type") == "trial"}
    assert {case: run["info"]["status"] for case, run in children.items()} == {"good": "FINISHED", "bad": "KILLED"}
    steps = [m["step"] for m in mlflow_server.history(children["good"]["info"]["run_id"], "val_mAP50")]
    assert steps == [1, 2, 3, 4]
    parent = next(r for r in runs if tags_of(r).get("gdino.run_type") == "sweep")
    assert parent["info"]["status"] == "FINISHED" and tags_of(parent)["best_trial_id"]


@pytest.mark.mlflow_server
@pytest.mark.reliability
def test_eight_concurrent_writers_lose_nothing(ray_local: str, mlflow_server: MlflowServer) -> None:
    import ray

    from hpo.tracking.writer import MlflowWriter

    steps, experiment = 25, "gd-concurrent"
    parent = MlflowWriter(mlflow_server.url, experiment)
    parent.ensure_run("parent", lookup_tags={"gdino.run_type": "sweep"}, tags={}, run_name="concurrent")
    parent_id = parent.run_id("parent", timeout=120)
    writer = ray.remote(num_cpus=0.25)(sweeps.write_metrics_concurrently)
    run_ids = ray.get([writer.remote(mlflow_server.url, experiment, parent_id, i, steps) for i in range(8)],
                      timeout=280)
    assert len(set(run_ids)) == 8
    for run_id in run_ids:
        run = mlflow_server.api("runs/get", run_id=run_id)["run"]
        assert tags_of(run)["mlflow.parentRunId"] == parent_id and run["info"]["status"] == "FINISHED"
        for key in ("val_mAP50", "val_mAP", "val_loss", "train_loss", "lr"):
            assert sorted(m["step"] for m in mlflow_server.history(run_id, key)) == list(range(steps))
