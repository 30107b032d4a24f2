"""TAO's algorithm names -> `Algorithm`s (notes/tao.md §3.4; defaults from gdino/config/automl.py)."""
from __future__ import annotations

from typing import Any, Optional

from gdino.config import AutoMLConfig
from gdino.errors import SpecError
from hpo.algorithms.base import FIDELITY_ATTR, Algorithm
from hpo.algorithms.budget import check_budget
from hpo.algorithms.schedulers import LearningCurveHyperBand, SeededPBT, SyncHyperBand, hyperband_brackets
from hpo.algorithms.searchers import (
    BatchUCBSearcher,
    DESearcher,
    GPEISearcher,
    GridSearcher,
    KDESearcher,
    OptunaTPESearcher,
    RandomSearcher,
    grid_points,
)
from hpo.space import SearchSpace


class _Single(Algorithm):
    """One full-length trial per recommendation, `max_recommendations` of them, FIFO."""

    @property
    def num_samples(self) -> int:
        return int(self.automl.max_recommendations)


class RandomAlgorithm(_Single):
    name = "random"

    def make_searcher(self) -> Any:
        return RandomSearcher(self.space, self.metric, self.mode, self.seed)


class GridAlgorithm(_Single):
    name = "grid"

    @property
    def num_samples(self) -> int:
        return len(grid_points(self.space, int(self.automl.max_recommendations), self.seed))

    def make_searcher(self) -> Any:
        return GridSearcher(self.space, self.metric, self.mode, self.seed,
                            max_points=int(self.automl.max_recommendations))


class BayesianAlgorithm(_Single):
    name = "bayesian"

    def make_searcher(self) -> Any:
        sequential = True if self.automl.sequential is None else bool(self.automl.sequential)
        return GPEISearcher(self.space, self.metric, self.mode, self.seed, sequential=sequential)


class BFBOAlgorithm(_Single):
    name = "bfbo"

    def make_searcher(self) -> Any:
        return BatchUCBSearcher(self.space, self.metric, self.mode, self.seed,
                                batch_size=int(self.automl.batch_size))


