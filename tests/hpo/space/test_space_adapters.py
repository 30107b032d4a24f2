"""Optuna (define-by-run) and HyperOpt adapters keep weights, conditions and constraints."""
from __future__ import annotations

import zlib

import numpy as np
import optuna
import pytest
from hyperopt import Trials, fmin, rand, tpe
from scipy import stats

from hpo.space import (
    CategoricalDomain,
    Condition,
    FloatDomain,
    IntDomain,
    Param,
    Relation,
    SearchSpace,
    build_search_space,
)
from hpo.space.adapters import decode_hyperopt, hyperopt_space, suggest_optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return SearchSpace((
        Param("opt", CategoricalDomain(("AdamW", "SGD"), (0.8, 0.2)), "categorical", "AdamW"),
        Param("momentum", FloatDomain(0.8, 0.99), "float", 0.9, condition=Condition("opt", ("SGD",))),
        Param("lr", FloatDomain(1e-5, 1e-2, log=True), "float", 1e-4),
        Param("width", IntDomain(8, 512, power_base=2), "int", 64),
        Param("layers", IntDomain(1, 12), "int", 6),
        Param("crop_min", IntDomain(32, 1333), "int", 384),
        Param("crop_max", IntDomain(32, 1333), "int", 600, relations=(Relation("crop_min", ">"),)),
    ))


def _run_optuna(space, sampler, n):
    configs = []

    def objective(trial):
        config = suggest_optuna(space, trial)
        configs.append(config)
        return float(sum(zlib.crc32(repr(v).encode()) % 97 for v in config.values()))

    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=n)
    return configs


def test_optuna_define_by_run_is_always_feasible(space):
    for sampler in (optuna.samplers.RandomSampler(seed=0), optuna.samplers.TPESampler(seed=0, n_startup_trials=5)):
        configs = _run_optuna(space, sampler, 40)
        assert all(space.is_feasible(c) for c in configs)
        assert all(("momentum" in c) == (c["opt"] == "SGD") for c in configs)


def test_optuna_keeps_option_weights(space):
    configs = _run_optuna(space, optuna.samplers.RandomSampler(seed=1), 1000)
    sgd = sum(c["opt"] == "SGD" for c in configs)
    assert stats.chisquare([1000 - sgd, sgd], [800, 200]).pvalue > 0.001


def _run_hyperopt(space, algo, n, seed):
    configs = []

    def objective(sample):
        config = decode_hyperopt(space, sample)
        configs.append(config)
        return float(sum(zlib.crc32(repr(v).encode()) % 97 for v in config.values()))

    fmin(objective, hyperopt_space(space), algo=algo, max_evals=n, trials=Trials(),
         rstate=np.random.default_rng(seed), show_progressbar=False)
    return configs


def test_hyperopt_native_space_is_always_feasible(space):
    for algo in (rand.suggest, tpe.suggest):
        configs = _run_hyperopt(space, algo, 40, 0)
        assert all(space.is_feasible(c) for c in configs)
        assert all(("momentum" in c) == (c["opt"] == "SGD") for c in configs)


def test_hyperopt_pchoice_keeps_option_weights(space):
    configs = _run_hyperopt(space, rand.suggest, 600, 2)
    sgd = sum(c["opt"] == "SGD" for c in configs)
    assert stats.chisquare([600 - sgd, sgd], [480, 120]).pvalue > 0.001
    assert {c["width"] for c in configs} <= {8, 16, 32, 64, 128, 256, 512}


def test_hyperopt_nests_conditional_params(space):
    native = hyperopt_space(space)
    assert "momentum" not in native and "opt" in native


def test_from_hyperopt_accepts_a_flat_sample(space):
    config = decode_hyperopt(space, {"opt": "SGD", "momentum": 0.85, "lr": 1e-3, "width": 64, "layers": 3.0,
                                  "crop_min": 100.0, "crop_max#u": 0.5})
    assert space.is_feasible(config)
    assert config["layers"] == 3 and isinstance(config["layers"], int)
    assert config["crop_max"] > 100


def test_adapters_on_the_real_schema(tao_schema_path):
    space = build_search_space({"automl": {"add_hyperparameters": ["train.optim.optimizer", "model.num_queries"]}},
                               schema=tao_schema_path)
    configs = _run_optuna(space, optuna.samplers.TPESampler(seed=3, n_startup_trials=3), 10)
    configs += _run_hyperopt(space, tpe.suggest, 10, 3)
    assert all(space.is_feasible(c) for c in configs)
