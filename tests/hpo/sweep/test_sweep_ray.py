"""Real sweeps on one private 2-CPU local Ray cluster (started once for this module), with the cheap
real trainable: Train-backed ASHA to completion, budgets, first-k-fail, stale trials, and the kill
tests (a Train worker; the sweep's driver process, then resume)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.timeout(480)]

ray = pytest.importorskip("ray")
from ray import tune  # noqa: E402
from ray.tune.schedulers import ASHAScheduler  # noqa: E402
from waiting import wait_for  # noqa: E402

from gdino.errors import SweepError  # noqa: E402
from hpo.sweep.engine import SweepPlan, SweepSetup, collect_result, run_sweep  # noqa: E402
from hpo.sweep.ledger import Ledger  # noqa: E402

CHEAP = "hpo.testing:quadratic_train_fn"
HERE = Path(__file__).parent


def _setup(sweep_dir: Path, *, backend: str = "function", epochs: int = 3, options: dict | None = None,
           **automl: Any) -> SweepSetup:
    return SweepSetup(sweep_dir=str(sweep_dir), base_spec={"train": {"num_epochs": epochs, "optim": {"lr": 0.01}}},
                      automl=automl, backend=backend, train_fn=CHEAP, train_fn_options=options or {},
                      trial_epochs=epochs)


def _grid(lrs: list[float], **kwargs: Any) -> SweepPlan:
    return SweepPlan(param_space={"train.optim.lr": tune.grid_search(lrs)}, **kwargs)


def _events(sweep_dir: Path) -> list[dict]:
    return list(Ledger(sweep_dir, "val_mAP50", "max").events())


# ------------------------------------------------------------------ Train-backed ASHA (pitfall §7.1)
def test_asha_with_train_trials_finishes_on_two_cpus(cluster, tmp_path):
    setup = _setup(tmp_path / "asha", backend="train", epochs=3)
    plan = _grid([0.1, 1e-4, 1e-5], multi_fidelity=True,
                 scheduler=ASHAScheduler(time_attr="epoch", max_t=3, grace_period=1, reduction_factor=2))
    result = run_sweep(setup, plan, cluster)

    assert setup.max_concurrent == 2  # 2 x (0.9-CPU worker + 0.01 driver) on 2 CPUs
    assert result.stop_reason == "trials" and len(result.trials) == 3
    assert all(t["state"] == "TERMINATED" for t in result.trials)
    assert min(t["last_epoch"] for t in result.trials) < 3  # ASHA stopped someone early ...
    assert result.best_config == {"train.optim.lr": 0.1}   # ... and the best ran the full budget
    assert result.best_epoch == 3 and Path(result.best_checkpoint, "model.pt").is_file()
    assert "/train/trial_" in result.best_checkpoint        # kept by Train's CheckpointConfig


# ------------------------------------------------------------------ budgets and early stops
def test_target_metric_stops_before_the_remaining_trials(cluster, tmp_path):
    setup = _setup(tmp_path / "target", target_metric=0.9, max_concurrent=1)
    result = run_sweep(setup, _grid([0.1, 0.05, 0.02, 0.01]), cluster)
    assert result.stop_reason == "target_metric"
    assert result.best_score >= 0.9 and len(result.trials) < 4


def test_no_improvement_stops_the_sweep(cluster, tmp_path):
    setup = _setup(tmp_path / "noimp", epochs=2, no_improvement_trials=2, max_concurrent=1)
    result = run_sweep(setup, _grid([0.1, 1e-4, 1e-5, 1e-6, 1e-7]), cluster)
    assert result.stop_reason == "no_improvement"
    assert sum(t["state"] == "TERMINATED" for t in result.trials) == 3


def test_first_k_trials_failing_alike_stop_the_sweep(cluster, tmp_path):
    setup = _setup(tmp_path / "failfast", options={"fail_with": "dataset is empty"}, fail_fast_trials=2,
                   max_concurrent=1)
    with pytest.raises(SweepError, match="first 2 trials all failed with: RuntimeError: dataset is empty"):
        run_sweep(setup, _grid([0.1, 0.01, 0.001, 1e-4]), cluster)
    records = Ledger(setup.sweep_dir, "val_mAP50", "max").trials()
    assert [r.state for r in records.values()][:2] == ["ERROR", "ERROR"] and len(records) < 4
    assert collect_result(setup).stop_reason == "fail_fast"


def test_silent_trial_is_stopped_as_stale(cluster, tmp_path):
    setup = _setup(tmp_path / "stale", epochs=2, stale_timeout_s=4, max_concurrent=1,
                   options={"hold_at_epoch": 1, "hold_dir": str(tmp_path / "hold")})
    result = run_sweep(setup, _grid([0.1]), cluster)
    assert [t["state"] for t in result.trials] == ["STALE"]
    assert "reported nothing for 4 s" in result.trials[0]["error"]


# ------------------------------------------------------------------ kill tests
@pytest.mark.reliability
def test_killed_train_worker_is_retried_from_its_checkpoint(cluster, tmp_path):
    hold = tmp_path / "hold"
    setup = _setup(tmp_path / "wkill", backend="train", epochs=3, max_failures=1,
                   options={"hold_at_epoch": 2, "hold_dir": str(hold)})
    outcome: dict[str, Any] = {}
    sweep = threading.Thread(target=lambda: outcome.update(result=run_sweep(setup, _grid([0.1]), cluster)))
    sweep.start()
    pid = wait_for(lambda: next((int(p.read_text()) for p in hold.glob("*.pid")), None), 240)
    # epoch 1's checkpoint has reached Train's checkpoint manager (and Tune) before the kill
    wait_for(lambda: any(e["event"] == "result" for e in _events(Path(setup.sweep_dir))), 120)
    os.kill(pid, signal.SIGKILL)  # the Train worker process, mid-trial (it waits at epoch 2)
    sweep.join(300)
    result = outcome["result"]
    [trial] = result.trials
    assert trial["state"] == "TERMINATED" and trial["last_epoch"] == 3
    epochs = [e["epoch"] for e in _events(Path(setup.sweep_dir)) if e["event"] == "result"]
    assert epochs == [1, 2, 3]  # resumed after epoch 1's checkpoint: nothing repeated, nothing lost


@pytest.mark.reliability
def test_resume_after_the_driver_is_killed(cluster, tmp_path):
    from hpo.api import resume_sweep, sweep_status

    sweep_dir = tmp_path / "dkill"
    setup = _setup(sweep_dir, epochs=3, max_concurrent=1, options={"steps_per_epoch": 300})
    lrs = [0.1, 0.05, 0.02, 0.01]
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"setup": setup.__dict__, "lrs": lrs, "ray_address": cluster.address}))
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    child = subprocess.Popen([sys.executable, str(HERE / "sweep_child.py"), str(args)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def second_trial_running() -> bool:
            kinds = [e["event"] for e in _events(sweep_dir)]
            return kinds.count("complete") >= 1 and kinds.count("start") >= 2 or None
        wait_for(second_trial_running, 180)
    finally:
        child.kill()  # SIGKILL the sweep's driver
        child.wait()
    assert sweep_status(sweep_dir).state == "interrupted"
    finished_before = {e["trial_id"] for e in _events(sweep_dir) if e["event"] == "complete"}

    result = resume_sweep(sweep_dir)

    assert result.stop_reason == "trials"
    done = [t for t in result.trials if t["state"] == "TERMINATED"]
    assert sorted(t["config"]["train.optim.lr"] for t in done) == sorted(lrs)  # none lost, none twice
    completes = [e["trial_id"] for e in _events(sweep_dir) if e["event"] == "complete"]
    assert len(completes) == len(set(completes)) == 4
    starts = [e["trial_id"] for e in _events(sweep_dir) if e["event"] == "start"]
    assert all(starts.count(t) == 1 for t in finished_before)  # finished trials never ran again


# ------------------------------------------------------------------ a pausing algorithm, tracked (issue 5 + 6)
def test_bohb_sweep_with_paused_trials_finishes_and_is_reported(cluster, tmp_path, capsys):
    """BOHB pauses trials at its rungs: with Tune's max_concurrent_trials it would deadlock once a rung
    holds more paused trials than the cap. Also: the tracker is finished and the report written."""
    from gdino.spec import load_spec
    from hpo.api import _make_tracker, _plan_from_algorithm

    cfg = load_spec({"results_dir": str(tmp_path / "results"), "train": {"optim": {"lr": 0.01}},
                     "automl": {"algorithm": "bohb", "max_epochs": 3, "reduction_factor": 3, "seed": 1,
                                "hyperparameters": ["train.optim.lr"], "max_concurrent": 2}})
    plan, space = _plan_from_algorithm(cfg, cfg.automl, "val_mAP50", "max")
    setup = SweepSetup(sweep_dir=str(tmp_path / "bohb"), base_spec=cfg.model_dump(mode="json"),
                       automl=cfg.automl.model_dump(mode="json"), backend="function", train_fn=CHEAP,
                       mlflow={"system_metrics": False})
    tracker = _make_tracker(setup, space, plan)
    result = run_sweep(setup, plan, cluster, tracker=tracker)

    # 3 trials start at rung 1 with 2 running at a time: under Tune's cap 2 paused trials would block the third
    assert plan.num_samples == 3 and plan.rung_milestones == [1, 3]
    assert result.stop_reason == "trials" and len(result.trials) == 3
    assert max(t["last_epoch"] for t in result.trials) == 3 and result.best_epoch == 3
    assert (tmp_path / "results" / "report" / "report.html").is_file()
    assert "best trial" in capsys.readouterr().out
    states = {row["state"] for row in tracker.trial_table()}
    assert states <= {"FINISHED", "KILLED"} and "FINISHED" in states
