"""smac:hyperband, SMAC3's multi-fidelity facade (random forest + Hyperband intensification) through
smac.ask() / smac.tell() (SMAC3 2.x "Ask-and-Tell" interface).

Recommended multi-fidelity settings (SMAC3 docs, MultiFidelityFacade): its defaults -- random forest
surrogate, EI, Hyperband intensifier with eta = 3 -- with min_budget = 1 and max_budget = R epochs,
deterministic objective. SMAC trains each (config, budget) trial from scratch (no checkpoint
promotion), so each trial is a new learning curve here. Budgets are floats: round(budget) epochs.
"""
from __future__ import annotations

import itertools
import tempfile
from typing import Any, Optional

from bench.peers.clock import Start
from bench.peers.spaces import to_configspace

ALGORITHMS = {"hyperband": {"facade": "MultiFidelityFacade", "intensifier": "Hyperband", "eta": 3,
                            "min_budget": 1, "deterministic": True,
                            "model": "pyrfr"}}


def missing() -> Optional[str]:
    try:
        import smac  # noqa: F401
    except ImportError as err:
        return f"smac not installed ({err}); pip install -e '.[bench]' (bench/README.md)"
    return None


def _model(scenario: Any, kind: str) -> Any:
    """The facade's random forest (its get_model hyperparameters), on pyrfr when asked: the same forest
    SMAC3 used by default before 2.4, about 10x faster to query than the scikit-learn one on 2 cores."""
    from smac import MultiFidelityFacade

    if kind != "pyrfr":
        return MultiFidelityFacade.get_model(scenario)
    from smac.model.random_forest.pyrfr.random_forest_pyrfr import PyrfrRandomForest

    return PyrfrRandomForest(scenario.configspace, log_y=True, n_trees=10, ratio_features=1.0,
                             min_samples_split=2, min_samples_leaf=1, seed=scenario.seed)


def _never_called(config: Any, seed: int = 0, budget: float = 0.0) -> float:
    raise RuntimeError("the bench evaluates trials itself (ask/tell)")


class SMACPeer:
    per_epoch = False

    def __init__(self, space: Any, seed: int, max_epoch: int, settings: dict, to_objective: Any) -> None:
        from smac import MultiFidelityFacade, Scenario

        self._dir = tempfile.TemporaryDirectory(prefix="bench-smac-")
        self.to_objective, self.full_budget = to_objective, max_epoch
        scenario = Scenario(to_configspace(space, seed), deterministic=settings["deterministic"],
                            n_trials=1_000_000, min_budget=settings["min_budget"], max_budget=max_epoch,
                            seed=seed, output_directory=self._dir.name)
        intensifier = MultiFidelityFacade.get_intensifier(scenario, eta=settings["eta"])
        self.smac = MultiFidelityFacade(scenario, _never_called, intensifier=intensifier, overwrite=True,
                                        model=_model(scenario, settings["model"]), logging_level=40)
        self._ids = itertools.count()

    def ask(self) -> Optional[Start]:
        info = self.smac.ask()
        epochs = max(1, min(self.full_budget, int(round(float(info.budget)))))
        config = self.to_objective(dict(info.config))
        return Start(trial=next(self._ids), config=config, from_epoch=0, to_epoch=epochs, token=info)

    def on_epoch(self, start: Start, epoch: int, value: float) -> bool:
        return True

    def on_end(self, start: Start, epoch: int, value: float) -> None:
        from smac.runhistory.dataclasses import TrialValue

        self.smac.tell(start.token, TrialValue(cost=-value, time=float(epoch)))  # SMAC minimises cost


def make(algorithm: str, space: Any, seed: int, max_epoch: int, to_objective: Any) -> SMACPeer:
    return SMACPeer(space, seed, max_epoch, ALGORITHMS[algorithm], to_objective)
