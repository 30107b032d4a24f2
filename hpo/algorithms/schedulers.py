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

from gdino.errors import SweepError
from hpo.algorithms.scoring import finite, is_baseline, sign
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
    """One bracket in progress. Trials are named by their ids (stable across Tuner.restore)."""

    bracket: Bracket
    members: list[str] = field(default_factory=list)  # ids of the trials of the current rung
    rung: int = 0
    results: dict[str, Optional[float]] = field(default_factory=dict)  # id -> value at the rung (None: failed)
    to_resume: set[str] = field(default_factory=set)  # paused winners waiting for a worker

    @property
    def budget(self) -> int:
        return self.bracket.budgets[self.rung]

    @property
    def last_rung(self) -> bool:
        return self.rung == len(self.bracket.sizes) - 1

    def rung_complete(self) -> bool:
        return len(self.members) == self.bracket.sizes[self.rung] and all(t in self.results for t in self.members) \
            if self.rung == 0 else all(t in self.results for t in self.members)

    def waiting(self, trial_id: str) -> bool:
        """Paused at this rung: reported its rung result, or a winner not yet resumed."""
        return trial_id in self.to_resume or (trial_id in self.members and trial_id in self.results)


class SyncHyperBand(FIFOScheduler):
    """TAO's synchronous Hyperband on Tune's pause/resume (see the module docstring).

    Trials are assigned to bracket slots in the order they are added; brackets run side by side
    when workers are free (each bracket's rungs stay synchronous). More trials than the plan holds
    start a new round of the same brackets.

    Resume: Tune restores the searcher but builds the scheduler afresh and re-adds every trial through
    `on_trial_add`. `sweep_state()` is saved with the searcher (SpaceSearcher.get_state) and
    `restore_sweep_state()` puts it back before the trials are re-added; each re-added trial then takes
    its old place, and one that was waiting at a rung is paused again instead of running on."""

    def __init__(self, brackets: list[Bracket], metric: str, mode: str, time_attr: str = FIDELITY_ATTR) -> None:
        super().__init__()
        self._metric, self._mode = metric, mode
        self.brackets = list(brackets)
        self.time_attr = time_attr
        self._runs: list[_BracketRun] = []
        self._run_of: dict[str, _BracketRun] = {}
        self._order: list[str] = []
        self._trials: dict[str, Trial] = {}   # id -> the Trial object Tune holds now
        self._to_stop: set[str] = set()        # restored losers Tune still lists as unfinished
        self.cap: Any = None  # a base.RunningCap (see Algorithm.tune_max_concurrent)

    @property
    def largest_budget(self) -> int:
        return max(b.budgets[-1] for b in self.brackets)

    # --- save / restore with the searcher -------------------------------------------------------------
    def sweep_state(self) -> dict[str, Any]:
        return {"runs": [{"bracket": r.bracket, "members": list(r.members), "rung": r.rung,
                          "results": dict(r.results), "to_resume": sorted(r.to_resume)} for r in self._runs],
                "order": list(self._order)}

    def restore_sweep_state(self, state: dict[str, Any]) -> None:
        self._runs = [_BracketRun(r["bracket"], list(r["members"]), int(r["rung"]), dict(r["results"]),
                                  set(r["to_resume"])) for r in state["runs"]]
        self._order = list(state["order"])
        self._run_of = {}
        for run in self._runs:  # every trial ever added, including those dropped at an earlier rung
            for tid in run.members:
                self._run_of[tid] = run
        for tid in self._order:
            self._run_of.setdefault(tid, _DROPPED)

    # --- Tune interface -----------------------------------------------------------------------------
    def set_search_properties(self, metric: Optional[str], mode: Optional[str], **spec: Any) -> bool:
        self._metric = metric or self._metric
        self._mode = mode or self._mode
        return True

    # the baseline trial (the spec as written) runs outside the brackets, to the largest budget: an extra
    # trial that no rung can stop, so the sweep's result is never worse than the user's configuration
    baseline_outside_rungs = True
    _outside: list[str]  # the baseline's trial id; set on first use, so older saved states load without it

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        tid = trial.trial_id
        self._trials[tid] = trial
        if is_baseline(getattr(trial, "config", None)):  # never in a bracket, nor in the saved state
            self.__dict__.setdefault("_outside", [])
            if tid not in self._outside:
                self._outside.append(tid)
            return
        if tid in self._run_of:  # re-added by Tuner.restore
            self._reattach(trial)
            return
        run = self._open_run()
        run.members.append(tid)
        self._run_of[tid] = run
        self._order.append(tid)

    def _reattach(self, trial: Trial) -> None:
        """A restored trial takes its saved place. Tune re-queues every unfinished trial as PENDING
        (and starts every PENDING trial): one waiting at a rung goes back to PAUSED, and one that lost
        its rung before the driver died is stopped at the next scheduling step."""
        if trial.status not in (Trial.PENDING, Trial.PAUSED):
            return  # finished trials stay finished
        tid, run = trial.trial_id, self._run_of[trial.trial_id]
        lost = run is _DROPPED or (tid not in run.members and tid not in run.to_resume)
        if lost or (run.last_rung and tid in run.results):
            trial.set_status(Trial.PAUSED)
            self._to_stop.add(tid)
        elif run.waiting(tid):
            trial.set_status(Trial.PAUSED)
        # else: it was running inside the rung: Tune restarts it from its latest checkpoint

    def _open_run(self) -> _BracketRun:
        for run in self._runs:
            if run.rung == 0 and len(run.members) < run.bracket.sizes[0]:
                return run
        bracket = self.brackets[len(self._runs) % len(self.brackets)]
        self._runs.append(_BracketRun(bracket))
        return self._runs[-1]

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        tid = trial.trial_id
        run = self._run_of.get(tid)
        epoch = result.get(self.time_attr)
        if run is None or epoch is None or tid not in run.members:
            return TrialScheduler.CONTINUE
        run.to_resume.discard(tid)
        if epoch < run.budget:
            return self._within_rung(tune_controller, trial, result, run)
        run.results[tid] = finite(result.get(self._metric))
        if run.last_rung:
            return TrialScheduler.STOP
        if run.rung_complete():
            winners = self._promote(tune_controller, run, current=tid)
            return TrialScheduler.CONTINUE if tid in winners else TrialScheduler.STOP
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
        tid = trial.trial_id
        self._to_stop.discard(tid)
        run = self._run_of.get(tid)
        if run is None or tid not in run.members or tid in run.results:
            return
        value = None if failed or not result else finite(result.get(self._metric))
        run.results[tid] = None if failed else value
        run.to_resume.discard(tid)
        if not run.last_rung and run.rung_complete():
            self._promote(tune_controller, run, current=None)

    def _promote(self, tune_controller: Any, run: _BracketRun, current: Optional[str]) -> list[str]:
        """Keep the top n_{i+1} of the finished rung (failures never), stop the others."""
        s = sign(self._mode)
        scored = {t: score for t in run.members if (score := run.results.get(t)) is not None}
        ranked = sorted(scored, key=lambda t: -s * scored[t])  # stable: the earlier trial on ties
        winners = ranked[: run.bracket.sizes[run.rung + 1]]
        for tid in run.members:
            if tid in winners or tid == current:
                continue
            trial = self._trials.get(tid)
            if trial is not None and trial.status == Trial.PAUSED:
                tune_controller.stop_trial(trial)
        run.rung += 1
        run.members = list(winners)
        run.results = {}
        run.to_resume = {t for t in winners if t != current}
        return winners

    def choose_trial_to_run(self, tune_controller: Any) -> Optional[Trial]:
        """Promoted trials first (they finish brackets), then new trials in the order added."""
        for tid in sorted(self._to_stop):  # restored losers: recorded as stopped, never run again
            trial = self._trials.get(tid)
            self._to_stop.discard(tid)
            if trial is not None and trial.status == Trial.PAUSED:
                tune_controller.stop_trial(trial)
        if self.cap is not None:
            self.cap.refresh(tune_controller.get_trials())
            if not self.cap.has_room():
                return None
        for run in self._runs:
            for tid in run.members:
                trial = self._trials.get(tid)
                if tid in run.to_resume and trial is not None and trial.status == Trial.PAUSED:
                    return trial
        for tid in [*getattr(self, "_outside", ()), *self._order]:  # the baseline first
            trial = self._trials.get(tid)
            if trial is not None and trial.status == Trial.PENDING:
                return trial
        return None

    def debug_string(self) -> str:
        return "SyncHyperBand: " + ", ".join(f"s={r.bracket.s} rung {r.rung} ({len(r.members)} trials)"
                                             for r in self._runs)


