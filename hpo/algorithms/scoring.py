"""Metric direction, a trial's score and the best-trial rule: stated once, used everywhere (TAO §3.5/§3.7).

* Direction: a metric whose name contains "loss" is minimised, every other metric maximised.
* A trial's score is the value of its best epoch (ties: the later epoch, as TAO reads its history).
* The ranking of trials (`ranked`, `best_trial`) — the only one in the project: the ledger and the sweep
  result, the printed summary and report, the live table, the MLflow parent run and promotion all call it:
    1. candidates are trials that finished with a finite score and did not fail (ERROR, STALE);
    2. multi-fidelity sweeps: the largest epoch budget reached first (a 1-epoch trial cannot win a
       27-epoch race, however high its early score), then the score in the metric's direction;
       other sweeps: the score only (every trial ran its own full budget);
    3. ties (same budget and score): the trial given first wins, i.e. the one that started first
       (callers pass trials in start order). The baseline trial, the spec as written, is a candidate
       like any other: it starts first, so it wins a tie — a sweep only replaces the user's
       configuration by a strictly better one.
  Non-candidates follow the candidates in the order given.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence, TypeVar

T = TypeVar("T")

# The config key that marks the baseline trial (the spec as written): "__" keys are the sweep's own,
# never written into the trial's spec (hpo.sweep.driver) nor modelled by the searchers.
BASELINE_KEY = "__baseline__"


def is_baseline(config: object) -> bool:
    """True for the config of the baseline trial."""
    return isinstance(config, dict) and bool(config.get(BASELINE_KEY))


def metric_mode(metric: str) -> str:
    """TAO's direction rule: "min" for names containing "loss", else "max"."""
    return "min" if "loss" in metric.lower() else "max"


def sign(mode: str) -> float:
    """+1 for "max", -1 for "min": `sign * value` is always to be maximised."""
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    return 1.0 if mode == "max" else -1.0


def finite(value: object) -> Optional[float]:
    """The value as a float if it is a finite number, else None (a failure is never a fake score)."""
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def better(a: Optional[float], b: Optional[float], mode: str) -> bool:
    """True when score `a` is strictly better than `b` (any finite score beats None)."""
    a, b = finite(a), finite(b)
    if a is None:
        return False
    return b is None or sign(mode) * a > sign(mode) * b


def best_epoch(history: Sequence[tuple[int, float]], mode: str) -> Optional[tuple[int, float]]:
    """(epoch, value) of the best epoch of one trial's (epoch, value) history; later epoch on ties."""
    s = sign(mode)
    best: Optional[tuple[int, float]] = None
    for epoch, value in history:
        v = finite(value)
        if v is None:
            continue
        if best is None or s * v >= s * best[1]:
            best = (int(epoch), v)
    return best


def trial_score(history: Sequence[tuple[int, float]], mode: str) -> Optional[float]:
    """A trial's score: its best epoch's value (None when it reported no finite value)."""
    found = best_epoch(history, mode)
    return None if found is None else found[1]


@dataclass(frozen=True)
class TrialSummary:
    """What the ranking rule needs to know about one trial. `last_epoch`: the largest epoch budget it
    reached; `finished`: it ended (not running, paused or abandoned); `failed`: it ended in an error."""

    trial_id: str
    score: Optional[float]
    last_epoch: int
    finished: bool = True
    failed: bool = False
    baseline: bool = False

    @property
    def candidate(self) -> bool:
        return self.finished and not self.failed and finite(self.score) is not None


def rank_key(trial: TrialSummary, mode: str, multi_fidelity: bool) -> tuple[float, float]:
    """Sort key of a candidate, larger is better: (budget reached or 0, signed score)."""
    budget = float(trial.last_epoch) if multi_fidelity else 0.0
    return budget, sign(mode) * float(trial.score)  # type: ignore[arg-type]


def ranked(trials: Iterable[TrialSummary], mode: str, multi_fidelity: bool,
           largest_budget: Optional[int] = None) -> list[TrialSummary]:
    """Every trial, best first by the rule of the module docstring; non-candidates last, in order given.

    `largest_budget`: the planned largest epoch budget; when given (multi-fidelity), trials below it
    are not candidates (a simulator that knows the plan); without it the budgets reached decide."""
    items = list(trials)

    def eligible(t: TrialSummary) -> bool:
        if not t.candidate:
            return False
        return not (multi_fidelity and largest_budget is not None and t.last_epoch < largest_budget)

    candidates = [t for t in items if eligible(t)]
    # sorted() is stable: equal keys keep the order given, so the earlier trial wins ties
    order = sorted(candidates, key=lambda t: rank_key(t, mode, multi_fidelity), reverse=True)
    chosen = {id(t) for t in order}
    return order + [t for t in items if id(t) not in chosen]


def best_trial(trials: Iterable[TrialSummary], mode: str, multi_fidelity: bool,
               largest_budget: Optional[int] = None) -> Optional[TrialSummary]:
    """The best candidate by the rule (see `ranked`), or None when no trial is a candidate."""
    order = ranked(trials, mode, multi_fidelity, largest_budget)
    return order[0] if order and order[0].candidate and (
        not (multi_fidelity and largest_budget is not None) or order[0].last_epoch >= largest_budget) else None


def rank_items(items: Iterable[T], summarize: Callable[[T], TrialSummary], mode: str,
               multi_fidelity: bool) -> list[T]:
    """`items` (ledger records, report rows, table rows ...) ordered by the rule through `summarize`."""
    pairs = [(summarize(item), item) for item in items]
    by_id = {id(summary): item for summary, item in pairs}
    return [by_id[id(s)] for s in ranked([s for s, _ in pairs], mode, multi_fidelity)]


def best_item(items: Iterable[T], summarize: Callable[[T], TrialSummary], mode: str,
              multi_fidelity: bool) -> Optional[T]:
    """The best of `items` by the rule, or None when none is a candidate."""
    pairs = [(summarize(item), item) for item in items]
    best = best_trial([s for s, _ in pairs], mode, multi_fidelity)
    return None if best is None else next(item for s, item in pairs if s is best)
