"""Watches a running sweep from the Tune driver: writes the ledger, keeps the budgets, stops early.

`SweepMonitor` is a Tune Callback (trial start/result/complete/error) and `BudgetStopper` a Tune
Stopper whose `stop_all` Tune checks every step. The sweep stops at the first of:

    trials          every trial the algorithm planned has finished (recorded at the end)
    time_budget     automl.time_budget_s of wall time
    gpu_hours       sum over trials of GPUs x trial wall time (CPU-hours on CPU)
    target_metric   a trial reached automl.target_metric
    no_improvement  automl.no_improvement_trials finished trials without a new best
    fail_fast       the first automl.fail_fast_trials trials all failed with the same error
"""
from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ray.tune import Callback, Stopper

from hpo.sweep.driver import STALE_MARKER
from hpo.sweep.ledger import FINAL_STATES, Ledger, TrialRecord
from hpo.sweep.worker import CHECKPOINT_KEY

log = logging.getLogger(__name__)
STATUS_NAME = "status.json"


@dataclass
class Budgets:
    time_budget_s: Optional[float] = None
    gpu_hours: Optional[float] = None
    target_metric: Optional[float] = None
    no_improvement_trials: Optional[int] = None
    fail_fast_trials: int = 3

    @classmethod
    def from_automl(cls, automl: Any) -> "Budgets":
        return cls(automl.time_budget_s, automl.gpu_hours, automl.target_metric,
                   automl.no_improvement_trials, automl.fail_fast_trials)