class TPEAlgorithm(_Single):
    name = "tpe"

    def make_searcher(self) -> Any:
        startup = max(2, min(10, int(self.automl.max_recommendations) // 3))
        return OptunaTPESearcher(self.space, self.metric, self.mode, self.seed, n_startup_trials=startup)


# ------------------------------------------------------------------------------------------ Hyperband family
class HyperbandAlgorithm(Algorithm):
    """TAO's synchronous Hyperband with random sampling; trials pause at rungs and resume."""

    name = "hyperband"
    multi_fidelity = True
    pauses = True

    @property
    def brackets(self):
        return hyperband_brackets(int(self.automl.max_epochs), int(self.automl.reduction_factor),
                                  int(self.automl.epoch_multiplier))

    @property
    def num_samples(self) -> int:
        return sum(b.configs for b in self.brackets)

    @property
    def budgets(self) -> list[int]:
        return sorted({e for b in self.brackets for e in b.budgets})

    @property
    def planned_epochs(self) -> int:
        """Epochs the whole plan trains when promoted trials continue from checkpoints."""
        return sum(b.epochs for b in self.brackets)

    def make_searcher(self) -> Any:
        return RandomSearcher(self.space, self.metric, self.mode, self.seed)

    def make_scheduler(self) -> Any:
        return SyncHyperBand(self.brackets, self.metric, self.mode, time_attr=FIDELITY_ATTR)


class BOHBAlgorithm(HyperbandAlgorithm):
    """Hyperband + BOHB's KDE sampler (once max(2, min_points_in_model) points exist at a budget)."""

    name = "bohb"

    def make_searcher(self) -> Any:
        a = self.automl
        return KDESearcher(self.space, self.metric, self.mode, self.seed, budgets=self.budgets,
                           min_points=max(2, int(a.min_points_in_model), self.space.dim + 1),
                           top_n_percent=float(a.top_n_percent), kde_samples=int(a.kde_samples))


class DEHBAlgorithm(HyperbandAlgorithm):
    """Hyperband + differential evolution (mutation_factor F, crossover_prob CR)."""

    name = "dehb"

    def make_searcher(self) -> Any:
        a = self.automl
        return DESearcher(self.space, self.metric, self.mode, self.seed, budgets=self.budgets,
                          min_points=max(3, int(a.min_top_configs)), population_size=int(a.population_size),
                          mutation_factor=float(a.mutation_factor), crossover_prob=float(a.crossover_prob))


class HyperbandESAlgorithm(HyperbandAlgorithm):
    """Hyperband + learning-curve extrapolation stopping (after min_early_stop_epochs reports)."""

    name = "hyperband_es"

    def make_scheduler(self) -> Any:
        return LearningCurveHyperBand(self.brackets, self.metric, self.mode, time_attr=FIDELITY_ATTR,
                                      min_epochs=int(self.automl.min_early_stop_epochs),
                                      r2_threshold=float(self.automl.early_stop_threshold))


class ASHAAlgorithm(Algorithm):
    """Ray's ASHAScheduler (one bracket, rungs r0 eta^i up to R, r0 = max(1, R / eta^smax)), asynchronous
    promotions; trials stopped at a rung end there. Sampling: `automl.searcher` (random by default)."""

    name = "asha"
    multi_fidelity = True

    @property
    def num_samples(self) -> int:
        return int(self.automl.max_trials or self.automl.max_recommendations)

    @property
    def grace_period(self) -> int:
        return min(b.budgets[0] for b in hyperband_brackets(int(self.automl.max_epochs),
                                                             int(self.automl.reduction_factor),
                                                             int(self.automl.epoch_multiplier)))

    @property
    def budgets(self) -> list[int]:
        eta, out, r = int(self.automl.reduction_factor), [], self.grace_period
        while r < self.trial_epochs:
            out.append(r)
            r *= eta
        return out + [self.trial_epochs]

    def make_searcher(self) -> Any:
        kind = getattr(self.automl, "searcher", None) or "random"
        if kind == "random":
            return RandomSearcher(self.space, self.metric, self.mode, self.seed)
        if kind == "tpe":
            return OptunaTPESearcher(self.space, self.metric, self.mode, self.seed,
                                     n_startup_trials=max(2, min(10, self.num_samples // 3)))
        if kind == "kde":
            return KDESearcher(self.space, self.metric, self.mode, self.seed, budgets=self.budgets,
                               min_points=max(2, int(self.automl.min_points_in_model), self.space.dim + 1),
                               top_n_percent=float(self.automl.top_n_percent),
                               kde_samples=int(self.automl.kde_samples))
        raise SpecError(f"unknown searcher {kind!r} for asha", key="automl.searcher",
                        hint="use random, tpe or kde")

    def make_scheduler(self) -> Any:
        from ray.tune.schedulers import ASHAScheduler

        return ASHAScheduler(time_attr=FIDELITY_ATTR, metric=self.metric, mode=self.mode,
                             max_t=self.trial_epochs, grace_period=self.grace_period,
                             reduction_factor=int(self.automl.reduction_factor), brackets=1)


class PBTAlgorithm(Algorithm):
    """A population of `population_size` trials of R epochs; every `eval_interval` epochs the bottom
    20 % exploit (copy checkpoint + config of) a top-20 % member and explore (SearchSpace.perturb)."""

    name = "pbt"
    multi_fidelity = True
    pauses = True

    @property
    def num_samples(self) -> int:
        return int(self.automl.population_size)

    @property
    def perturbation_interval(self) -> int:
        return int(self.automl.eval_interval) * int(self.automl.epoch_multiplier)

    @property
    def budgets(self) -> list[int]:
        step = self.perturbation_interval
        return list(range(step, self.trial_epochs, step)) + [self.trial_epochs]

    def make_searcher(self) -> Any:
        return RandomSearcher(self.space, self.metric, self.mode, self.seed)

    def make_scheduler(self) -> Any:
        return SeededPBT(self.space, self.seed, metric=self.metric, mode=self.mode,
                         perturbation_interval=self.perturbation_interval,
                         perturbation_factor=float(self.automl.perturbation_factor),
                         population_size=self.num_samples, max_t=self.trial_epochs)


ALGORITHMS: dict[str, type[Algorithm]] = {cls.name: cls for cls in (
    BayesianAlgorithm, HyperbandAlgorithm, BOHBAlgorithm, BFBOAlgorithm, ASHAAlgorithm, PBTAlgorithm,
    DEHBAlgorithm, HyperbandESAlgorithm, RandomAlgorithm, GridAlgorithm, TPEAlgorithm)}


def make_algorithm(name: str, space: SearchSpace, automl_cfg: AutoMLConfig, metric: Optional[str] = None,
                   mode: Optional[str] = None, seed: Optional[int] = None) -> Algorithm:
    """The algorithm called `name` (TAO's names) over `space` with the spec's `automl` knobs."""
    cls = ALGORITHMS.get(name)
    if cls is None:
        raise SpecError(f"unknown AutoML algorithm {name!r}", key="automl.algorithm",
                        hint="use one of " + ", ".join(sorted(ALGORITHMS)))
    check_budget(name, automl_cfg)  # a typed error naming the keys, before anything is built
    return cls(space, automl_cfg, metric or automl_cfg.metric, mode, seed)
