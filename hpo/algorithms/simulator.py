"""A simulated-time backend: the sweep's own searcher and scheduler objects, no Ray runtime.

The simulator plays Tune's controller the way Ray's scheduler tests do (stub `Trial`s, direct
`on_trial_add / on_trial_result / choose_trial_to_run / on_trial_complete` calls) against an objective
`evaluate(config, epoch) -> metrics` with a per-epoch cost, on `workers` parallel workers. A trial
that resumes (Hyperband promotion) or exploits (PBT) continues from its checkpoint's epoch and pays
only for new epochs. Everything is deterministic: events at equal times are ordered by trial order.

    sim = Simulator(algorithm, objective, workers=4)
    run = sim.run(max_time=None)
    run.trace          # [(simulated time, best score so far by the best-trial rule)]
    run.trials         # per trial: config, history [(epoch, value)], state, epochs paid
    run.best           # scoring.TrialSummary of the best trial
"""
from __future__ import annotations

import heapq
import math
import pickle
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol

from ray.train._internal.session import _TrainingResult
from ray.tune import Checkpoint
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher

from hpo.algorithms.base import FIDELITY_ATTR, Algorithm
from hpo.algorithms.scoring import TrialSummary, best_trial, finite, sign

_CHECKPOINT_ROOT = "/simulated-checkpoints"


class Objective(Protocol):
    """What a simulated trial trains: metrics at `epoch`, and that epoch's cost in seconds."""

    def evaluate(self, config: dict, epoch: int) -> dict: ...

    def epoch_cost(self, config: dict, epoch: int) -> float: ...


@dataclass
class FunctionObjective:
    """An Objective from a function f(config, epoch) -> metrics (raise to fail the trial) and a
    constant or per-config epoch cost."""

    fn: Callable[[dict, int], dict]
    cost: Callable[[dict, int], float] | float = 1.0

    def evaluate(self, config: dict, epoch: int) -> dict:
        return self.fn(config, epoch)

    def epoch_cost(self, config: dict, epoch: int) -> float:
        return float(self.cost(config, epoch)) if callable(self.cost) else float(self.cost)


@dataclass
class SimTrial:
    trial_id: str
    config: dict
    history: list[tuple[int, float]] = field(default_factory=list)
    state: str = "PENDING"
    epoch: int = 0             # epochs the trial's current weights have seen
    epochs_paid: int = 0       # epochs this trial trained (what it cost)
    starts: int = 0
    error: Optional[str] = None
    score: Optional[float] = None  # best epoch so far (scoring.trial_score, kept up to date)

    def summary(self, mode: str) -> TrialSummary:
        return TrialSummary(self.trial_id, self.score, self.epoch,
                            finished=self.state in ("TERMINATED", "ERROR"), failed=self.state == "ERROR")


@dataclass
class SimRun:
    trials: dict[str, SimTrial]
    trace: list[tuple[float, float]]     # (time, best score so far), one point per change
    time: float                          # simulated time at the end
    epochs: int                          # epochs trained in total
    best: Optional[TrialSummary]
    stop_reason: str

    def best_at(self, t: float) -> Optional[float]:
        value = None
        for when, best in self.trace:
            if when > t:
                break
            value = best
        return value

    def time_to(self, target: float, mode: str) -> Optional[float]:
        """First simulated time the best score reaches `target` (None: never)."""
        s = sign(mode)
        for when, best in self.trace:
            if s * best >= s * target:
                return when
        return None


class _Controller:
    """The part of Tune's controller that schedulers call, over stub trials."""

    def __init__(self, sim: "Simulator") -> None:
        self._sim = sim
        self.search_alg = None

    def get_trials(self) -> list[Trial]:
        return list(self._sim._trials)

    def get_live_trials(self) -> list[Trial]:
        return [t for t in self._sim._trials if not t.is_finished()]

    def stop_trial(self, trial: Trial) -> None:
        self._sim._stop(trial, via_controller=True)

    def pause_trial(self, trial: Trial, should_checkpoint: bool = True) -> None:
        self._sim._pause(trial, checkpoint=should_checkpoint)

    def _schedule_trial_save(self, trial: Trial, result: Optional[dict] = None) -> Checkpoint:
        return self._sim._checkpoint(trial)


