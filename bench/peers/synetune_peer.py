"""synetune:<algorithm>, syne-tune 0.16's own schedulers driven through their Tuner-facing interface
(scheduler.suggest / on_trial_add / on_trial_result -> CONTINUE|STOP / on_trial_complete), the calls its
Tuner and its simulator backend make.

syne-tune 0.16 ships ASHA, BOHB (ASHA + KDE searcher), ASHABORE and ASHACQR as multi-fidelity baselines
(syne_tune/optimizer/baselines.py); MOBSTER, HyperTune and its DEHB were removed from the package before
0.16 and cannot be run from it. Recommended multi-fidelity settings (the baselines' defaults):
grace_period = 1 epoch, reduction_factor = 3, one bracket, max_t = R; all are stopping-type ASHA (a
trial runs on until a rung stops it; no pause/resume). Its dict spaces have no conditionals (flattened).
"""
from __future__ import annotations

import datetime
import itertools
from typing import Any, Optional

import numpy as np

from bench.peers.clock import Start
from bench.peers.spaces import to_synetune

_COMMON = {"grace_period": 1, "reduction_factor": 3, "brackets": 1, "type": "stopping (asynchronous)"}
ALGORITHMS = {"asha": {"baseline": "ASHA", **_COMMON},
              "bohb": {"baseline": "BOHB", "top_n_percent": 15, "num_candidates": 64, **_COMMON}}
# Out of the bare `--peers synetune` (run it as synetune:bohb): its KDE searcher refits on every result
# and a censored 7593 run holds ~5000 trials, so it took 58 % of the full command (7593 alone
# 45 %) while being the best peer on no task (bench/README.md has its figures).
ON_REQUEST = {"bohb": "58 % of the full command's compute, best peer on no task (bench/README.md)"}
UNAVAILABLE = {"mobster": "not in syne-tune 0.16", "hypertune": "not in syne-tune 0.16",
               "dehb": "not in syne-tune 0.16"}


def missing() -> Optional[str]:
    try:
        import syne_tune  # noqa: F401
    except ImportError as err:
        return f"syne-tune not installed ({err}); pip install --no-deps syne-tune==0.16.0 statsmodels (bench/README.md)"
    return None


class SyneTunePeer:
    per_epoch = True

    def __init__(self, space: Any, seed: int, max_epoch: int, settings: dict, to_objective: Any) -> None:
        from syne_tune.optimizer import baselines

        np.random.seed(seed)  # ASHA.on_trial_add draws the bracket from numpy's global generator
        self.to_objective, self.full_budget = to_objective, max_epoch
        self.scheduler = getattr(baselines, settings["baseline"])(
            to_synetune(space), metric="val_accuracy", time_attr="epoch", max_t=max_epoch, do_minimize=False,
            random_seed=seed, grace_period=settings["grace_period"],
            reduction_factor=settings["reduction_factor"], brackets=settings["brackets"])
        self._ids = itertools.count()

    def ask(self) -> Optional[Start]:
        from syne_tune.backend.trial_status import Trial

        suggestion = self.scheduler.suggest()
        if suggestion is None:
            return None
        trial = Trial(trial_id=next(self._ids), config=dict(suggestion.config),
                      creation_time=datetime.datetime.now())
        self.scheduler.on_trial_add(trial)
        config = {k: v for k, v in suggestion.config.items()}
        return Start(trial=trial.trial_id, config=self.to_objective(config), from_epoch=0,
                     to_epoch=self.full_budget, token=trial)

    def on_epoch(self, start: Start, epoch: int, value: float) -> bool:
        from syne_tune.optimizer.scheduler import SchedulerDecision

        result = {"val_accuracy": value, "epoch": epoch}
        return self.scheduler.on_trial_result(start.token, result) == SchedulerDecision.CONTINUE

    def on_end(self, start: Start, epoch: int, value: float) -> None:
        if epoch >= self.full_budget:  # stopped trials are simply gone, as with its Tuner
            self.scheduler.on_trial_complete(start.token, {"val_accuracy": value, "epoch": epoch})


def make(algorithm: str, space: Any, seed: int, max_epoch: int, to_objective: Any) -> SyneTunePeer:
    if algorithm in UNAVAILABLE:
        raise SystemExit(f"synetune:{algorithm}: {UNAVAILABLE[algorithm]}")
    return SyneTunePeer(space, seed, max_epoch, ALGORITHMS[algorithm], to_objective)
