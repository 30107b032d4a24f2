"""PBT's explored configs reach the trial's MLflow run (a real SQLite store): MLflow params are write-once,
so each config after the first is logged as `segment<k>.<param>` with the epoch it starts from."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace


def test_each_exploit_is_a_config_segment_on_the_trial_run(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from hpo.tracking.mlflow_callback import MlflowSweepCallback

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowSweepCallback(uri, "pbt", "sweep1", {}, {}, [], False, max_epochs=4)
    trial = SimpleNamespace(trial_id="t0", config={"train.optim.lr": 1e-3, "model.dec_layers": 3},
                            last_result={}, error_file=None)
    tracker.on_trial_start(0, [], trial)
    for epoch in (1, 2):
        tracker.on_trial_result(0, [], trial, {"epoch": epoch, "val_mAP50": 0.1 * epoch})
    tracker.on_trial_start(0, [], trial)  # un-paused with the same config: not a segment
    trial.config = {"train.optim.lr": 1.2e-3, "model.dec_layers": 3}  # exploited at epoch 2, then explored
    trial.last_result = {"epoch": 2}
    tracker.on_trial_start(0, [], trial)
    tracker.on_trial_result(0, [], trial, {"epoch": 3, "val_mAP50": 0.35})
    tracker.on_trial_complete(0, [], trial)
    assert tracker.writer.flush(timeout=60)

    client = MlflowClient(tracking_uri=uri)
    run = client.search_runs([client.get_experiment_by_name("pbt").experiment_id],
                             filter_string="tags.trial_id = 't0'")[0]
    params = run.data.params
    assert params["train.optim.lr"] == "0.001"  # the first segment's config stays as it was
    assert params["segment1.train.optim.lr"] == "0.0012" and params["segment1.model.dec_layers"] == "3"
    assert params["segment1.from_epoch"] == "2" and run.data.tags["pbt_segments"] == "2"
    assert "segment2.train.optim.lr" not in params
    assert [row["segments"] for row in tracker.trial_table()][0][0]["config"]["train.optim.lr"] == 1.2e-3
