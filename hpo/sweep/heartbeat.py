"""Trial liveness: heartbeats from the training loop to the trial driver and on to the sweep driver.

    training loop (gdino.engine.heartbeat.HeartbeatMeter, rank 0)
      -> trial driver (hpo.sweep.driver._pump): function backend a thread-safe queue.Queue, Train
         backend a ray.util.queue.Queue; `Liveness` stops the trial only when `progress` stops moving
         for stale_timeout_s (never because an epoch is long)
      -> `HeartbeatHub`, a named Ray actor of the sweep driver (fire-and-forget calls)
      -> `HeartbeatDispatcher`, a Tune callback in the sweep driver that hands each beat to the
         observers' `on_trial_heartbeat(trial_id, beat)`: the MLflow tracker (live/* metrics of the
         trial's run) and the live progress table.

Nothing here goes through `ray.tune.report`: schedulers only ever see validation results.
"""
from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from ray.tune import Callback

log = logging.getLogger(__name__)

HUB_MAX_PENDING = 10_000      # beats the sweep driver has not collected yet (oldest dropped beyond)
DISPATCH_EVERY_S = 2.0        # how often the sweep driver collects beats
HUB_LOOKUP_EVERY_S = 30.0     # a trial retries finding the hub (e.g. the sweep driver is restarting)


class Liveness:
    """The trial driver's view: alive while heartbeats' `progress` moves or reports arrive."""

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self.last_progress_at = clock()
        self.last_beat: Optional[dict[str, Any]] = None
        self.started = False  # a beat or a report arrived: the training itself runs

    def beat(self, beat: dict[str, Any]) -> None:
        previous = self.last_beat.get("progress") if self.last_beat else None
        if beat.get("progress") != previous:
            self.last_progress_at = self.clock()
        self.last_beat, self.started = beat, True

    def reported(self) -> None:
        self.last_progress_at, self.started = self.clock(), True

    def stale(self, timeout_s: float, start_grace_s: float = 0.0) -> bool:
        """No progress for `timeout_s`; before the training's first sign of life, for the larger of it and
        `start_grace_s` (e.g. Ray Train's own worker-group start timeout, which governs that phase)."""
        limit = timeout_s if self.started else max(timeout_s, start_grace_s)
        return self.idle_s() > limit

    def idle_s(self) -> float:
        return self.clock() - self.last_progress_at

    def describe(self) -> str:
        if not self.last_beat:
            return "no heartbeat received"
        b = self.last_beat
        return f"last heartbeat: phase {b.get('phase')}, step {b.get('step')}, epoch {b.get('epoch')}"


def hub_name(sweep_dir: str | Path) -> str:
    """One hub per sweep (per driver job: named actors of a job live in its own namespace)."""
    return "gdino-heartbeats-" + hashlib.sha1(str(Path(sweep_dir).resolve()).encode()).hexdigest()[:12]


class _Hub:
    """Holds the beats of every trial until the sweep driver collects them."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, dict]] = []

    def beat(self, trial_id: str, beat: dict) -> None:
        self.pending.append((trial_id, beat))
        if len(self.pending) > HUB_MAX_PENDING:
            del self.pending[: len(self.pending) - HUB_MAX_PENDING]

    def collect(self) -> list[tuple[str, dict]]:
        out, self.pending = self.pending, []
        return out


def start_hub(name: str) -> Any:
    import ray

    return ray.remote(_Hub).options(name=name, get_if_exists=True, num_cpus=0, max_concurrency=1).remote()


class HubForwarder:
    """In the trial driver: sends each beat to the sweep's hub; never blocks, never raises."""

    def __init__(self, name: Optional[str], trial_id: str) -> None:
        self.name, self.trial_id = name, trial_id
        self._hub: Any = None
        self._next_lookup = 0.0

    def __call__(self, beat: dict) -> None:
        hub = self._find()
        if hub is None:
            return
        try:
            hub.beat.remote(self.trial_id, beat)
        except Exception:  # noqa: BLE001 - the sweep driver restarted: look the hub up again later
            self._hub = None

    def _find(self) -> Any:
        if self._hub is not None or self.name is None or time.monotonic() < self._next_lookup:
            return self._hub
        import ray

        self._next_lookup = time.monotonic() + HUB_LOOKUP_EVERY_S
        try:
            self._hub = ray.get_actor(self.name)
        except ValueError:  # not (yet) there
            self._hub = None
        return self._hub


class HeartbeatDispatcher(Callback):
    """Sweep driver side: starts the hub and hands beats to the observers every DISPATCH_EVERY_S."""

    def __init__(self, sweep_dir: str, observers: Sequence[Any]) -> None:
        self.name = hub_name(sweep_dir)
        self.observers = [o for o in observers if hasattr(o, "on_trial_heartbeat")]
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._hub: Any = None
        self._last = 0.0
        self._in_flight: Any = None  # the hub's answer to the last collect(), not yet taken

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for runtime in ("_hub", "_last", "_in_flight"):
            state.pop(runtime, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_runtime()

    def setup(self, **info: Any) -> None:
        self._hub = start_hub(self.name)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if time.monotonic() - self._last >= DISPATCH_EVERY_S:
            self.dispatch(timeout_s=0.0)  # never hold up Tune's loop: take the answer when it is there

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.dispatch()

    def dispatch(self, timeout_s: float = 5.0) -> int:
        """Hand the beats the hub holds to the observers. The collect() call stays in flight between
        calls, so with timeout_s=0 this never waits (an actor still starting up answers later)."""
        import ray

        self._last = time.monotonic()
        if self._hub is None:
            return 0
        try:
            if self._in_flight is None:
                self._in_flight = self._hub.collect.remote()
            ready, _ = ray.wait([self._in_flight], timeout=timeout_s)
            if not ready:
                return 0
            reply, self._in_flight = self._in_flight, None
            beats = ray.get(reply)
        except Exception:  # noqa: BLE001 - a slow hub delays the live view, never the sweep
            self._in_flight = None
            log.debug("heartbeat hub not answering", exc_info=True)
            return 0
        for trial_id, beat in beats:
            for observer in self.observers:
                try:
                    observer.on_trial_heartbeat(trial_id, beat)
                except Exception:  # noqa: BLE001 - an observer's bug must not stop the sweep
                    log.exception("heartbeat observer %s failed", type(observer).__name__)
        return len(beats)