# a trial that left its bracket at an earlier rung (restore bookkeeping)
_DROPPED = _BracketRun(Bracket(-1, (0,), (0,)))


class LearningCurveHyperBand(SyncHyperBand):
    """`hyperband_es`: inside a rung, after `min_epochs` reports, fit a power law
    y(t) = a - b t^-c to the trial's curve; stop it when the fit explains the curve (R^2 >=
    `r2_threshold`) and its extrapolation to the largest budget is more than `margin` (5 %) worse
    than the best value seen at that budget. A stopped trial is not promoted."""

    def __init__(self, *args: Any, min_epochs: int = 3, r2_threshold: float = 0.1, margin: float = 0.05,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.min_epochs, self.r2_threshold, self.margin = min_epochs, r2_threshold, margin
        self._curves: dict[str, list[tuple[float, float]]] = {}
        self._best_final: Optional[float] = None  # signed
        self.early_stopped: list[str] = []

    def sweep_state(self) -> dict[str, Any]:
        return {**super().sweep_state(), "curves": {k: list(v) for k, v in self._curves.items()},
                "best_final": self._best_final, "early_stopped": list(self.early_stopped)}

    def restore_sweep_state(self, state: dict[str, Any]) -> None:
        super().restore_sweep_state(state)
        self._curves = {k: list(v) for k, v in state.get("curves", {}).items()}
        self._best_final = state.get("best_final")
        self.early_stopped = list(state.get("early_stopped", []))

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        value, epoch = finite(result.get(self._metric)), result.get(self.time_attr)
        if value is not None and epoch is not None:
            self._curves.setdefault(trial.trial_id, []).append((float(epoch), sign(self._mode) * value))
            if epoch >= self.largest_budget:
                self._best_final = max(self._best_final if self._best_final is not None else -math.inf,
                                       sign(self._mode) * value)
        return super().on_trial_result(tune_controller, trial, result)

    def _within_rung(self, tune_controller: Any, trial: Trial, result: dict, run: _BracketRun) -> str:
        curve = self._curves.get(trial.trial_id, [])
        if self._best_final is None or len(curve) < self.min_epochs:
            return TrialScheduler.CONTINUE
        fit = power_law_fit(np.array(curve))
        if fit is None:
            return TrialScheduler.CONTINUE
        predict, r2 = fit
        predicted = predict(float(self.largest_budget))
        if r2 >= self.r2_threshold and predicted < self._best_final - self.margin * abs(self._best_final):
            run.results[trial.trial_id] = None  # counted as done at this rung, never promoted
            self.early_stopped.append(trial.trial_id)
            if not run.last_rung and run.rung_complete():
                self._promote(tune_controller, run, current=trial.trial_id)
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

    Changes to Ray's class:
    - its random draws come from our own seeded stream (Ray's uses the global `random` module, which
      would make sweeps irreproducible);
    - it accepts our searcher, which only supplies the initial population deterministically (Ray
      refuses any searcher);
    - the population grows before it advances: while fewer than `population_size` members exist (the
      running cap admits them one by one), a member pauses at each perturbation epoch and no paused
      member resumes, so the next member gets the slot. Ray's own rule (pause while another member
      waits) then keeps the members within one interval of each other. Without this, a member admitted
      late would find the first ones finished and could only clone their final weights;
    - a member's final epoch (`max_t`) is no perturbation: it neither exploits (its budget is spent)
      nor offers its final checkpoint. Ray skips finished members as donors, but a member whose final
      result is in stays RUNNING until its trainable returns; a member cloning it then would get the
      whole budget's weights, train no epoch of its own, and keep a score that is not its weights'."""

    def __init__(self, space: SearchSpace, seed: int, *, metric: str, mode: str, perturbation_interval: int,
                 perturbation_factor: float = 1.2, resample_probability: float = 0.2,
                 quantile_fraction: float = 0.2, time_attr: str = FIDELITY_ATTR,
                 population_size: Optional[int] = None, max_t: Optional[int] = None) -> None:
        self.population_size, self.max_t = population_size, max_t
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
        super().on_trial_add(_WithoutSearcher(tune_controller), trial)  # type: ignore[arg-type]  # a proxy
        saved = getattr(self, "_restored_members", {}).pop(trial.trial_id, None)
        if saved is not None:  # re-added by Tuner.restore: its scores, checkpoint and clock come back
            state = self._trial_state[trial]
            for key, value in saved.items():
                setattr(state, key, value)
            if state.last_checkpoint is None and saved.get("had_checkpoint"):
                state.last_checkpoint = trial.checkpoint  # a save in flight at the snapshot: the latest one

    cap: Any = None  # a base.RunningCap (see Algorithm.tune_max_concurrent)
    segments: Optional[list] = None  # one entry per exploit: who copied whom at which epoch, the new config

    # --- save / restore with the searcher (Tune rebuilds schedulers afresh on restore) ------------------
    def sweep_state(self) -> dict[str, Any]:
        members = {}
        for trial, state in self._trial_state.items():
            checkpoint = state.last_checkpoint
            keep = checkpoint if checkpoint is None or _is_plain_checkpoint(checkpoint) else None
            members[trial.trial_id] = {
                "last_score": state.last_score, "last_checkpoint": keep,
                "had_checkpoint": checkpoint is not None,
                "last_perturbation_time": state.last_perturbation_time,
                "last_train_time": state.last_train_time,
                "last_result": _plain_result(state.last_result)}
        return {"members": members, "random_state": self._random_state, "explorations": self._explorations,
                "num_perturbations": self._num_perturbations, "num_checkpoints": self._num_checkpoints,
                "next_perturbation_sync": self._next_perturbation_sync, "segments": list(self.segments or [])}

    def restore_sweep_state(self, state: dict[str, Any]) -> None:
        self._restored_members = dict(state["members"])
        self._random_state = state["random_state"]
        self._explorations = int(state["explorations"])
        self._num_perturbations = int(state["num_perturbations"])
        self._num_checkpoints = int(state["num_checkpoints"])
        self._next_perturbation_sync = state["next_perturbation_sync"]
        self.segments = list(state.get("segments", []))

    def _exploit(self, tune_controller: Any, trial: Trial, trial_to_clone: Trial) -> None:
        super()._exploit(tune_controller, trial, trial_to_clone)
        self.segments = list(self.segments or [])
        self.segments.append({"trial_id": trial.trial_id, "donor": trial_to_clone.trial_id,
                              "epoch": self._trial_state[trial_to_clone].last_perturbation_time,
                              "config": {k: v for k, v in trial.config.items() if not k.startswith("__")}})

    def choose_trial_to_run(self, tune_controller: Any) -> Optional[Trial]:
        if self.cap is not None:
            self.cap.refresh(tune_controller.get_trials())
            if not self.cap.has_room():
                return None
        if self._growing(tune_controller):  # a new member first; paused ones wait for the population
            return next((t for t in tune_controller.get_trials() if t.status == Trial.PENDING), None)
        return super().choose_trial_to_run(tune_controller)

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        epoch = result.get(self._time_attr)
        if self.max_t is not None and epoch is not None and epoch >= self.max_t:
            return TrialScheduler.CONTINUE  # the final epoch: no exploit, no donor (class docstring)
        outside = random.getstate()
        random.setstate(self._random_state)
        try:
            decision = super().on_trial_result(tune_controller, trial, result)
        finally:
            self._random_state = random.getstate()
            random.setstate(outside)
        perturbed_now = self._trial_state[trial].last_perturbation_time == epoch
        if decision == TrialScheduler.CONTINUE and perturbed_now and self._growing(tune_controller):
            return TrialScheduler.PAUSE  # frees the slot for the next member
        return decision

    def _growing(self, tune_controller: Any) -> bool:
        """Members of the population are still to be admitted."""
        return self.population_size is not None and len(tune_controller.get_trials()) < self.population_size


def _is_plain_checkpoint(checkpoint: Any) -> bool:
    from ray.tune import Checkpoint

    return isinstance(checkpoint, Checkpoint)  # not a _FutureTrainingResult (an ObjectRef in flight)


def _plain_result(result: Optional[dict]) -> Optional[dict]:
    if result is None:
        return None
    return {k: v for k, v in result.items() if isinstance(v, (int, float, str, bool)) or v is None}


def scheduler_state(scheduler: Any) -> Optional[dict[str, Any]]:
    """What a scheduler must get back after Tuner.restore (keyed by trial ids), or None when it keeps
    nothing across trials (FIFO). Saved with the searcher's state (SpaceSearcher.get_state)."""
    hook = getattr(scheduler, "sweep_state", None)
    if callable(hook):
        return {"class": type(scheduler).__name__, "state": hook()}
    from ray.tune.schedulers import AsyncHyperBandScheduler

    if isinstance(scheduler, AsyncHyperBandScheduler):  # its rungs are keyed by trial id already
        return {"class": type(scheduler).__name__,
                "state": {"brackets": scheduler._brackets, "num_stopped": scheduler._num_stopped,
                          "counter": scheduler._counter}}
    return None


def restore_scheduler_state(scheduler: Any, saved: Optional[dict[str, Any]]) -> None:
    """Put `scheduler_state`'s output back, before Tune re-adds the restored trials."""
    if not saved or scheduler is None:
        return
    if saved["class"] != type(scheduler).__name__:
        raise SweepError(f"the saved scheduler state is a {saved['class']}, the sweep's scheduler a "
                         f"{type(scheduler).__name__}", hint="resume the sweep with the code that started it")
    hook = getattr(scheduler, "restore_sweep_state", None)
    if callable(hook):
        hook(saved["state"])
        return
    state = saved["state"]
    scheduler._brackets = state["brackets"]
    scheduler._num_stopped = state["num_stopped"]
    scheduler._counter = state["counter"]


class _WithoutSearcher:
    """A view of the Tune controller that hides its searcher from Ray's PBT check."""

    search_alg = None

    def __init__(self, controller: Any) -> None:
        self._controller = controller

    def __getattr__(self, name: str) -> Any:
        return getattr(self._controller, name)
