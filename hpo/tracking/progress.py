"""A live trial table while a sweep runs: state, epoch, the metric, key params, and an ETA.

States: PENDING, RUNNING, DONE (ran its budget), STOPPED (stopped early by the scheduler), FAILED.

`SweepProgressCallback` is a Tune callback that keeps one row per trial and prints the table every
`interval_s` seconds (and once at the end); `render_table` is the pure part, tested on its own.
The ETA is rough on purpose: seconds per epoch of each running trial times its epochs left, plus
the mean trial duration for the trials not started yet, divided by the observed concurrency.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, TextIO

from ray.tune import Callback

from gdino.redact import redact


@dataclass
class ProgressRow:
    trial_id: str
    params: dict[str, Any]
    state: str = "PENDING"
    epoch: int = 0
    value: Optional[float] = None  # the metric at the last report
    best: Optional[float] = None
    started_at: float = field(default_factory=time.time)
    last_report_at: Optional[float] = None
    ended_at: Optional[float] = None
    stopped: bool = False  # Tune (scheduler or stopper) ended it, as opposed to the trial returning

    def seconds_per_epoch(self) -> Optional[float]:
        if not self.epoch or self.last_report_at is None:
            return None
        return (self.last_report_at - self.started_at) / self.epoch


def estimate_eta_s(rows: Sequence[ProgressRow], max_epochs: Optional[int], total_trials: Optional[int],
                   now: float) -> Optional[float]:
    running = [r for r in rows if r.state == "RUNNING"]
    ended = [r for r in rows if r.ended_at is not None]
    left_in_running = [(max_epochs - r.epoch) * r.seconds_per_epoch() for r in running
                       if max_epochs and r.seconds_per_epoch() is not None]
    if running and len(left_in_running) < len(running):
        return None  # a running trial has no pace yet
    eta = max(left_in_running, default=0.0)
    if total_trials is not None:
        not_started = max(total_trials - len(rows), 0)
        if not_started:
            durations = [r.ended_at - r.started_at for r in ended] or \
                        [(max_epochs or r.epoch) * (r.seconds_per_epoch() or 0.0) for r in running]
            if not durations or not any(durations):
                return None
            concurrency = max(len(running), 1)
            eta += not_started * (sum(durations) / len(durations)) / concurrency
    elif not running:
        return 0.0
    return eta


def format_duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def key_params(rows: Sequence[ProgressRow], limit: int = 3) -> list[str]:
    """The params that differ between trials (the fixed ones say nothing), at most `limit`."""
    values: dict[str, set[str]] = {}
    for row in rows:
        for name, value in row.params.items():
            values.setdefault(name, set()).add(json.dumps(value, default=str, sort_keys=True))
    return sorted(n for n, v in values.items() if len(v) > 1)[:limit]


def render_table(rows: Sequence[ProgressRow], *, metric: str, params: Sequence[str], eta_s: Optional[float],
                 max_rows: int = 20, now: Optional[float] = None) -> str:
    now = time.time() if now is None else now
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    header = (f"== sweep: {len(rows)} trials ("
              + ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
              + f"), ETA {format_duration(eta_s)} ==")
    columns = ["trial", "state", "epoch", metric, f"best {metric}", *(p.split(".")[-1] for p in params), "time"]
    order = {"RUNNING": 0, "PENDING": 1}
    shown = sorted(rows, key=lambda r: (order.get(r.state, 2), -(r.best if r.best is not None else -1e30)))
    cells = [[r.trial_id, r.state, str(r.epoch), _fmt(r.value), _fmt(r.best),
              *(_fmt(r.params.get(p)) for p in params),
              format_duration((r.ended_at or now) - r.started_at)] for r in shown[:max_rows]]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = [header, "  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    if len(shown) > max_rows:
        lines.append(f"... {len(shown) - max_rows} more")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class SweepProgressCallback(Callback):
    """Prints `render_table` every `interval_s` seconds while trials run, and at the end."""

    def __init__(self, metric: str = "val_mAP50", mode: str = "max", *, key_params: Sequence[str] = (),
                 max_epochs: Optional[int] = None, total_trials: Optional[int] = None,
                 interval_s: float = 30.0, max_rows: int = 20, stream: Optional[TextIO] = None) -> None:
        self.metric, self.mode = metric, mode
        self.key_params = list(key_params)
        self.max_epochs, self.total_trials = max_epochs, total_trials
        self.interval_s, self.max_rows = interval_s, max_rows
        self.stream = stream
        self.rows: dict[str, ProgressRow] = {}
        self._last_print = time.monotonic()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["stream"] = None  # sys.stdout does not pickle; Tuner.restore unpickles callbacks
        return state

    def table(self) -> str:
        params = self.key_params or key_params(list(self.rows.values()))
        eta = estimate_eta_s(list(self.rows.values()), self.max_epochs, self.total_trials, time.time())
        return render_table(list(self.rows.values()), metric=self.metric, params=params, eta_s=eta,
                            max_rows=self.max_rows)

    def print_table(self) -> None:
        print(self.table(), file=self.stream or sys.stdout, flush=True)
        self._last_print = time.monotonic()

    # ---- Tune events
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        row = self._row(trial)
        row.state, row.ended_at = "RUNNING", None

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        row = self._row(trial)
        row.state = "RUNNING"
        row.epoch = int(result.get("epoch", result.get("training_iteration", row.epoch + 1)))
        row.last_report_at = time.time()
        row.stopped = row.stopped or bool(result.get("done"))
        value = result.get(self.metric)
        if isinstance(value, (int, float)):
            row.value = float(value)
            better = row.best is None or (value > row.best if self.mode == "max" else value < row.best)
            row.best = float(value) if better else row.best

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        row = self._row(trial)
        early = row.stopped and (self.max_epochs is None or row.epoch < self.max_epochs)
        self._end(trial, "STOPPED" if early else "DONE")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, "FAILED")

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if self.rows and time.monotonic() - self._last_print >= self.interval_s:
            self.print_table()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self.rows:
            self.print_table()

    def _row(self, trial: Any) -> ProgressRow:
        if trial.trial_id not in self.rows:
            flat = _flatten(dict(getattr(trial, "config", {}) or {}))
            self.rows[trial.trial_id] = ProgressRow(trial.trial_id, redact(flat))
        return self.rows[trial.trial_id]

    def _end(self, trial: Any, state: str) -> None:
        row = self._row(trial)
        row.state, row.ended_at = state, time.time()


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
