"""The one interface every TAO algorithm implements for the sweep (and the simulator).

    alg = make_algorithm("bohb", space, automl_cfg, metric="val_mAP50", mode=None, seed=None)
    alg.searcher, alg.scheduler        # a ray.tune Searcher (or None) and a TrialScheduler, built once
    alg.num_samples                    # trials the sweep starts (Tune's num_samples)
    alg.trial_epochs                   # epochs of one trial (the largest budget, x epoch_multiplier)
    alg.budgets                        # the epoch budgets (rungs) a trial can stop or pause at
    alg.multi_fidelity, alg.pauses     # epochs are the fidelity / trials pause and resume (checkpoints)
    alg.trial_config(i)                # trial i's config from SeedSequence((seed, i)) (random draws)

Epochs are the fidelity of the multi-fidelity algorithms: their space never holds an epoch parameter.
Results carry the epoch as `epoch` (FIDELITY_ATTR); the metric's direction is `metric_mode(metric)`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from functools import cached_property
from typing import Any, ClassVar, Optional

from gdino.config import AutoMLConfig
from hpo.algorithms.scoring import metric_mode
from hpo.space import SearchSpace

FIDELITY_ATTR = "epoch"
EPOCH_PARAMS = ("train.num_epochs",)  # fallback when hpo.space.build is unavailable

__all__ = ["Algorithm", "FIDELITY_ATTR", "metric_mode"]


def _epoch_params() -> tuple[str, ...]:
    try:
        from hpo.space import EPOCH_PARAMS as names

        return tuple(names)
    except (ImportError, AttributeError):
        return EPOCH_PARAMS


class RunningCap:
    """A cap on trials that are RUNNING or about to start (PENDING), shared by a pausing algorithm's
    searcher (admits new trials) and scheduler (resumes paused ones; refreshes the count from Tune's
    trial statuses at every call)."""

    def __init__(self, limit: int) -> None:
        self.limit = int(limit)
        self.active = 0
        self.admitted = 0  # admitted since the last refresh (not yet visible as PENDING trials)

    def refresh(self, trials: Any) -> None:
        from ray.tune.experiment import Trial

        self.active = sum(1 for t in trials if t.status in (Trial.RUNNING, Trial.PENDING))
        self.admitted = 0

    def has_room(self) -> bool:
        return self.active + self.admitted < self.limit

    def admit(self) -> bool:
        if not self.has_room():
            return False
        self.admitted += 1
        return True


class Algorithm(ABC):
    """A TAO AutoML algorithm on Ray Tune (see the module docstring)."""

    name: ClassVar[str]
    multi_fidelity: ClassVar[bool] = False
    pauses: ClassVar[bool] = False

    def __init__(self, space: SearchSpace, automl_cfg: AutoMLConfig, metric: str = "val_mAP50",
                 mode: Optional[str] = None, seed: Optional[int] = None) -> None:
        if self.multi_fidelity:  # the epoch budget is the algorithm's: never also searched
            space = space.without(_epoch_params(), reason="epochs are the fidelity of " + self.name)
        self.space = space
        self.automl = automl_cfg
        self.metric = metric
        self.mode = mode or metric_mode(metric)
        self.seed = int(automl_cfg.seed if seed is None else seed)

    # --- what the sweep reads -------------------------------------------------------------------------
    @cached_property
    def searcher(self) -> Any:
        searcher = self.make_searcher()
        attach = getattr(searcher, "attach_scheduler", None)
        if callable(attach):  # the scheduler's state is saved and restored with the searcher's
            attach(self.scheduler)
        return searcher

    @cached_property
    def scheduler(self) -> Any:
        return self.make_scheduler()

    @property
    def trial_epochs(self) -> int:
        """Epochs of one full trial: R x epoch_multiplier (already multiplied)."""
        return int(self.automl.max_epochs) * int(self.automl.epoch_multiplier)

    @property
    def budgets(self) -> list[int]:
        """Epoch budgets at which the scheduler may stop or pause a trial (the last is trial_epochs)."""
        return [self.trial_epochs]

    @property
    def param_space(self) -> dict:
        return {}  # the searcher owns the space: Tune's param_space stays empty

    @property
    @abstractmethod
    def num_samples(self) -> int:
        """Trials the sweep starts."""

    @abstractmethod
    def make_searcher(self) -> Any:
        """A fresh ray.tune Searcher (or None)."""

    def make_scheduler(self) -> Any:
        """A fresh ray.tune TrialScheduler (default: first in, first out)."""
        from ray.tune.schedulers import FIFOScheduler

        return FIFOScheduler()

    def tune_max_concurrent(self, max_running: Optional[int]) -> Optional[int]:
        """What to pass as Tune's `max_concurrent_trials` for a cap of `max_running` running trials.

        Tune's cap (a ConcurrencyLimiter on the searcher) counts paused trials as live, so a
        synchronous rung that must hold more paused trials than the cap never fills: a deadlock.
        Pausing algorithms therefore cap RUNNING trials themselves (the searcher only admits a new
        trial, and the scheduler only resumes a paused one, while fewer than `max_running` run) and
        this returns None; the others return `max_running` unchanged."""
        if not self.pauses or max_running is None:
            return max_running
        cap = RunningCap(int(max_running))
        self.searcher.cap = cap
        self.scheduler.cap = cap
        return None

    def trial_config(self, trial_index: int) -> dict[str, Any]:
        """Trial `trial_index`'s random draw: SeedSequence((seed, index)) through the space."""
        return self.space.sample_trial(self.seed, trial_index)

    def describe(self) -> str:
        return (f"{self.name}: {self.num_samples} trials of up to {self.trial_epochs} epochs, "
                f"budgets {self.budgets}, metric {self.metric} ({self.mode}), seed {self.seed}")
