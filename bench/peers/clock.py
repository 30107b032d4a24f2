"""The simulated clock every peer runs on: the same objective, workers, launch cost and target rule as
hpo.algorithms.simulator gives our own algorithms.

A peer adapter hands out `Start`s (run `trial` from epoch `from_epoch` to `to_epoch`) and hears back per
epoch (`on_epoch`, when it decides per epoch: ASHA-style stopping, Optuna's pruner) or once per run
(`on_end`). Each start, fresh or a resume from a checkpoint, pays `launch_cost` seconds; a resume pays
only for its new epochs. Target rule (scoring.best_trial): a trial counts once it has trained the peer's
largest budget (`full_budget`), with the value of its best epoch; the incumbent only changes then.
"""
from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from typing import Any, Hashable, Optional, Protocol


@dataclass
class Start:
    trial: Hashable        # the learning curve's identity: a resume continues the same weights
    config: dict           # what the objective trains (LCBench's names)
    from_epoch: int        # epochs already trained (0: from scratch)
    to_epoch: int          # train up to this epoch unless the peer stops it earlier
    token: Any = None      # the peer's own handle for this run


class Peer(Protocol):
    per_epoch: bool        # True: `on_epoch` after every epoch may stop the run
    full_budget: int       # the largest epoch budget of the peer's plan

    def ask(self) -> Optional[Start]: ...  # None: nothing to start now

    def on_epoch(self, start: Start, epoch: int, value: float) -> bool: ...  # False: stop here

    def on_end(self, start: Start, epoch: int, value: float) -> None: ...


@dataclass
class PeerRun:
    trace: list = field(default_factory=list)     # (time, best eligible score), one point per change
    time_to_target: Optional[float] = None
    trials: int = 0                                # distinct learning curves
    starts: int = 0                                # launches, resumes included
    epochs: int = 0
    stop_reason: str = "exhausted"


@dataclass
class _Running:
    start: Start
    epoch: int


def run_peer(peer: Peer, objective: Any, metric: str, *, workers: int, max_time: float,
             target: Optional[float], launch_cost: float = 0.0, max_starts: int = 1_000_000) -> PeerRun:
    """Drive `peer` on `workers` parallel workers until the target, the time budget, or it has no work."""
    out = PeerRun()
    now, order = 0.0, itertools.count()
    events: list[tuple[float, int, _Running]] = []
    curves: dict[Hashable, list[float]] = {}   # trial -> values per epoch (index = epoch - 1)
    counted: set[Hashable] = set()
    best: Optional[float] = None

    def cost(config: dict, first: int, last: int) -> float:
        return sum(max(objective.epoch_cost(config, e), 0.0) for e in range(first, last + 1))

    def launch(s: Start) -> None:
        out.starts += 1
        run = _Running(s, s.from_epoch)
        last = s.from_epoch + 1 if peer.per_epoch else s.to_epoch
        heapq.heappush(events, (now + launch_cost + cost(s.config, s.from_epoch + 1, last), next(order), run))

    def record(run: _Running, epoch: int) -> float:
        nonlocal best
        curve = curves.setdefault(run.start.trial, [])
        value = float(objective.evaluate(run.start.config, epoch)[metric])
        del curve[epoch - 1:]
        curve.append(value)
        out.epochs += 1
        if epoch >= peer.full_budget and run.start.trial not in counted:
            counted.add(run.start.trial)
            score = max(curve)
            if best is None or score > best:
                best = score
                out.trace.append((now, score))
                if target is not None and score >= target and out.time_to_target is None:
                    out.time_to_target = now
        return value

    while True:
        while len(events) < workers and out.starts < max_starts:
            s = peer.ask()
            if s is None:
                break
            launch(s)
        if not events:
            break
        finish, _, run = heapq.heappop(events)
        if finish > max_time:
            out.stop_reason = "time"
            break
        now = finish
        s = run.start
        if peer.per_epoch:
            run.epoch += 1
            value = record(run, run.epoch)
            go_on = run.epoch < s.to_epoch and peer.on_epoch(s, run.epoch, value)
            if go_on:
                heapq.heappush(events, (now + cost(s.config, run.epoch + 1, run.epoch + 1), next(order), run))
            else:
                peer.on_end(s, run.epoch, value)
        else:
            for epoch in range(s.from_epoch + 1, s.to_epoch + 1):
                value = record(run, epoch)
            run.epoch = s.to_epoch
            peer.on_end(s, run.epoch, value)
        if out.time_to_target is not None:
            out.stop_reason = "target"
            break
    out.trials = len(curves)
    return out
