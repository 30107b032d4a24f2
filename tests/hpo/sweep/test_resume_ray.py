"""Kill-and-resume on a real 2-CPU local Ray cluster, one test per scheduler class the algorithms use:
synchronous Hyperband (bohb), ASHA, PBT, and FIFO with a model-based searcher (bayesian). Each sweep runs
in a child process (tests/hpo/sweep/resume_child.py) with the cheap trainable on the function backend;
the test SIGKILLs that driver at a named point, read from the ledger with a bounded wait, then resumes
through `hpo.api.resume_sweep` (Tuner.restore) and checks that the sweep finishes its plan: finished
trials never ran again, paused ones continued from their checkpoints, and the trials and epochs paid are
the uninterrupted sweep's (up to the epochs in flight at the kill: one per running trial)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.reliability, pytest.mark.slow, pytest.mark.timeout(1200)]

ray = pytest.importorskip("ray")

from waiting import wait_for  # noqa: E402

from hpo.sweep.ledger import Ledger  # noqa: E402

CHEAP = "hpo.testing:quadratic_train_fn"
HERE = Path(__file__).parent
MAX_RUNNING = 2  # 2 CPUs: at most 2 trials run at once, so at most 2 epochs are in flight at the kill


def _spec(tmp_path: Path, **automl: Any) -> dict:
    return {"results_dir": str(tmp_path / "results"), "train": {"num_epochs": 5, "optim": {"lr": 0.01}},
            "automl": {"seed": 1, "hyperparameters": ["train.optim.lr"], "max_concurrent": MAX_RUNNING,
                       "promote": False,  # promotion has its own tests
                       **automl}}


def _events(sweep_dir: Path) -> list[dict]:
    return list(Ledger(sweep_dir, "val_mAP50", "max").events())


def _results(events: list[dict]) -> list[tuple[str, int]]:
    return [(e["trial_id"], int(e["epoch"])) for e in events if e["event"] == "result"]


def _completed(events: list[dict]) -> set[str]:
    return {e["trial_id"] for e in events if e["event"] == "complete"}


def _tune_saved(sweep_dir: Path) -> tuple[dict[str, str], float]:
    """(trial id -> status, the file's mtime) of the newest experiment state Tune has written to the
    sweep dir: what Tuner.restore will read. Tune snapshots every TUNE_GLOBAL_CHECKPOINT_S (1 s)."""
    states = sorted(Path(sweep_dir, "tune", "experiment").glob("experiment_state-*.json"))
    if not states:
        return {}, 0.0
    try:
        mtime = states[-1].stat().st_mtime
        data = json.loads(states[-1].read_text())
    except (OSError, json.JSONDecodeError):  # being replaced right now
        return {}, 0.0
    out = {}
    for json_state, _ in data.get("trial_data", []):
        trial = json.loads(json_state)
        out[trial["trial_id"]] = trial["status"]
    return out, mtime


def _saved_after(events: list[dict], saved_at: float) -> bool:
    """Tune's snapshot was written after the last ledger event (1 s margin): the kill point is what
    Tune saved, not the last second's events, which a kill loses as in flight."""
    return bool(events) and saved_at >= max(e["ts"] for e in events) + 1.0


def kill_and_resume(cluster, tmp_path: Path, spec: dict,
                    kill_point: Callable[[list[dict], dict[str, str]], bool], options: dict | None = None) -> dict:
    """Run the sweep in a child, SIGKILL it once `kill_point(ledger events, Tune's saved statuses)` holds
    and Tune's latest snapshot is newer than the ledger's last event; resume it here. `options` go to
    the trainable (hpo.testing); a `hold_dir` among them is released before the resume."""
    from hpo.api import resume_sweep, sweep_status

    sweep_dir = tmp_path / "sweep"
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"sweep_dir": str(sweep_dir), "spec": spec, "train_fn": CHEAP,
                                "ray_address": cluster.address, "options": options or {}}))
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    log = open(tmp_path / "child.log", "w")
    child = subprocess.Popen([sys.executable, str(HERE / "resume_child.py"), str(args)], env=env,
                             stdout=log, stderr=subprocess.STDOUT)
    try:
        def reached() -> bool:
            events, (saved, saved_at) = _events(sweep_dir), _tune_saved(sweep_dir)
            return child.poll() is None and kill_point(events, saved) and _saved_after(events, saved_at)

        wait_for(reached, 600, "the kill point")  # a loaded 2-core machine starts a trial in 10-50 s
    finally:
        child.send_signal(signal.SIGKILL)  # the sweep's driver, mid-sweep
        child.wait()
        log.close()
        if options and options.get("hold_dir"):
            Path(options["hold_dir"], "release").touch()
    before = _events(sweep_dir)
    assert sweep_status(sweep_dir).state == "interrupted"

    result = resume_sweep(sweep_dir)

    after = _events(sweep_dir)[len(before):]
    return {"result": result, "before": before, "after": after, "all": before + after}


def _no_finished_trial_ran_again(run: dict) -> None:
    finished = _completed(run["before"])
    assert not [e for e in run["after"] if e["trial_id"] in finished and e["event"] in ("start", "result")]


