"""Ray Tune `Searcher`s that read the SearchSpace (one base class, one proposal rule each).

Every searcher here is deterministic: proposal i draws from `trial_rng(seed, i)` (SeedSequence((seed, i)))
and from the observations told so far, so a restored searcher (save/restore, what Tune checkpoints)
makes exactly the suggestions the dead sweep would have made. A failed trial (error, or no finite metric)
is recorded as a failure and dropped from every model: never a fake score of 0.

    RandomSearcher   TAO's random brain; also the sampler under asha/hyperband/hyperband_es/pbt
    GridSearcher     a unit-cube grid of the space
    GPEISearcher     bayesian: GP (Matern 5/2, ARD) + expected improvement; sequential by default
    BatchUCBSearcher bfbo: GP (RBF) + UCB with decaying kappa, batches by local penalisation
    OptunaTPESearcher tpe: Optuna's TPE over the space's define-by-run adapter
    KDESearcher      bohb: TPE-style l(x)/g(x) KDE model on the largest budget with enough points
    DESearcher       dehb: differential evolution (rand/1/bin) on the largest budget with enough points
"""
from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
from ray.tune.search import Searcher

from hpo.algorithms import gp
from hpo.algorithms.scoring import finite, sign, trial_score
from hpo.space import SearchSpace
from hpo.space.adapters import suggest_optuna

FIDELITY_ATTR = "epoch"
_PRIVATE_PREFIX = "__"  # config keys such as __epochs__ are the sweep's, not the space's
_NOT_SAVED = ("space", "cap", "_scheduler")  # rebuilt by the sweep / saved on their own
_SCHEDULER_STATE = "__scheduler_state__"


@dataclass
class SearcherTrial:
    """What a searcher knows about one trial it suggested."""

    index: int
    config: dict[str, Any]
    history: list[tuple[int, float]] = field(default_factory=list)  # (epoch, value) as reported
    state: str = "running"  # running | done | failed
    extra: dict[str, Any] = field(default_factory=dict)


