"""Metric direction, a trial's score and the best-trial rule: stated once, used everywhere (TAO §3.5/§3.7).

* Direction: a metric whose name contains "loss" is minimised, every other metric maximised.
* A trial's score is the value of its best epoch (ties: the later epoch, as TAO reads its history).
* The best trial is the best score among trials that finished with one; for multi-fidelity algorithms
  only trials that reached the largest budget are eligible (a 1-epoch trial cannot win a 27-epoch race).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence


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
    """What the best-trial rule needs to know about one trial."""

    trial_id: str
    score: Optional[float]
    last_epoch: int
    finished: bool = True
    failed: bool = False


def best_trial(trials: Iterable[TrialSummary], mode: str, multi_fidelity: bool,
               largest_budget: Optional[int] = None) -> Optional[TrialSummary]:
    """The best eligible trial (ties: the first one given), or None.

    `largest_budget`: the planned largest epoch budget; without it the largest budget observed among
    finished trials is used (what a sweep that stopped early has)."""
    eligible = [t for t in trials if t.finished and not t.failed and t.score is not None]
    if multi_fidelity and eligible:
        top = largest_budget if largest_budget is not None else max(t.last_epoch for t in eligible)
        eligible = [t for t in eligible if t.last_epoch >= top]
    if not eligible:
        return None
    s = sign(mode)
    return max(eligible, key=lambda t: s * float(t.score))  # type: ignore[arg-type]
