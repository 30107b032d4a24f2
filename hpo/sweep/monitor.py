"""Watches a running sweep from the Tune driver: writes the ledger, keeps the budgets, stops early.

`SweepMonitor` is a Tune Callback (trial start/result/complete/error) and `BudgetStopper` a Tune
Stopper whose `stop_all` Tune checks every step. The sweep stops at the first of:

    trials          every trial the algorithm planned has finished (recorded at the end)
    time_budget     automl.time_budget_s of wall time
    gpu_hours       sum over trials of GPUs x trial wall time (CPU-hours on CPU)
    target_metric   a trial reached automl.target_metric
    max_disk_gb     the sweep directory would exceed automl.max_disk_gb with one more checkpoint
    no_improvement  automl.no_improvement_trials full-budget results in a row without a new best (a
                    trial a multi-fidelity scheduler stopped at a lower rung is no result here)
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

from hpo.algorithms.scoring import better
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
    max_disk_gb: Optional[float] = None  # the sweep directory's size (hpo.sweep.checkpoints)

    @classmethod
    def from_automl(cls, automl: Any) -> "Budgets":
        return cls(automl.time_budget_s, automl.gpu_hours, automl.target_metric,
                   automl.no_improvement_trials, automl.fail_fast_trials,
                   max_disk_gb=getattr(automl, "max_disk_gb", None))


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
                 accelerators_per_trial: float, elapsed_before_s: float = 0.0,
                 full_budget: Optional[int] = None) -> None:
        self.sweep_dir, self.metric, self.mode = sweep_dir, metric, mode
        # multi-fidelity sweeps: the largest epoch budget; only trials that reached it count for
        # no_improvement (None: every finished trial ran its full budget)
        self.full_budget = full_budget
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
        self._check_disk(result.get(CHECKPOINT_KEY))
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
        if not stale and is_out_of_memory(text):
            self._record_out_of_memory(trial, text)
        else:
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
    def _check_disk(self, checkpoint: Optional[str]) -> None:
        """automl.max_disk_gb: stop while one more checkpoint (the largest seen) still fits."""
        from hpo.sweep.checkpoints import directory_bytes, disk_budget_exceeded

        limit = getattr(self.budgets, "max_disk_gb", None)  # absent in monitors pickled before it existed
        if limit is None:
            return
        if checkpoint:
            self._largest_checkpoint_gb = max(getattr(self, "_largest_checkpoint_gb", 0.0),
                                              directory_bytes(checkpoint) / 1e9)
        message = disk_budget_exceeded(self.sweep_dir, limit, getattr(self, "_largest_checkpoint_gb", 0.0))
        if message:
            self._stop("max_disk_gb", message)

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
        best, since = None, 0
        for rec in self.full_budget_results():  # in the order they finished
            if better(rec.score, best, self.mode):
                best, since = rec.score, 0
            else:
                since += 1
        if since >= n:
            self._stop("no_improvement", f"{since} full-budget results without beating {self.metric}={best:g}")

    def full_budget_results(self) -> list[TrialRecord]:
        """Trials that finished with a score at the sweep's full budget, in the order they finished."""
        full = getattr(self, "full_budget", None)  # absent in monitors pickled before it existed
        records = self.ledger.trials()
        finished = [e["trial_id"] for e in self.ledger.events() if e.get("event") == "complete"]
        out = []
        for trial_id in dict.fromkeys(finished):
            rec = records.get(trial_id)
            if rec is None or rec.state != "TERMINATED" or rec.score is None:
                continue
            if full is not None and rec.last_epoch < full:
                continue
            out.append(rec)
        return out

    def _record_out_of_memory(self, trial: Any, text: str) -> None:
        """An OOM is the failure of this trial's configuration (batch size, resolution, model size), not
        of the sweep: recorded with the config, said on the console, never fail-fast's "same error"."""
        config = {k: v for k, v in dict(trial.config).items() if not str(k).startswith("__")}
        signature = error_signature(text)
        self.ledger.append("error", trial.trial_id, error=signature, out_of_memory=True, config=config)
        line = f"trial {trial.trial_id} ran out of memory ({signature}) with config {json.dumps(config, default=str)}"
        print(line, flush=True)
        log.warning(line)

    def _check_fail_fast(self) -> None:
        k = self.budgets.fail_fast_trials
        first = list(self.ledger.trials().values())[:k]
        if len(first) < k or any(r.state not in ("ERROR",) for r in first):
            return
        errors = {self._fail_fast_key(r) for r in first}
        if len(errors) == 1:
            self._stop("fail_fast", f"the first {k} trials all failed with: {first[0].error}")

    def _fail_fast_key(self, record: TrialRecord) -> tuple[Optional[str], str]:
        """What makes two failures "the same error": the signature, and for out-of-memory failures also
        the config (an OOM says the config is too big, not that the setup is broken)."""
        oom = any(e.get("out_of_memory") for e in self.ledger.events()
                  if e.get("trial_id") == record.trial_id and e.get("event") == "error")
        return record.error, json.dumps(record.config, sort_keys=True, default=str) if oom else ""


# CUDA's and the CPU allocator's OOMs, and Ray's memory monitor killing the worker
# (ray.exceptions.OutOfMemoryError: "Task was killed due to the node running low on memory").
_OUT_OF_MEMORY = re.compile(
    r"(\bOutOfMemoryError\b|\bMemoryError\b|CUDA out of memory|CUDA error: out of memory|"
    r"running low on memory|killed by the memory monitor|DefaultCPUAllocator: can't allocate memory)")


def is_out_of_memory(text: str) -> bool:
    """Does a trial's error trace say it ran out of (CPU or accelerator) memory?"""
    return bool(_OUT_OF_MEMORY.search(text))


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