class Simulator:
    """Drive `algorithm` (its searcher and scheduler) against `objective` in simulated time.

    `max_time`: stop when simulated time passes it; `target`: stop once the best score reaches it;
    `max_trials`: override the algorithm's num_samples; `max_epochs`: each trial's epochs (default
    the algorithm's trial_epochs); `launch_cost`: simulated seconds every start and every resume pays
    before its first epoch (a real trial launch: Ray actor, Train workers, checkpoint load)."""

    def __init__(self, algorithm: Algorithm, objective: Objective, workers: int = 1, *,
                 max_time: Optional[float] = None, target: Optional[float] = None, max_trials: Optional[int] = None,
                 max_epochs: Optional[int] = None, searcher: Any = None, scheduler: Any = None,
                 launch_cost: float = 0.0) -> None:
        self.algorithm = algorithm
        self.launch_cost = float(launch_cost)
        self.objective = objective
        self.workers = int(workers)
        self.max_time = max_time
        self.target = target
        self._incumbent: Optional[TrialSummary] = None
        self.num_samples = int(max_trials or algorithm.num_samples)
        self.max_epochs = int(max_epochs or algorithm.trial_epochs)
        self.metric, self.mode = algorithm.metric, algorithm.mode
        self.searcher = searcher if searcher is not None else algorithm.searcher
        self.scheduler = scheduler if scheduler is not None else algorithm.scheduler
        for part in (self.searcher, self.scheduler):
            if part is not None and hasattr(part, "set_search_properties"):
                part.set_search_properties(self.metric, self.mode, {}) if isinstance(part, Searcher) \
                    else part.set_search_properties(self.metric, self.mode)
        self.controller = _Controller(self)
        self._trials: list[Trial] = []
        self._sim: dict[str, SimTrial] = {}
        self._events: list[tuple[float, int, str]] = []   # (finish time, trial order, trial id)
        self._running: set[str] = set()
        self._checkpoints: dict[str, int] = {}             # checkpoint path -> epoch of the weights
        self._now = 0.0
        self._exhausted = False
        self._trace: list[tuple[float, float]] = []
        self._epochs = 0

    # --- the loop -------------------------------------------------------------------------------------
    def run(self, kill_when: Optional[Callable[["Simulator"], bool]] = None) -> SimRun:
        """Run to the end, or (`kill_when`) stop like a killed driver once every event of the current
        simulated time is processed and `kill_when(self)` holds; `snapshot()` then gives what Tune
        would have saved, and `Simulator.restored(...)` continues from it."""
        reason = "trials"
        while True:
            self._fill_workers()
            if not self._events:
                break
            finish, _, trial_id = heapq.heappop(self._events)
            if self.max_time is not None and finish > self.max_time:
                self._now = self.max_time
                reason = "time"
                break
            self._now = finish
            self._epoch_done(self._by_id(trial_id))
            if self._reached_target():
                reason = "target"
                break
            step_done = not self._events or self._events[0][0] > self._now
            if kill_when is not None and step_done and kill_when(self):
                reason = "killed"
                break
        return SimRun(trials=dict(self._sim), trace=list(self._trace), time=self._now, epochs=self._epochs,
                      best=self._best(), stop_reason=reason)

    def _fill_workers(self) -> None:
        while len(self._running) < self.workers:
            trial = self.scheduler.choose_trial_to_run(self.controller)
            if trial is None:
                if not self._add_trial():
                    return
                continue
            self._start(trial)

    def _add_trial(self) -> bool:
        """Ask the searcher for the next trial; False when it has none now or ever."""
        if self._exhausted or len(self._trials) >= self.num_samples:
            return False
        trial_id = f"{len(self._trials):05d}"
        config = self.searcher.suggest(trial_id) if self.searcher is not None else \
            self.algorithm.trial_config(len(self._trials))
        if config is None:
            return False  # the searcher waits for results (sequential BO, batch boundaries)
        if config == Searcher.FINISHED:
            self._exhausted = True
            return False
        trial = Trial("__simulated", trial_id=trial_id, stub=True, config=dict(config))
        self._trials.append(trial)
        self._sim[trial_id] = SimTrial(trial_id, dict(config))
        self.scheduler.on_trial_add(self.controller, trial)
        return True

    def _start(self, trial: Trial) -> None:
        sim = self._sim[trial.trial_id]
        checkpoint = trial.checkpoint
        sim.epoch = self._checkpoints.get(checkpoint.path, 0) if checkpoint is not None else 0
        sim.config = dict(trial.config)  # PBT may have changed it while the trial was paused
        sim.starts += 1
        sim.state = "RUNNING"
        trial.set_status(Trial.RUNNING)
        self._running.add(trial.trial_id)
        self._schedule_epoch(trial, launch=self.launch_cost)  # a start or resume pays its launch once

    def _schedule_epoch(self, trial: Trial, launch: float = 0.0) -> None:
        sim = self._sim[trial.trial_id]
        cost = max(self.objective.epoch_cost(sim.config, sim.epoch + 1), 0.0)
        cost += launch
        heapq.heappush(self._events, (self._now + cost, int(trial.trial_id), trial.trial_id))

    def _epoch_done(self, trial: Trial) -> None:
        sim = self._sim[trial.trial_id]
        sim.epoch += 1
        sim.epochs_paid += 1
        self._epochs += 1
        try:
            metrics = dict(self.objective.evaluate(sim.config, sim.epoch))
        except Exception as err:  # the trial fails; the searcher and scheduler are told so
            self._fail(trial, f"{type(err).__name__}: {err}")
            return
        result = {**metrics, FIDELITY_ATTR: sim.epoch, "training_iteration": sim.epoch,
                  "time_total_s": self._now, "trial_id": trial.trial_id, "config": dict(sim.config)}
        value = finite(metrics.get(self.metric))
        if value is not None:
            sim.history.append((sim.epoch, value))
            if sim.score is None or sign(self.mode) * value > sign(self.mode) * sim.score:
                sim.score = value
        decision = self.scheduler.on_trial_result(self.controller, trial, result)
        if self.searcher is not None:
            self.searcher.on_trial_result(trial.trial_id, result)
        trial.run_metadata.last_result = result  # what Tune's update_last_result stores, minus its analysis
        if trial.status != Trial.RUNNING:  # the scheduler paused or stopped it itself (PBT exploit)
            return
        if sim.epoch >= self.max_epochs or decision == TrialScheduler.STOP:
            self._complete(trial, result)
        elif decision == TrialScheduler.PAUSE:
            self._pause(trial, checkpoint=True)
        else:
            self._schedule_epoch(trial)

    # --- kill and restore (what Tuner.restore does, over stub trials) ---------------------------------
    def status_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for trial in self._trials:
            counts[trial.status] = counts.get(trial.status, 0) + 1
        return counts

    def snapshot(self) -> bytes:
        """What a killed driver leaves behind: Tune's trial table (status, config, latest checkpoint:
        every report of our trial driver carries one) and the searcher's saved state (which holds the
        scheduler's, SpaceSearcher.get_state). Epochs in flight are lost."""
        trials = []
        for trial in self._trials:
            if trial.status == Trial.RUNNING:  # the last report's checkpoint
                self._pause_checkpoint(trial)
            checkpoint = trial.checkpoint
            trials.append({"trial_id": trial.trial_id, "config": dict(trial.config), "status": trial.status,
                           "checkpoint": checkpoint.path if checkpoint is not None else None,
                           "last_result": dict(trial.last_result or {})})
        searcher_state = self.searcher.get_state() if self.searcher is not None else None
        return pickle.dumps({"trials": trials, "searcher": searcher_state, "sim": self._sim,
                             "checkpoints": self._checkpoints, "now": self._now, "epochs": self._epochs,
                             "trace": self._trace, "incumbent": self._incumbent, "exhausted": self._exhausted,
                             "running": sorted(self._running)})

    @classmethod
    def restored(cls, algorithm: Algorithm, objective: Objective, snapshot: bytes, workers: int = 1,
                 **kwargs: Any) -> "Simulator":
        """A new driver on a fresh `algorithm` (built like the dead one) resuming `snapshot` as
        Tuner.restore does: the searcher (and with it the scheduler) gets its saved state; finished
        trials stay finished, every other one is re-queued PENDING with its checkpoint and re-added
        through `on_trial_add` (newest result first, Tune's order); the trials that were running are
        restarted first, on the workers they held."""
        saved = pickle.loads(snapshot)
        sim = cls(algorithm, objective, workers, **kwargs)
        if saved["searcher"] is not None:
            sim.searcher.set_state(saved["searcher"])
        sim._sim, sim._checkpoints = saved["sim"], saved["checkpoints"]
        sim._now, sim._epochs, sim._trace = saved["now"], saved["epochs"], saved["trace"]
        sim._incumbent, sim._exhausted = saved["incumbent"], saved["exhausted"]
        for row in saved["trials"]:
            trial = Trial("__simulated", trial_id=row["trial_id"], stub=True, config=dict(row["config"]))
            finished = row["status"] in (Trial.TERMINATED, Trial.ERROR)
            trial.set_status(row["status"] if finished else Trial.PENDING)
            trial.run_metadata.last_result = row["last_result"]
            if row["checkpoint"]:
                trial.run_metadata.checkpoint_manager._latest_checkpoint_result = _TrainingResult(  # type: ignore[union-attr]  # Trial() always makes one
                    checkpoint=Checkpoint(row["checkpoint"]), metrics=dict(row["last_result"]))
            sim._trials.append(trial)
        for trial in sorted(sim._trials, key=lambda t: t.last_result.get("time_total_s", -1), reverse=True):
            sim.scheduler.on_trial_add(sim.controller, trial)
        for trial_id in saved["running"]:
            trial = sim._by_id(trial_id)
            if trial.status == Trial.PENDING and len(sim._running) < sim.workers:
                sim._start(trial)
        return sim

    def _pause_checkpoint(self, trial: Trial) -> None:
        trial.run_metadata.checkpoint_manager._latest_checkpoint_result = _TrainingResult(  # type: ignore[union-attr]  # Trial() always makes one
            checkpoint=self._checkpoint(trial), metrics=dict(trial.last_result or {}))

    # --- state changes --------------------------------------------------------------------------------
    def _checkpoint(self, trial: Trial) -> Checkpoint:
        sim = self._sim[trial.trial_id]
        path = f"{_CHECKPOINT_ROOT}/{trial.trial_id}/epoch_{sim.epoch:04d}"
        self._checkpoints[path] = sim.epoch
        return Checkpoint(path)

    def _release(self, trial: Trial) -> None:
        if trial.trial_id in self._running:
            self._running.discard(trial.trial_id)
            self._events = [e for e in self._events if e[2] != trial.trial_id]
            heapq.heapify(self._events)

    def _pause(self, trial: Trial, checkpoint: bool) -> None:
        self._release(trial)
        if checkpoint:
            trial.run_metadata.checkpoint_manager._latest_checkpoint_result = _TrainingResult(  # type: ignore[union-attr]  # Trial() always makes one
                checkpoint=self._checkpoint(trial), metrics=dict(trial.last_result or {}))
        trial.set_status(Trial.PAUSED)
        self._sim[trial.trial_id].state = "PAUSED"

    def _complete(self, trial: Trial, result: Optional[dict]) -> None:
        self._release(trial)
        trial.set_status(Trial.TERMINATED)
        self._sim[trial.trial_id].state = "TERMINATED"
        self.scheduler.on_trial_complete(self.controller, trial, result)
        if self.searcher is not None:
            self.searcher.on_trial_complete(trial.trial_id, result=result)
        self._record_best(trial)

    def _stop(self, trial: Trial, via_controller: bool) -> None:
        """Tune's stop_trial: a paused or pending trial is removed, a running one completes."""
        if trial.status in (Trial.TERMINATED, Trial.ERROR):
            return
        if trial.status == Trial.RUNNING:
            self._complete(trial, trial.last_result)
            return
        trial.set_status(Trial.TERMINATED)
        self._sim[trial.trial_id].state = "TERMINATED"
        self.scheduler.on_trial_remove(self.controller, trial)
        if self.searcher is not None:
            self.searcher.on_trial_complete(trial.trial_id)
        self._record_best(trial)

    def _fail(self, trial: Trial, message: str) -> None:
        self._release(trial)
        trial.set_status(Trial.ERROR)
        sim = self._sim[trial.trial_id]
        sim.state, sim.error = "ERROR", message
        self.scheduler.on_trial_error(self.controller, trial)
        if self.searcher is not None:
            self.searcher.on_trial_complete(trial.trial_id, error=True)

    # --- bookkeeping ----------------------------------------------------------------------------------
    def _by_id(self, trial_id: str) -> Trial:
        return self._trials[int(trial_id)]

    def _best(self) -> Optional[TrialSummary]:
        largest = self.max_epochs if self.algorithm.multi_fidelity else None
        return best_trial([s.summary(self.mode) for s in self._sim.values()], self.mode,
                          self.algorithm.multi_fidelity, largest_budget=largest)

    def _reached_target(self) -> bool:
        best = self._incumbent
        return self.target is not None and best is not None and \
            sign(self.mode) * float(best.score) >= sign(self.mode) * self.target  # type: ignore[arg-type]

    def _record_best(self, trial: Optional[Trial] = None) -> None:
        """Update the incumbent with a trial that just finished. Eligibility depends only on the trial
        itself here (the largest budget is the planned one), so this equals `_best()` at O(1)."""
        if trial is None:
            return
        largest = self.max_epochs if self.algorithm.multi_fidelity else None
        candidates = [self._sim[trial.trial_id].summary(self.mode)]
        if self._incumbent is not None:
            candidates.insert(0, self._incumbent)  # the earlier trial wins ties
        best = best_trial(candidates, self.mode, self.algorithm.multi_fidelity, largest_budget=largest)
        if best is None or best is self._incumbent:
            return
        self._incumbent = best
        assert best.score is not None  # best_trial returns candidates only, and a candidate has a finite score
        if not self._trace or self._trace[-1][1] != best.score:
            self._trace.append((self._now, float(best.score)))


def run_simulation(algorithm: Algorithm, objective: Objective, workers: int = 1, **kwargs: Any) -> SimRun:
    """`Simulator(algorithm, objective, workers, **kwargs).run()`."""
    return Simulator(algorithm, objective, workers, **kwargs).run()


def regret(value: float, optimum: float, mode: str) -> float:
    """How far `value` is from `optimum` (>= 0 when the optimum is the best)."""
    return sign(mode) * (optimum - value) if math.isfinite(value) else math.inf