def error_signature(text: str) -> str:
    """The line that names the exception ("RuntimeError: boom"), the last one in a chained traceback,
    so that the same root cause gives the same signature through Ray Train's wrapping."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    named = [ln for ln in lines if re.match(r"^[\w.]*(Error|Exception|Interrupt)\b:?", ln)]
    named = [ln for ln in named if not ln.startswith(("ray.exceptions.", "ray.train", "TrainingFailedError"))] \
        or named
    return (named[-1] if named else (lines[-1] if lines else "unknown error"))[:500]


class SweepMonitor(Callback):
    def __init__(self, sweep_dir: str, metric: str, mode: str, budgets: Budgets,
                 accelerators_per_trial: float, elapsed_before_s: float = 0.0) -> None:
        self.sweep_dir, self.metric, self.mode = sweep_dir, metric, mode
        self.budgets = budgets
        self.accelerators_per_trial = accelerators_per_trial
        self.elapsed_before_s = elapsed_before_s
        self.stop_reason: Optional[str] = None
        self.stop_detail: Optional[str] = None
        self._started = time.monotonic()

    # -- persistence: the monitor rebuilds its view from the ledger, so it survives Tuner.restore
    @property
    def ledger(self) -> Ledger:
        return Ledger(self.sweep_dir, self.metric, self.mode)

    def setup(self, **info: Any) -> None:
        self._started = time.monotonic()
        status = read_status(self.sweep_dir)
        self.elapsed_before_s = float(status.get("elapsed_s", self.elapsed_before_s) or 0.0)

    def elapsed_s(self) -> float:
        return self.elapsed_before_s + (time.monotonic() - self._started)

    def _stop(self, reason: str, detail: str) -> None:
        if self.stop_reason is None:
            self.stop_reason, self.stop_detail = reason, detail
            log.warning("sweep stopping: %s (%s)", reason, detail)
            self.write_status(state="stopping")

    def write_status(self, **extra: Any) -> None:
        path = Path(self.sweep_dir) / STATUS_NAME
        status = read_status(self.sweep_dir)
        status.update({"elapsed_s": self.elapsed_s(), "stop_reason": self.stop_reason,
                       "stop_detail": self.stop_detail, "updated": time.time(), **extra})
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(status, indent=1, default=str))
        tmp.replace(path)

    # -- Tune callback hooks (called in the driver process)
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        config = {k: v for k, v in dict(trial.config).items()}
        self.ledger.append("start", trial.trial_id, config=config)
        self.write_status(state="running")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        value = result.get(self.metric)
        epoch = int(result.get("epoch", result.get("training_iteration", 0)) or 0)
        self.ledger.append("result", trial.trial_id, epoch=epoch,
                           value=float(value) if value is not None else None,
                           checkpoint=result.get(CHECKPOINT_KEY),
                           time_total_s=result.get("time_total_s"))
        target = self.budgets.target_metric
        if target is not None and value is not None:
            if (value >= target) if self.mode == "max" else (value <= target):
                self._stop("target_metric", f"trial {trial.trial_id} reached {self.metric}={value:g}")
        self._check_time_budgets()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.ledger.append("complete", trial.trial_id)
        self._check_no_improvement()
        self._check_time_budgets()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        text = _trial_error_text(trial)
        stale = STALE_MARKER in text
        self.ledger.append("stale" if stale else "error", trial.trial_id, error=error_signature(text))
        self._check_fail_fast()
        self._check_time_budgets()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._check_time_budgets()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Trials a stopper or the end of the sweep stopped get no on_trial_complete: record them."""
        records = self.ledger.trials()
        for trial in trials:
            rec = records.get(trial.trial_id)
            if rec is None or rec.state in FINAL_STATES:
                continue
            if trial.status == "TERMINATED":
                self.ledger.append("complete", trial.trial_id, stopped_by="sweep")
            elif trial.status == "ERROR":
                self.ledger.append("error", trial.trial_id, error=error_signature(_trial_error_text(trial)))
        self.write_status()

    # -- budget checks
    def _check_time_budgets(self) -> None:
        b = self.budgets
        if b.time_budget_s is not None and self.elapsed_s() >= b.time_budget_s:
            self._stop("time_budget", f"{self.elapsed_s():.0f} s >= {b.time_budget_s:g} s")
        if b.gpu_hours is not None:
            used = self.accelerator_hours()
            if used >= b.gpu_hours:
                self._stop("gpu_hours", f"{used:.4f} accelerator-hours >= {b.gpu_hours:g}")

    def accelerator_hours(self) -> float:
        return sum(r.wall_s for r in self.ledger.trials().values()) * self.accelerators_per_trial / 3600.0

    def _check_no_improvement(self) -> None:
        n = self.budgets.no_improvement_trials
        if n is None:
            return
        finished = [r for r in self.ledger.trials().values() if r.state == "TERMINATED" and r.score is not None]
        best, since = None, 0
        for rec in finished:  # in order of first appearance
            better = best is None or (rec.score > best if self.mode == "max" else rec.score < best)
            best, since = (rec.score, 0) if better else (best, since + 1)
        if since >= n:
            self._stop("no_improvement", f"{since} finished trials without beating {self.metric}={best:g}")

    def _check_fail_fast(self) -> None:
        k = self.budgets.fail_fast_trials
        first = list(self.ledger.trials().values())[:k]
        if len(first) < k or any(r.state not in ("ERROR",) for r in first):
            return
        errors = {r.error for r in first}
        if len(errors) == 1:
            self._stop("fail_fast", f"the first {k} trials all failed with: {errors.pop()}")


class BudgetStopper(Stopper):
    def __init__(self, monitor: SweepMonitor) -> None:
        self.monitor = monitor

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.monitor.stop_reason is not None


def _trial_error_text(trial: Any) -> str:
    for attr in ("error_file", "pickled_error_file"):
        path = getattr(trial, attr, None)
        if path and Path(path).is_file() and attr == "error_file":
            return Path(path).read_text(errors="replace")
    return str(getattr(trial, "error_msg", "") or "unknown error")


def read_status(sweep_dir: str | Path) -> dict[str, Any]:
    path = Path(sweep_dir) / STATUS_NAME
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        return {}


def final_records(sweep_dir: str | Path, metric: str, mode: str) -> dict[str, TrialRecord]:
    return Ledger(sweep_dir, metric, mode).trials()


__all__ = ["Budgets", "BudgetStopper", "SweepMonitor", "error_signature", "read_status", "final_records",
           "FINAL_STATES"]