class SpaceSearcher(Searcher):
    """Base: bookkeeping, failures, observations, save/restore. Subclasses implement `_propose`.

    `_propose(index)` returns a flat config, None to wait (e.g. sequential BO with a trial in flight)
    or `Searcher.FINISHED`."""

    def __init__(self, space: SearchSpace, metric: str, mode: str, seed: int,
                 fidelity_attr: str = FIDELITY_ATTR) -> None:
        super().__init__(metric=metric, mode=mode)
        self.space = space
        self.seed = int(seed)
        self.fidelity_attr = fidelity_attr
        self._next_index = 0
        self._trials: dict[str, SearcherTrial] = {}
        self.cap: Any = None  # a base.RunningCap when a pausing scheduler caps running trials
        # configs suggested before any proposal (Ray's `points_to_evaluate`): the baseline trial, the
        # spec as written. They take no proposal index, so proposal i stays the same draw with or without.
        self.points_to_evaluate: list[dict[str, Any]] = []
        self._given = 0

    # --- Ray's Searcher interface -----------------------------------------------------------------
    def set_search_properties(self, metric: Optional[str], mode: Optional[str], config: dict,
                              **spec: Any) -> bool:
        self._metric = metric or self._metric
        self._mode = mode or self._mode
        return True  # the space is ours: Tune's param_space must stay empty

    def suggest(self, trial_id: str) -> Optional[dict]:
        if trial_id in self._trials:  # asked again (e.g. after a restore): the same answer
            return dict(self._trials[trial_id].config)
        if self.cap is not None and not self.cap.has_room():
            return None
        if self._given < len(getattr(self, "points_to_evaluate", ())):
            self._given += 1
            config = dict(self.points_to_evaluate[self._given - 1])
            self._trials[trial_id] = SearcherTrial(-self._given, config, extra={"given": True})
            if self.cap is not None:
                self.cap.admit()
            return dict(config)
        config = self._propose(self._next_index)
        if config is None or config == Searcher.FINISHED:
            return config
        self._trials[trial_id] = SearcherTrial(self._next_index, dict(config))
        self._next_index += 1
        if self.cap is not None:
            self.cap.admit()
        return dict(config)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        trial = self._trials.get(trial_id)
        value = finite(result.get(self.metric)) if result else None
        if trial is None or value is None:
            return
        epoch = result.get(self.fidelity_attr, result.get("training_iteration", len(trial.history) + 1))
        trial.history.append((int(epoch), value))

    def on_trial_complete(self, trial_id: str, result: Optional[dict] = None, error: bool = False) -> None:
        trial = self._trials.get(trial_id)
        if trial is None:
            return
        if result and not error:
            value = finite(result.get(self.metric))
            epoch = result.get(self.fidelity_attr, result.get("training_iteration"))
            if value is not None and epoch is not None and (int(epoch), value) not in trial.history:
                trial.history.append((int(epoch), value))
        failed = error or trial_score(trial.history, self.mode) is None
        trial.state = "failed" if failed else "done"

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))

    def attach_scheduler(self, scheduler: Any) -> None:
        """Save `scheduler`'s state with this searcher's: Tune checkpoints and restores searchers but
        rebuilds schedulers afresh, which would lose every rung and population (issue 12)."""
        self._scheduler = scheduler

    def get_state(self) -> dict:
        from hpo.algorithms.schedulers import scheduler_state

        state = {k: v for k, v in self.__dict__.items() if k not in _NOT_SAVED}
        state[_SCHEDULER_STATE] = scheduler_state(getattr(self, "_scheduler", None))
        return state

    def set_state(self, state: dict) -> None:
        from hpo.algorithms.schedulers import restore_scheduler_state

        state = dict(state)
        scheduler = state.pop(_SCHEDULER_STATE, None)
        self.__dict__.update(state)
        restore_scheduler_state(getattr(self, "_scheduler", None), scheduler)

    # --- helpers for subclasses ---------------------------------------------------------------------
    @property
    def pending(self) -> list[SearcherTrial]:
        return [t for t in self._trials.values() if t.state == "running"]

    def observations(self) -> tuple[np.ndarray, np.ndarray]:
        """(unit-cube points, signed scores: higher is better) of trials that finished with a score."""
        done = [t for t in self._trials.values() if t.state == "done"]
        s = sign(self.mode)
        xs = [self.space.to_unit(self._space_part(t.config)) for t in done]
        ys = [s * float(trial_score(t.history, self.mode)) for t in done]  # type: ignore[arg-type]
        return _as_arrays(xs, ys, self.space.dim)

    def budget_observations(self, budgets: Sequence[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Per epoch budget: (unit points, signed value at that epoch) of every trial that reached it.
        Failed trials are left out; a trial stopped at a rung still counts at the rungs it reached."""
        s = sign(self.mode)
        out: dict[int, tuple[list, list]] = {int(b): ([], []) for b in budgets}
        for t in self._trials.values():
            if t.state == "failed":
                continue
            seen = dict(t.history)  # epoch -> value (the last report at that epoch)
            for b in out:
                if b in seen:
                    out[b][0].append(self.space.to_unit(self._space_part(t.config)))
                    out[b][1].append(s * seen[b])
        return {b: _as_arrays(xs, ys, self.space.dim) for b, (xs, ys) in out.items()}

    def _space_part(self, config: dict) -> dict:
        return {k: v for k, v in config.items() if not k.startswith(_PRIVATE_PREFIX)}

    def _random(self, index: int) -> dict:
        return self.space.sample_trial(self.seed, index)

    def _propose(self, index: int) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


def model_rng(seed: int, index: int) -> np.random.Generator:
    """The model's own stream for proposal `index`: independent of the trial's random draw
    `trial_rng(seed, index)` (sharing it would correlate the coin flips with the first coordinate)."""
    mask = (1 << 64) - 1
    return np.random.default_rng(np.random.SeedSequence((int(seed) & mask, int(index) & mask, 0x6D6F64656C)))


def _as_arrays(xs: list, ys: list, dim: int) -> tuple[np.ndarray, np.ndarray]:
    if not xs:
        return np.zeros((0, dim)), np.zeros(0)
    return np.asarray(xs, dtype=float).reshape(len(xs), dim), np.asarray(ys, dtype=float)


# ------------------------------------------------------------------------------------------ random/grid
class RandomSearcher(SpaceSearcher):
    """Trial i is `space.sample_trial(seed, i)`: the same configs whatever the scheduler does."""

    def _propose(self, index: int) -> dict:
        return self._random(index)


class GridSearcher(SpaceSearcher):
    """The space's unit-cube grid, in an order shuffled by the seed (so a truncated grid is spread)."""

    def __init__(self, space: SearchSpace, metric: str, mode: str, seed: int, max_points: int,
                 **kwargs: Any) -> None:
        super().__init__(space, metric, mode, seed, **kwargs)
        self.points = grid_points(space, max_points, seed)

    def _propose(self, index: int) -> Any:
        return dict(self.points[index]) if index < len(self.points) else Searcher.FINISHED


def grid_points(space: SearchSpace, max_points: int, seed: int) -> list[dict]:
    """The densest grid with at most `max_points` points (at least the 1-point-per-axis grid,
    truncated), shuffled by the seed."""
    best = space.grid(1)
    for per_dim in range(2, 65):
        try:
            candidate = space.grid(per_dim, max_configs=max(max_points, 1) * 4)
        except Exception:  # the grid would be too large: keep the previous density
            break
        if len(candidate) > max_points:
            break
        best = candidate
    order = np.random.default_rng(np.random.SeedSequence((int(seed) & (2**64 - 1), 0x67726964))).permutation(len(best))
    return [best[i] for i in order][:max_points]


# ------------------------------------------------------------------------------------------ GP based
class GPEISearcher(SpaceSearcher):
    """TAO's `bayesian`: first point random, then the maximiser of expected improvement (xi=0.01) of a
    GP (constant x Matern 5/2 with ARD length scales) fitted in the unit cube. Sequential by default
    (TAO waits for each recommendation); failed trials are dropped from the GP data."""

    def __init__(self, space: SearchSpace, metric: str, mode: str, seed: int, *, sequential: bool = True,
                 n_initial: int = 1, xi: float = 0.01, **kwargs: Any) -> None:
        super().__init__(space, metric, mode, seed, **kwargs)
        self.sequential, self.n_initial, self.xi = sequential, n_initial, xi

    def _propose(self, index: int) -> Any:
        if self.sequential and self.pending:
            return None
        x, y = self.observations()
        if len(y) < self.n_initial or self.space.dim == 0:
            return self._random(index)
        rng = model_rng(self.seed, index)
        # trials in flight (non-sequential mode) count as their predicted mean: no duplicate proposals
        busy = np.array([self.space.to_unit(self._space_part(t.config)) for t in self.pending])
        model = gp.fit(x, y, kernel="matern", seed=int(rng.integers(2**31)))
        if len(busy):
            model = gp.fit(np.vstack([x, busy]), np.concatenate([y, model.predict(busy)]), kernel="matern",
                           seed=int(rng.integers(2**31)))
        u = gp.maximise(lambda pts: gp.expected_improvement(model, pts, float(y.max()), self.xi), x, rng)
        return self.space.from_unit(u)


class BatchUCBSearcher(SpaceSearcher):
    """TAO's `bfbo`: batches of `batch_size` proposals from a GP (RBF) with UCB, kappa starting at 2.0
    and decaying by 0.95 per batch down to 0.5; the batch is spread by local penalisation (each pick
    damps the acquisition around it, by a Lipschitz estimate of the GP mean). The next batch is
    proposed once the previous one has finished."""

    def __init__(self, space: SearchSpace, metric: str, mode: str, seed: int, *, batch_size: int = 4,
                 kappa: float = 2.0, kappa_decay: float = 0.95, kappa_min: float = 0.5, **kwargs: Any) -> None:
        super().__init__(space, metric, mode, seed, **kwargs)
        self.batch_size, self.kappa, self.kappa_decay, self.kappa_min = batch_size, kappa, kappa_decay, kappa_min
        self._queue: list[dict] = []
        self._batches = 0

    def _propose(self, index: int) -> Any:
        if not self._queue:
            if any(not t.extra.get("given") for t in self.pending):
                return None  # synchronous batches: wait for the previous one (a given point is no batch)
            self._queue = self._next_batch(index)
            self._batches += 1
        return self._queue.pop(0)

    def _next_batch(self, index: int) -> list[dict]:
        x, y = self.observations()
        if len(y) < 2 or self.space.dim == 0:
            return [self._random(index + k) for k in range(self.batch_size)]
        rng = model_rng(self.seed, index)
        kappa = max(self.kappa_min, self.kappa * self.kappa_decay ** self._batches)
        model = gp.fit(x, y, kernel="rbf", seed=int(rng.integers(2**31)))
        picks = gp.penalised_batch(model, x, y, kappa, self.batch_size, rng)
        return [self.space.from_unit(u) for u in picks]


# ------------------------------------------------------------------------------------------ TPE (Optuna)
class OptunaTPESearcher(SpaceSearcher):
    """`tpe`: Optuna's TPESampler (seeded) asking through `hpo.space.adapters.suggest_optuna`, told each trial's
    score (its best epoch) or FAIL. The study lives in memory and is pickled with the searcher."""

    def __init__(self, space: SearchSpace, metric: str, mode: str, seed: int, *, n_startup_trials: int = 10,
                 **kwargs: Any) -> None:
        import optuna

        super().__init__(space, metric, mode, seed, **kwargs)
        import warnings

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        with warnings.catch_warnings():  # multivariate/group are "experimental" in Optuna
            warnings.simplefilter("ignore")
            sampler = optuna.samplers.TPESampler(seed=int(seed) % 2**32, n_startup_trials=n_startup_trials,
                                                 multivariate=True, group=True)
        self.study = optuna.create_study(direction="maximize" if mode == "max" else "minimize",
                                         sampler=sampler)
        self._numbers: dict[int, int] = {}  # our index -> optuna trial number

    def _propose(self, index: int) -> dict:
        import warnings

        with warnings.catch_warnings():  # multivariate/group are "experimental" in Optuna
            warnings.simplefilter("ignore")
            trial = self.study.ask()
            config = suggest_optuna(self.space, trial)
        self._numbers[index] = trial.number
        return config

    def on_trial_complete(self, trial_id: str, result: Optional[dict] = None, error: bool = False) -> None:
        import optuna

        super().on_trial_complete(trial_id, result, error)
        trial = self._trials.get(trial_id)
        if trial is None or trial.extra.get("told"):
            return
        number = self._numbers.get(trial.index)
        if number is None:  # a given point (points_to_evaluate): Optuna never asked for it
            return
        if trial.state == "failed":
            self.study.tell(number, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(number, trial_score(trial.history, self.mode))
        trial.extra["told"] = True


# ------------------------------------------------------------------------------------------ multi-fidelity
class _BudgetModelSearcher(SpaceSearcher):
    """Base of the model-based samplers under Hyperband: models the largest budget (rung epochs)
    that has at least `min_points` observations; random before that, and a `random_fraction` of the
    time (BOHB's safeguard)."""

    def __init__(self, space: SearchSpace, metric: str, mode: str, seed: int, *, budgets: Sequence[int],
                 min_points: int, random_fraction: float = 1 / 3, **kwargs: Any) -> None:
        super().__init__(space, metric, mode, seed, **kwargs)
        self.budgets = sorted({int(b) for b in budgets})
        self.min_points, self.random_fraction = int(min_points), float(random_fraction)
        self.model_fits: list[tuple[int, int, int]] = []  # (proposal index, budget, points) per model proposal

    def _model_data(self) -> Optional[tuple[int, np.ndarray, np.ndarray]]:
        per_budget = self.budget_observations(self.budgets)
        for b in reversed(self.budgets):
            x, y = per_budget[b]
            if len(y) >= self.min_points:
                return b, x, y
        return None

    def _propose(self, index: int) -> dict:
        rng = model_rng(self.seed, index)
        data = self._model_data()
        if data is None or self.space.dim == 0 or rng.random() < self.random_fraction:
            return self._random(index)
        budget, x, y = data
        self.model_fits.append((index, budget, len(y)))
        return self.space.from_unit(self._from_model(x, y, index, rng))

    def _from_model(self, x: np.ndarray, y: np.ndarray, index: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover


class KDESearcher(_BudgetModelSearcher):
    """BOHB's sampler: good = top `top_n_percent` of the modelled budget, bad = the rest; draw
    `kde_samples` candidates around good points (bandwidth x 3) and keep the best l(x)/g(x)."""

    def __init__(self, *args: Any, top_n_percent: float = 15.0, kde_samples: int = 64,
                 bandwidth_factor: float = 3.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.top_n_percent, self.kde_samples, self.bandwidth_factor = top_n_percent, kde_samples, bandwidth_factor

    def _from_model(self, x: np.ndarray, y: np.ndarray, index: int, rng: np.random.Generator) -> np.ndarray:
        order = np.argsort(-y, kind="stable")
        n_good = max(2, int(math.ceil(self.top_n_percent / 100.0 * len(y))))
        n_good = min(n_good, len(y) - 1)
        good, bad = x[order[:n_good]], x[order[n_good:]]
        bw_good, bw_bad = _bandwidths(good), _bandwidths(bad)
        centres = good[rng.integers(len(good), size=self.kde_samples)]
        candidates = np.clip(centres + rng.normal(size=centres.shape) * bw_good * self.bandwidth_factor, 0.0, 1.0)
        score = _log_kde(candidates, good, bw_good) - _log_kde(candidates, bad, bw_bad)
        return candidates[int(np.argmax(score))]


def _bandwidths(points: np.ndarray) -> np.ndarray:
    """Scott's rule per dimension, floored so a collapsed dimension keeps exploring."""
    n = max(len(points), 1)
    spread = points.std(axis=0) if len(points) > 1 else np.full(points.shape[1], 0.25)
    return np.maximum(1.06 * spread * n ** (-1.0 / 5.0), 0.03)


def _log_kde(at: np.ndarray, points: np.ndarray, bandwidth: np.ndarray) -> np.ndarray:
    z = (at[:, None, :] - points[None, :, :]) / bandwidth
    log_k = -0.5 * (z ** 2).sum(axis=2) - np.log(bandwidth).sum()
    peak = log_k.max(axis=1, keepdims=True)
    return (peak + np.log(np.exp(log_k - peak).mean(axis=1, keepdims=True))).ravel()


class DESearcher(_BudgetModelSearcher):
    """DEHB's sampler: the population is the best `population_size` configs of the modelled budget;
    proposal i mutates a + F(b - c) (three distinct members), crosses it binomially (CR) with target
    member i mod population, and reflects it back into the unit cube."""

    def __init__(self, *args: Any, population_size: int = 10, mutation_factor: float = 0.5,
                 crossover_prob: float = 0.5, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.population_size, self.mutation_factor = population_size, mutation_factor
        self.crossover_prob = crossover_prob

    def _from_model(self, x: np.ndarray, y: np.ndarray, index: int, rng: np.random.Generator) -> np.ndarray:
        population = x[np.argsort(-y, kind="stable")[: max(self.population_size, 3)]]
        a, b, c = population[rng.choice(len(population), size=3, replace=False)]
        mutant = _reflect(a + self.mutation_factor * (b - c))
        target = population[index % len(population)]
        cross = rng.random(len(target)) < self.crossover_prob
        cross[rng.integers(len(target))] = True  # at least one coordinate from the mutant
        return np.where(cross, mutant, target)


def _reflect(u: np.ndarray) -> np.ndarray:
    """Fold coordinates back into [0, 1] (a mirror, not a pile on the bound)."""
    u = np.mod(u, 2.0)
    return np.where(u > 1.0, 2.0 - u, u)
