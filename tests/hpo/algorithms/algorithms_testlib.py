"""Shared cases for the algorithm contract tests: a small conditional space, a synthetic objective
with learning curves, and automl configs with small budgets."""
from __future__ import annotations

import math
from typing import Any

from gdino.config.automl import ALGORITHMS, AutoMLConfig
from hpo.algorithms import make_algorithm
from hpo.algorithms.base import Algorithm
from hpo.algorithms.simulator import FunctionObjective, SimRun, Simulator
from hpo.space import CategoricalDomain, Condition, FloatDomain, IntDomain, Param, SearchSpace

ALL = tuple(ALGORITHMS)
MULTI_FIDELITY = ("hyperband", "bohb", "asha", "pbt", "dehb", "hyperband_es")
METRIC = "val_mAP50"


def small_space() -> SearchSpace:
    """lr (log), an int, a choice with a conditional child, and an epoch parameter (which the
    multi-fidelity algorithms must drop)."""
    return SearchSpace((
        Param("train.optim.lr", FloatDomain(1e-5, 1e-1, log=True), default=1e-3),
        Param("model.dec_layers", IntDomain(1, 12), default=6),
        Param("train.optim.optimizer", CategoricalDomain(("AdamW", "SGD")), default="AdamW"),
        Param("train.optim.momentum", FloatDomain(0.0, 0.99), default=0.9,
              condition=Condition("train.optim.optimizer", ("SGD",))),
        Param("train.num_epochs", IntDomain(1, 50), default=10),
    ))


def quality(config: dict) -> float:
    """Final-epoch score in (0, 1]: best at lr = 1e-3, dec_layers = 7, AdamW."""
    q = (math.log10(config["train.optim.lr"]) + 3.0) ** 2 / 4.0 + (config["model.dec_layers"] - 7) ** 2 / 30.0
    q += 0.1 if config["train.optim.optimizer"] == "SGD" else 0.0
    return 1.0 / (1.0 + q)


def curve(config: dict, epoch: int) -> dict:
    final = quality(config)
    return {METRIC: final * (1.0 - math.exp(-epoch / 4.0)), "val_loss": 1.0 / final}


OBJECTIVE = FunctionObjective(curve, cost=1.0)


def automl(name: str, **knobs: Any) -> AutoMLConfig:
    """Small budgets so every case runs in well under a second (TAO's R/eta kept unless given)."""
    defaults = {"max_recommendations": 10, "population_size": 6, "eval_interval": 6, "batch_size": 3}
    return AutoMLConfig(algorithm=name, **{**defaults, **knobs})


def build(name: str, seed: int = 7, space: SearchSpace | None = None, **knobs: Any) -> Algorithm:
    return make_algorithm(name, space or small_space(), automl(name, **knobs), METRIC, seed=seed)


def simulate(name: str, seed: int = 7, workers: int = 3, objective=OBJECTIVE, **knobs: Any) -> tuple[Algorithm, SimRun]:
    alg = build(name, seed, **knobs)
    return alg, Simulator(alg, objective, workers=workers).run()
