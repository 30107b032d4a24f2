"""Ray Tune `TrialScheduler`s for TAO's multi-fidelity algorithms (epochs are the fidelity).

    hyperband_brackets(R, eta)  TAO's bracket plan: s = smax..1 (s = 0, pure random search, omitted)
    SyncHyperBand               synchronous rungs: a trial pauses at its rung budget; when every trial
                                of the rung has reported (or failed), the top n_{i+1} resume from their
                                checkpoints and the rest stop (hyperband, bohb, dehb)
    LearningCurveHyperBand      + learning-curve extrapolation stopping inside a rung (hyperband_es)
    SeededPBT                   Ray's PBT with `SearchSpace.perturb` as its explore step and its own
                                seeded random stream (pbt)
ASHA uses Ray's ASHAScheduler directly (see hpo.algorithms.registry).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, PopulationBasedTraining, TrialScheduler

from hpo.algorithms.scoring import finite, sign
from hpo.space import SearchSpace, trial_rng

FIDELITY_ATTR = "epoch"


@dataclass(frozen=True)
class Bracket:
    """One Hyperband bracket: rung i runs `sizes[i]` configs up to `budgets[i]` epochs."""

    s: int
    sizes: tuple[int, ...]
    budgets: tuple[int, ...]

    @property
    def configs(self) -> int:
        return self.sizes[0]

    @property
    def epochs(self) -> int:
        """Epochs trained when promoted trials continue from their checkpoints (new epochs only)."""
        total, previous = 0, 0
        for size, budget in zip(self.sizes, self.budgets):
            total += size * (budget - previous)
            previous = budget
        return total


def hyperband_brackets(max_epochs: int, eta: int, epoch_multiplier: int = 1) -> list[Bracket]:
    """TAO's plan (notes/tao.md §3.4): smax = floor(log_eta R); for s = smax..1,
    n = ceil(floor((smax+1)/(s+1)) * eta^s), r = R/eta^s, rung i: floor(n eta^-i) configs for r eta^i
    epochs (x epoch_multiplier). R=27, eta=3: 42 configs, 234 epochs."""
    if max_epochs < 2 or eta < 2:
        raise ValueError("Hyperband needs max_epochs >= 2 and reduction_factor >= 2")
    smax = int(math.floor(math.log(max_epochs) / math.log(eta) + 1e-9))
    brackets = []
    for s in range(smax, 0, -1):
        n = int(math.ceil((smax + 1) // (s + 1) * eta ** s))
        r = max_epochs / eta ** s
        sizes = tuple(max(1, int(math.floor(n * eta ** (-i) + 1e-9))) for i in range(s + 1))
        budgets = tuple(max(1, int(round(r * eta ** i))) * epoch_multiplier for i in range(s + 1))
        brackets.append(Bracket(s, sizes, budgets))
    return brackets


@dataclass(eq=False)
class _BracketRun:
    bracket: Bracket
    members: list = field(default_factory=list)  # trials of the current rung
    rung: int = 0
    results: dict = field(default_factory=dict)  # trial -> value at the rung budget (None: failed/stopped)
    to_resume: set = field(default_factory=set)  # paused winners waiting for a worker

    @property
    def budget(self) -> int:
        return self.bracket.budgets[self.rung]

    @property
    def last_rung(self) -> bool:
        return self.rung == len(self.bracket.sizes) - 1

    def rung_complete(self) -> bool:
        return len(self.members) == self.bracket.sizes[self.rung] and all(t in self.results for t in self.members) \
            if self.rung == 0 else all(t in self.results for t in self.members)


class SyncHyperBand(FIFOScheduler):
    """TAO's synchronous Hyperband on Tune's pause/resume (see the module docstring).

    Trials are assigned to bracket slots in the order they are added; brackets run side by side
    when workers are free (each bracket's rungs stay synchronous). More trials than the plan holds
    start a new round of the same brackets."""

    def __init__(self, brackets: list[Bracket], metric: str, mode: str, time_attr: str = FIDELITY_ATTR) -> None:
        super().__init__()
        self._metric, self._mode = metric, mode
        self.brackets = list(brackets)
        self.time_attr = time_attr
        self._runs: list[_BracketRun] = []
        self._run_of: dict[Trial, _BracketRun] = {}
        self._order: list[Trial] = []
        self.cap: Any = None  # a base.RunningCap (see Algorithm.tune_max_concurrent)

    @property
    def largest_budget(self) -> int:
        return max(b.budgets[-1] for b in self.brackets)

    # --- Tune interface -----------------------------------------------------------------------------
    def set_search_properties(self, metric: Optional[str], mode: Optional[str], **spec: Any) -> bool:
        self._metric = metric or self._metric
        self._mode = mode or self._mode
        return True

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        run = self._open_run()
        run.members.append(trial)
        self._run_of[trial] = run
        self._order.append(trial)

    def _open_run(self) -> _BracketRun:
        for run in self._runs:
            if run.rung == 0 and len(run.members) < run.bracket.sizes[0]:
                return run
        bracket = self.brackets[len(self._runs) % len(self.brackets)]
        self._runs.append(_BracketRun(bracket))
        return self._runs[-1]

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        run = self._run_of.get(trial)
        epoch = result.get(self.time_attr)
        if run is None or epoch is None or trial not in run.members:
            return TrialScheduler.CONTINUE
        run.to_resume.discard(trial)
        if epoch < run.budget:
            return self._within_rung(tune_controller, trial, result, run)
        run.results[trial] = finite(result.get(self._metric))
        if run.last_rung:
            return TrialScheduler.STOP
        if run.rung_complete():
            winners = self._promote(tune_controller, run, current=trial)
            return TrialScheduler.CONTINUE if trial in winners else TrialScheduler.STOP
        return TrialScheduler.PAUSE

    def _within_rung(self, tune_controller: Any, trial: Trial, result: dict, run: _BracketRun) -> str:
        return TrialScheduler.CONTINUE  # hook for hyperband_es

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: Optional[dict]) -> None:
        self._ended(tune_controller, trial, result)

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        self._ended(tune_controller, trial, None, failed=True)

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        self._ended(tune_controller, trial, None)

    def _ended(self, tune_controller: Any, trial: Trial, result: Optional[dict], failed: bool = False) -> None:
        """A trial that ends before its rung budget counts as done at this rung, never promotable
        when it failed (a failure is not a score)."""
        run = self._run_of.get(trial)
        if run is None or trial not in run.members or trial in run.results:
            return
        value = None if failed or not result else finite(result.get(self._metric))
        run.results[trial] = None if failed else value
        run.to_resume.discard(trial)
        if not run.last_rung and run.rung_complete():
            self._promote(tune_controller, run, current=None)

    def _promote(self, tune_controller: Any, run: _BracketRun, current: Optional[Trial]) -> list[Trial]:
        """Keep the top n_{i+1} of the finished rung (failures never), stop the others."""
        s = sign(self._mode)
        scored = [t for t in run.members if run.results.get(t) is not None]
        ranked = sorted(scored, key=lambda t: -s * run.results[t])  # stable: the earlier trial on ties
        winners = ranked[: run.bracket.sizes[run.rung + 1]]
        for t in run.members:
            if t in winners or t is current:
                continue
            if t.status == Trial.PAUSED:
                tune_controller.stop_trial(t)
        run.rung += 1
        run.members = list(winners)
        run.results = {}
        run.to_resume = {t for t in winners if t is not current}
        return winners

    def choose_trial_to_run(self, tune_controller: Any) -> Optional[Trial]:
        """Promoted trials first (they finish brackets), then new trials in the order added."""
        if self.cap is not None:
            self.cap.refresh(tune_controller.get_trials())
            if not self.cap.has_room():
                return None
        for run in self._runs:
            for t in run.members:
                if t in run.to_resume and t.status == Trial.PAUSED:
                    return t
        for t in self._order:
            if t.status == Trial.PENDING:
                return t
        return None

    def debug_string(self) -> str:
        return "SyncHyperBand: " + ", ".join(f"s={r.bracket.s} rung {r.rung} ({len(r.members)} trials)"
                                             for r in self._runs)


class LearningCurveHyperBand(SyncHyperBand):
    """`hyperband_es`: inside a rung, after `min_epochs` reports, fit a power law
    y(t) = a - b t^-c to the trial's curve; stop it when the fit explains the curve (R^2 >=
    `r2_threshold`) and its extrapolation to the largest budget is more than `margin` (5 %) worse
    than the best value seen at that budget. A stopped trial is not promoted."""

    def __init__(self, *args: Any, min_epochs: int = 3, r2_threshold: float = 0.1, margin: float = 0.05,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.min_epochs, self.r2_threshold, self.margin = min_epochs, r2_threshold, margin
        self._curves: dict[Trial, list[tuple[float, float]]] = {}
        self._best_final: Optional[float] = None  # signed
        self.early_stopped: list[str] = []

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        value, epoch = finite(result.get(self._metric)), result.get(self.time_attr)
        if value is not None and epoch is not None:
            self._curves.setdefault(trial, []).append((float(epoch), sign(self._mode) * value))
            if epoch >= self.largest_budget:
                self._best_final = max(self._best_final if self._best_final is not None else -math.inf,
                                       sign(self._mode) * value)
        return super().on_trial_result(tune_controller, trial, result)

    def _within_rung(self, tune_controller: Any, trial: Trial, result: dict, run: _BracketRun) -> str:
        curve = self._curves.get(trial, [])
        if self._best_final is None or len(curve) < self.min_epochs:
            return TrialScheduler.CONTINUE
        fit = power_law_fit(np.array(curve))
        if fit is None:
            return TrialScheduler.CONTINUE
        predict, r2 = fit
        predicted = predict(float(self.largest_budget))
        if r2 >= self.r2_threshold and predicted < self._best_final - self.margin * abs(self._best_final):
            run.results[trial] = None  # counted as done at this rung, never promoted
            self.early_stopped.append(trial.trial_id)
            if not run.last_rung and run.rung_complete():
                self._promote(tune_controller, run, current=trial)
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE


def power_law_fit(curve: np.ndarray):
    """Least-squares y = a - b t^-c over a grid of c: (predict(t), R^2) of the best fit, or None."""
    t, y = curve[:, 0], curve[:, 1]
    if len(t) < 3 or np.ptp(t) == 0:
        return None
    total = float(((y - y.mean()) ** 2).sum())
    best = None
    for c in (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0):
        design = np.column_stack([np.ones_like(t), -(t ** -c)])
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        residual = float(((design @ coef - y) ** 2).sum())
        r2 = 1.0 - residual / total if total > 0 else 1.0
        if best is None or r2 > best[2]:
            best = (coef, c, r2)
    coef, c, r2 = best  # type: ignore[misc]
    return (lambda at: float(coef[0] - coef[1] * at ** -c)), r2


class SeededPBT(PopulationBasedTraining):
    """TAO's `pbt` on Ray's PBT: every `perturbation_interval` epochs the bottom quantile copies the
    weights (checkpoint) and config of a random top-quantile member, then explores with
    `SearchSpace.perturb` (x/÷ factor, or resample with probability 0.2).

    Two changes to Ray's class: its random draws come from our own seeded stream (Ray's uses the
    global `random` module, which would make sweeps irreproducible), and it accepts our searcher,
    which only supplies the initial population deterministically (Ray refuses any searcher)."""

    def __init__(self, space: SearchSpace, seed: int, *, metric: str, mode: str, perturbation_interval: int,
                 perturbation_factor: float = 1.2, resample_probability: float = 0.2,
                 quantile_fraction: float = 0.2, time_attr: str = FIDELITY_ATTR) -> None:
        self.space, self.seed, self.factor = space, int(seed), float(perturbation_factor)
        self.resample = float(resample_probability)
        self._explorations = 0
        self._random_state = random.Random(int(seed)).getstate()
        super().__init__(time_attr=time_attr, metric=metric, mode=mode, perturbation_interval=perturbation_interval,
                         quantile_fraction=quantile_fraction, resample_probability=resample_probability,
                         custom_explore_fn=self._explore, log_config=False, require_attrs=True)

    def _explore(self, config: dict) -> dict:
        rng = trial_rng(self.seed, 1_000_000 + self._explorations)  # a stream apart from trial sampling
        self._explorations += 1
        private = {k: v for k, v in config.items() if k not in self.space}
        explored = self.space.perturb({k: v for k, v in config.items() if k in self.space}, rng,
                                      factor=self.factor, resample_prob=self.resample)
        return {**private, **explored}

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        super().on_trial_add(_WithoutSearcher(tune_controller), trial)

    cap: Any = None  # a base.RunningCap (see Algorithm.tune_max_concurrent)

    def choose_trial_to_run(self, tune_controller: Any) -> Optional[Trial]:
        if self.cap is not None:
            self.cap.refresh(tune_controller.get_trials())
            if not self.cap.has_room():
                return None
        return super().choose_trial_to_run(tune_controller)

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        outside = random.getstate()
        random.setstate(self._random_state)
        try:
            return super().on_trial_result(tune_controller, trial, result)
        finally:
            self._random_state = random.getstate()
            random.setstate(outside)


class _WithoutSearcher:
    """A view of the Tune controller that hides its searcher from Ray's PBT check."""

    search_alg = None

    def __init__(self, controller: Any) -> None:
        self._controller = controller

    def __getattr__(self, name: str) -> Any:
        return getattr(self._controller, name)