def _repeated_epochs(run: dict) -> int:
    return sum(n - 1 for n in Counter(_results(run["all"])).values())


# ------------------------------------------------------------------ synchronous Hyperband
def test_bohb_resumed_after_2_trials_finished_and_1_paused_finishes_its_plan(cluster, tmp_path):
    from gdino.spec import load_spec
    from hpo.api import _plan_from_algorithm

    spec = _spec(tmp_path, algorithm="bohb", max_epochs=9, reduction_factor=3, min_points_in_model=2)
    cfg = load_spec(spec)
    plan, _ = _plan_from_algorithm(cfg, cfg.automl, "val_mAP50", "max")
    rung_budgets = {1, 3}  # below the full budget of 9

    def two_finished_one_paused(events: list[dict], saved: dict[str, str]) -> bool:
        done, last = _completed(events), {}
        for trial_id, epoch in _results(events):
            last[trial_id] = epoch
        paused = [t for t, e in last.items() if t not in done and e in rung_budgets and saved.get(t) == "PAUSED"]
        return len(done) >= 2 and len(paused) >= 1

    run = kill_and_resume(cluster, tmp_path, spec, two_finished_one_paused)

    result = run["result"]
    assert result.stop_reason == "trials"
    assert len(result.trials) == plan.num_samples == 12  # no trial lost, none added
    assert all(t["state"] == "TERMINATED" for t in result.trials)
    _no_finished_trial_ran_again(run)
    paid = len(_results(run["all"]))
    assert plan.algorithm.planned_epochs == 36
    assert 36 <= paid <= 36 + MAX_RUNNING and _repeated_epochs(run) <= MAX_RUNNING
    assert sorted(t["last_epoch"] for t in result.trials).count(9) == 2  # one per bracket reached R
    assert result.best_epoch == 9


# ------------------------------------------------------------------ ASHA
def test_asha_resumed_after_2_trials_finished_finishes_its_plan(cluster, tmp_path):
    spec = _spec(tmp_path, algorithm="asha", max_epochs=4, reduction_factor=2, max_trials=6)
    run = kill_and_resume(cluster, tmp_path, spec, lambda events, saved: len(_completed(events)) >= 2)

    result = run["result"]
    assert result.stop_reason == "trials" and len(result.trials) == 6
    assert all(t["state"] == "TERMINATED" for t in result.trials)
    assert {t["last_epoch"] for t in result.trials} <= {1, 2, 4}  # ASHA's rungs, restored
    _no_finished_trial_ran_again(run)
    assert _repeated_epochs(run) <= MAX_RUNNING


# ------------------------------------------------------------------ PBT
def test_pbt_resumed_after_every_member_reached_its_first_perturbation_epoch(cluster, tmp_path):
    spec = _spec(tmp_path, algorithm="pbt", population_size=3, max_epochs=6, eval_interval=2)
    # Every member's first run holds before epoch 3 until the kill: the population (3 members, 2
    # slots) grows before it advances, so the kill point comes with all three at epoch 2, two of them
    # holding, whatever the machine's speed (an epoch of the cheap trainable takes milliseconds).
    hold = {"hold_at_epoch": 3, "hold_dir": str(tmp_path / "hold")}

    def all_members_at_epoch_2(events: list[dict], saved: dict[str, str]) -> bool:
        return len({t for t, e in _results(events) if e >= 2}) >= 3

    run = kill_and_resume(cluster, tmp_path, spec, all_members_at_epoch_2, options=hold)

    result = run["result"]
    assert result.stop_reason == "trials" and len(result.trials) == 3
    assert [t["last_epoch"] for t in result.trials] == [6, 6, 6]
    _no_finished_trial_ran_again(run)
    assert _repeated_epochs(run) <= MAX_RUNNING
    # an exploited member continues from its donor's epoch: it never pays more than the 18 planned epochs
    assert len(_results(run["all"])) <= 3 * 6 + MAX_RUNNING


# ------------------------------------------------------------------ FIFO + model-based searcher
def test_bayesian_resumed_after_2_trials_finished_and_the_3rd_running(cluster, tmp_path):
    spec = _spec(tmp_path, algorithm="bayesian", max_recommendations=4, max_epochs=2)

    def third_running(events: list[dict], saved: dict[str, str]) -> bool:
        started = [e["trial_id"] for e in events if e["event"] == "start"]
        return len(_completed(events)) >= 2 and len(set(started)) >= 3

    run = kill_and_resume(cluster, tmp_path, spec, third_running)

    result = run["result"]
    assert result.stop_reason == "trials" and len(result.trials) == 4
    assert all(t["state"] == "TERMINATED" and t["last_epoch"] == 2 for t in result.trials)
    _no_finished_trial_ran_again(run)
    assert 8 <= len(_results(run["all"])) <= 8 + 1  # sequential: one trial in flight at the kill
    configs = [tuple(sorted(t["config"].items())) for t in result.trials]
    assert len(set(configs)) == 4  # the restored GP proposes new points, not the dead driver's again
