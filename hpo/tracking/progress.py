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
from hpo.algorithms.scoring import BASELINE_KEY, TrialSummary, best_trial


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
    baseline: bool = False  # the spec as written (automl.baseline_trial)
    live: Optional[dict[str, Any]] = None  # the trial's last heartbeat (hpo.sweep.heartbeat), while it runs

    def summary(self) -> TrialSummary:
        """What the one ranking rule (hpo.algorithms.scoring) reads of this row."""
        return TrialSummary(self.trial_id, self.best, self.epoch, finished=self.state in ("DONE", "STOPPED"),
                            failed=self.state == "FAILED", baseline=self.baseline)

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


def leader(rows: Sequence[ProgressRow], mode: str, multi_fidelity: bool) -> Optional[ProgressRow]:
    """The best ended trial so far by the one ranking rule (hpo.algorithms.scoring)."""
    best = best_trial([r.summary() for r in rows], mode, multi_fidelity)
    return next(r for r in rows if r.trial_id == best.trial_id) if best is not None else None


def render_table(rows: Sequence[ProgressRow], *, metric: str, params: Sequence[str], eta_s: Optional[float],
                 max_rows: int = 20, now: Optional[float] = None, mode: str = "max",
                 multi_fidelity: bool = False, baselines: Optional[dict[str, float]] = None) -> str:
    """The table; each trial's best against the baselines (the baseline trial's best so far, and any
    measured one in `baselines`, e.g. the pretrained checkpoint's zero-shot score)."""
    now = time.time() if now is None else now
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    header = (f"== sweep: {len(rows)} trials ("
              + ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
              + f"), ETA {format_duration(eta_s)}")
    best = leader(rows, mode, multi_fidelity)
    if best is not None:  # the trial the sweep would return now (the one ranking rule)
        header += (f"; leader {best.trial_id}{' (baseline)' if best.baseline else ''} "
                   f"{metric}={_fmt(best.best)} at {best.epoch} ep")
    header += " =="
    bases = dict(baselines or {})
    base_row = next((r for r in rows if r.baseline), None)
    if base_row is not None and base_row.best is not None:
        bases = {"baseline": base_row.best, **bases}
    columns = ["trial", "state", "epoch", metric, f"best {metric}", *(f"vs {b}" for b in bases),
               *(p.split(".")[-1] for p in params), "time"]
    order = {"RUNNING": 0, "PENDING": 1}
    shown = sorted(rows, key=lambda r: (order.get(r.state, 2), -(r.best if r.best is not None else -1e30)))
    cells = [[r.trial_id + (" (baseline)" if r.baseline else ""), r.state, str(r.epoch), _fmt(r.value),
              _fmt(r.best), *(_delta(r.best, v) for v in bases.values()),
              *(_fmt(r.params.get(p)) for p in params),
              format_duration((r.ended_at or now) - r.started_at)] for r in shown[:max_rows]]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = [header, "  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    if len(shown) > max_rows:
        lines.append(f"... {len(shown) - max_rows} more")
    return "\n".join(lines)


def render_live(rows: Sequence[ProgressRow]) -> str:
    """One line per running trial with a heartbeat: where its epoch is, its running loss, the epoch's ETA."""
    lines = []
    for row in rows:
        beat = row.live
        if row.state != "RUNNING" or not beat:
            continue
        where = f"epoch {beat.get('epoch') or '-'} step {beat.get('epoch_step') or 0}"
        if beat.get("epoch_steps"):
            where += f"/{beat['epoch_steps']} ({100.0 * (beat.get('epoch_step') or 0) / beat['epoch_steps']:.0f}%)"
        lines.append(f"  live {row.trial_id}: {beat.get('phase')}, {where}, loss {_fmt(beat.get('loss'))}, "
                     f"epoch ETA {format_duration(beat.get('eta_s'))}")
    return "\n".join(lines)


def _delta(value: Optional[float], base: Optional[float]) -> str:
    if value is None or base is None:
        return "-"
    return f"{value - base:+.4f}"


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
                 interval_s: float = 30.0, max_rows: int = 20, stream: Optional[TextIO] = None,
                 multi_fidelity: bool = False, baselines: Optional[dict[str, float]] = None) -> None:
        self.metric, self.mode = metric, mode
        self.multi_fidelity = multi_fidelity
        self.baselines = dict(baselines or {})  # measured baselines, e.g. {"zero-shot": 0.41}
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
        table = render_table(list(self.rows.values()), metric=self.metric, params=params, eta_s=eta,
                             max_rows=self.max_rows, mode=self.mode,
                             multi_fidelity=getattr(self, "multi_fidelity", False),
                             baselines=getattr(self, "baselines", None))
        live = render_live(list(self.rows.values()))
        return f"{table}\n{live}" if live else table

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

    def on_trial_heartbeat(self, trial_id: str, beat: dict[str, Any]) -> None:
        """Liveness between validations (hpo.sweep.heartbeat): shown under the table while it runs."""
        row = self.rows.get(trial_id)
        if row is not None and row.state == "RUNNING":
            row.live = dict(beat)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if self.rows and time.monotonic() - self._last_print >= self.interval_s:
            self.print_table()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self.rows:
            self.print_table()

    def _row(self, trial: Any) -> ProgressRow:
        if trial.trial_id not in self.rows:
            config = dict(getattr(trial, "config", {}) or {})
            flat = _flatten({k: v for k, v in config.items() if not k.startswith("__")})
            self.rows[trial.trial_id] = ProgressRow(trial.trial_id, redact(flat),
                                                    baseline=bool(config.get(BASELINE_KEY)))
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
