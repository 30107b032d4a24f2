"""Real sweeps (private 2-CPU local Ray, the cheap trainable) for issue 12's liveness and failure parts:
an epoch longer than stale_timeout_s whose steps progress runs to the end (both backends), a hung step is
stopped as STALE (both backends), heartbeats reach the trial's MLflow run and the live table, a trial
that runs out of memory is that config's failure (never fail-fast's "same error"), and a trial whose
driver dies is retried by Tune from its checkpoint (automl.max_failures)."""
from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.timeout(480)]

ray = pytest.importorskip("ray")
from ray import tune  # noqa: E402
from waiting import wait_for  # noqa: E402

from hpo.sweep.engine import SweepPlan, SweepSetup, run_sweep  # noqa: E402
from hpo.sweep.ledger import Ledger  # noqa: E402

CHEAP = "hpo.testing:quadratic_train_fn"
FAST_BEATS = {"every_n_steps": 5, "every_s": 0.5}
# Small enough for a quick test, large enough for a fresh process on 2 busy cores. (Train's worker group
# start, tens of seconds there, is governed by Train's own start timeout, not this one: Liveness.stale.)
STALE_TIMEOUT_S = {"function": 8, "train": 10}
BACKENDS = ["function", pytest.param("train", marks=pytest.mark.slow)]


def _setup(sweep_dir: Path, *, backend: str = "function", epochs: int = 2, options: dict | None = None,
           **automl: Any) -> SweepSetup:
    return SweepSetup(sweep_dir=str(sweep_dir), base_spec={"train": {"num_epochs": epochs, "optim": {"lr": 0.01}}},
                      automl={"max_concurrent": 1, "max_failures": 0, **automl}, backend=backend, train_fn=CHEAP,
                      train_fn_options={"heartbeat": FAST_BEATS, **(options or {})}, trial_epochs=epochs)


def _grid(lrs: list[float]) -> SweepPlan:
    return SweepPlan(param_space={"train.optim.lr": tune.grid_search(lrs)})


# ------------------------------------------------------------------ long epochs live, hung steps do not
@pytest.mark.parametrize("backend", BACKENDS)
def test_an_epoch_longer_than_the_stale_timeout_is_not_stopped(cluster, tmp_path, backend):
    """The epoch takes ~2 x stale_timeout_s (30 slow steps): only heartbeats keep it alive."""
    from mlflow import MlflowClient

    from hpo.tracking.mlflow_callback import MlflowSweepCallback

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowSweepCallback(uri, "live", "live-sweep", {}, {}, [], system_metrics=False)
    timeout_s = STALE_TIMEOUT_S[backend]
    setup = _setup(tmp_path / "long", backend=backend, epochs=1, stale_timeout_s=timeout_s,
                   options={"steps_per_epoch": 30, "step_delay_s": timeout_s * 2 / 30})
    result = run_sweep(setup, _grid([0.05]), cluster, tracker=tracker)

    [trial] = result.trials
    assert trial["state"] == "TERMINATED" and trial["last_epoch"] == 1
    client = MlflowClient(tracking_uri=uri)
    [run] = client.search_runs([client.get_experiment_by_name("live").experiment_id],
                               filter_string="tags.`gdino.run_type` = 'trial'")
    loss_steps = [m.step for m in client.get_metric_history(run.info.run_id, "live/loss")]
    assert len(loss_steps) >= 3 and loss_steps == sorted(set(loss_steps))  # beats during the epochs
    assert client.get_metric_history(run.info.run_id, "live/eta_s")
    assert max(m.value for m in client.get_metric_history(run.info.run_id, "live/epoch_progress")) > 0.5
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_mAP50")] == [1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_hung_step_is_stopped_as_stale(cluster, tmp_path, backend):
    hold = tmp_path / "hold"
    setup = _setup(tmp_path / "hung", backend=backend, stale_timeout_s=STALE_TIMEOUT_S[backend],
                   options={"steps_per_epoch": 30, "hang_at_step": 10, "hold_dir": str(hold)})
    try:
        result = run_sweep(setup, _grid([0.05]), cluster)
    finally:
        hold.mkdir(exist_ok=True)
        (hold / "release").write_text("go")  # let a leftover worker thread end
    [trial] = result.trials
    assert trial["state"] == "STALE"
    assert "made no progress" in trial["error"] and "phase train" in trial["error"]


def test_the_live_table_shows_a_running_epoch(tmp_path):
    from hpo.tracking.progress import ProgressRow, SweepProgressCallback

    progress = SweepProgressCallback("val_mAP50", "max", max_epochs=3, total_trials=1)
    progress.rows["t1"] = ProgressRow("t1", {}, state="RUNNING")
    progress.on_trial_heartbeat("t1", {"phase": "train", "epoch": 2, "epoch_step": 450, "epoch_steps": 1000,
                                       "loss": 0.5321, "eta_s": 3300.0, "step": 1450})
    assert "live t1: train, epoch 2 step 450/1000 (45%), loss 0.5321, epoch ETA 55m00s" in progress.table()


# ------------------------------------------------------------------ out of memory
def test_out_of_memory_trials_are_their_configs_failures_not_fail_fast(cluster, tmp_path, capsys):
    setup = _setup(tmp_path / "oom", fail_fast_trials=3, options={"memory_error_if_lr_above": 0.05})
    result = run_sweep(setup, _grid([0.4, 0.2, 0.1, 0.01]), cluster)

    assert result.stop_reason == "trials"  # three OOMs of three configs are not "the same error"
    states = {t["config"]["train.optim.lr"]: t["state"] for t in result.trials}
    assert states == {0.4: "ERROR", 0.2: "ERROR", 0.1: "ERROR", 0.01: "TERMINATED"}
    errors = [e for e in Ledger(setup.sweep_dir, "val_mAP50", "max").events() if e["event"] == "error"]
    assert sorted(e["config"]["train.optim.lr"] for e in errors) == [0.1, 0.2, 0.4]
    assert all(e["out_of_memory"] and "MemoryError" in e["error"] for e in errors)
    assert capsys.readouterr().out.count("ran out of memory") == 3


# ------------------------------------------------------------------ Tune retries the trial
@pytest.mark.reliability
def test_a_trial_whose_driver_dies_is_retried_from_its_checkpoint(cluster, tmp_path):
    """Function backend: the trial driver *is* the training process. It is SIGKILLed at epoch 2; with
    automl.max_failures=1 Tune starts it again from its epoch-1 checkpoint."""
    hold = tmp_path / "hold"
    setup = _setup(tmp_path / "retry", epochs=3, max_failures=1,
                   options={"hold_at_epoch": 2, "hold_dir": str(hold)})
    outcome: dict[str, Any] = {}
    sweep = threading.Thread(target=lambda: outcome.update(result=run_sweep(setup, _grid([0.1]), cluster)))
    sweep.start()
    pid = wait_for(lambda: next((int(p.read_text()) for p in hold.glob("*.pid")), None), 240)
    wait_for(lambda: any(e["event"] == "result" for e in Ledger(setup.sweep_dir, "val_mAP50", "max").events()), 120)
    os.kill(pid, signal.SIGKILL)
    sweep.join(300)
    [trial] = outcome["result"].trials
    assert trial["state"] == "TERMINATED" and trial["last_epoch"] == 3
    epochs = [e["epoch"] for e in Ledger(setup.sweep_dir, "val_mAP50", "max").events() if e["event"] == "result"]
    assert epochs == [1, 2, 3]  # the retry resumed after epoch 1: nothing repeated, nothing lost
