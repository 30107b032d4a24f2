"""optuna:tpe-hyperband, Optuna's TPESampler with its HyperbandPruner, through study.ask() / study.tell().

Recommended multi-fidelity settings (Optuna's docs, "Efficient Optimization Algorithms": TPESampler is
best paired with HyperbandPruner): HyperbandPruner(min_resource=1, max_resource=R, reduction_factor=3),
TPESampler(seed) with its defaults (n_startup_trials=10, multivariate=False). A trial reports every
epoch (trial.report) and stops when trial.should_prune(): a stopping scheduler, no pause/resume.
Conditionals are native (define-by-run: hpo.space.adapters.suggest_optuna asks only for active params).
"""
from __future__ import annotations

import itertools
from typing import Any, Optional

from bench.peers.clock import Start
from hpo.space.adapters import suggest_optuna

ALGORITHMS = {"tpe-hyperband": {"sampler": "TPESampler(seed)", "pruner": "HyperbandPruner",
                                "min_resource": 1, "reduction_factor": 3}}


def missing() -> Optional[str]:
    try:
        import optuna  # noqa: F401
    except ImportError as err:
        return f"optuna not installed ({err})"
    return None


class OptunaPeer:
    per_epoch = True

    def __init__(self, space: Any, seed: int, max_epoch: int, settings: dict, to_objective: Any) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        self.space, self.to_objective, self.full_budget = space, to_objective, max_epoch
        pruner = optuna.pruners.HyperbandPruner(min_resource=settings["min_resource"], max_resource=max_epoch,
                                                reduction_factor=settings["reduction_factor"])
        # a fixed study name: HyperbandPruner puts a trial in a bracket by hashing study name + trial number,
        # and an unnamed study gets a random one (the same seed gave different sweeps before)
        self.study = optuna.create_study(study_name=f"bench-{seed}", direction="maximize",
                                         sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner)
        self._ids = itertools.count()

    def ask(self) -> Optional[Start]:
        trial = self.study.ask()
        config = suggest_optuna(self.space, trial)
        return Start(trial=next(self._ids), config=self.to_objective(config), from_epoch=0,
                     to_epoch=self.full_budget, token=trial)

    def on_epoch(self, start: Start, epoch: int, value: float) -> bool:
        trial = start.token
        trial.report(value, epoch)
        return not trial.should_prune()

    def on_end(self, start: Start, epoch: int, value: float) -> None:
        import optuna

        if epoch >= self.full_budget:
            self.study.tell(start.token, value)
        else:
            self.study.tell(start.token, state=optuna.trial.TrialState.PRUNED)


def make(algorithm: str, space: Any, seed: int, max_epoch: int, to_objective: Any) -> OptunaPeer:
    return OptunaPeer(space, seed, max_epoch, ALGORITHMS[algorithm], to_objective)
