"""An ordered, buffered MLflow writer that never blocks or kills the sweep.

Tune callbacks run in the sweep driver's event loop; a slow or stopped `mlflow server` must not stall
or fail it. So every write is queued as an operation and applied in order by one background thread.
When an operation fails (server down, network error) it stays at the head of the queue and the thread
retries with backoff; `flush(timeout)` waits until the queue is empty, so the store is complete once
the sweep has finished and the server is reachable again.

Runs are addressed by *handles* (our own names, e.g. "sweep" or "trial:<id>") because a run id only
exists once the server has answered. Creating a run is get-or-create by tags (`sweep_id`, `trial_id`,
`gdino.run_type`), which makes both retries after a lost reply and resumed sweeps reuse their runs.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger(__name__)

_BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)
MAX_PARAM_LENGTH = 6000  # MLflow 3 stores up to 6000 characters per param value


@dataclass
class RunState:
    run_id: str
    logged_steps: dict[str, int] = field(default_factory=dict)  # metric key -> last step in the store
    params: set[str] = field(default_factory=set)


@dataclass
class _Op:
    kind: str
    handle: str
    payload: dict[str, Any]


class MlflowWriter:
    """Queue of MLflow operations applied in order by a daemon thread (see the module docstring)."""

    def __init__(self, tracking_uri: str, experiment_name: str, *, artifact_location: Optional[str] = None):
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.artifact_location = artifact_location
        self.runs: dict[str, RunState] = {}
        self._queue: deque[_Op] = deque()
        self._cond = threading.Condition()
        self._thread: Optional[threading.Thread] = None
        self._client: Any = None
        self._experiment_id: Optional[str] = None
        self._staging = Path(tempfile.mkdtemp(prefix="gdino-mlflow-staging-"))
        self.failures = 0  # failed attempts (outages), for reporting
        self.dropped = 0  # operations the store refused for good (4xx)
        self.last_error: Optional[str] = None

    # ---- queueing (called from the Tune event loop; never blocks on MLflow)
    def ensure_run(self, handle: str, *, lookup_tags: dict[str, str], tags: dict[str, str],
                   run_name: str, parent: Optional[str] = None) -> None:
        self._put("ensure_run", handle, lookup_tags=lookup_tags, tags=tags, run_name=run_name, parent=parent)

    def log_params(self, handle: str, params: dict[str, Any]) -> None:
        if params:
            self._put("log_params", handle, params=dict(params))

    def log_metrics(self, handle: str, metrics: dict[str, float], step: int) -> None:
        if metrics:
            self._put("log_metrics", handle, metrics=dict(metrics), step=int(step), timestamp=_now_ms())

    def set_tags(self, handle: str, tags: dict[str, Any]) -> None:
        if tags:
            self._put("set_tags", handle, tags={k: str(v) for k, v in tags.items()})

    def log_artifact(self, handle: str, local_path: str | os.PathLike, artifact_path: Optional[str] = None) -> None:
        """The file is copied now: the caller may change or delete it before the write happens."""
        staged = self._staging / f"{len(os.listdir(self._staging))}" / Path(local_path).name
        staged.parent.mkdir(parents=True)
        shutil.copy2(local_path, staged)
        self._put("log_artifact", handle, local_path=str(staged), artifact_path=artifact_path)

    def terminate(self, handle: str, status: str) -> None:
        self._put("terminate", handle, status=status)

    def _put(self, kind: str, handle: str, **payload: Any) -> None:
        with self._cond:
            self._queue.append(_Op(kind, handle, payload))
            self._cond.notify_all()
        self._start_thread()

    # ---- draining
    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until every queued operation is in the store; False if `timeout` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._queue:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(timeout=min(remaining, 1.0) if remaining is not None else 1.0)
        return True

    @property
    def pending(self) -> int:
        return len(self._queue)

    def run_id(self, handle: str, timeout: Optional[float] = None) -> Optional[str]:
        """The MLflow run id behind a handle, waiting for the queue to reach it."""
        if handle not in self.runs:
            self.flush(timeout)
        state = self.runs.get(handle)
        return state.run_id if state else None

    def close(self, timeout: Optional[float] = None) -> bool:
        done = self.flush(timeout)
        if done:
            shutil.rmtree(self._staging, ignore_errors=True)
        return done

    def _start_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._drain_forever, name="gdino-mlflow-writer", daemon=True)
            self._thread.start()

    def _drain_forever(self) -> None:
        attempt = 0
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                op = self._queue[0]
            try:
                self._apply(op)
            except Exception as exc:  # noqa: BLE001 - any MLflow/network failure: keep the op, retry
                self.failures += 1
                from gdino.redact import redact_text

                self.last_error = redact_text(f"{type(exc).__name__}: {exc}")[:500]
                if _is_permanent(exc):  # the store refused this write (e.g. a changed param): retrying cannot help
                    log.error("MLflow refused %s on %s; skipping it: %s", op.kind, op.handle, self.last_error)
                    self.dropped += 1
                    with self._cond:
                        self._queue.popleft()
                        self._cond.notify_all()
                    continue
                if attempt == 0:
                    log.warning("MLflow write failed (%s); buffering and retrying", self.last_error)
                time.sleep(_BACKOFF_S[min(attempt, len(_BACKOFF_S) - 1)])
                attempt += 1
                continue
            if attempt:
                log.info("MLflow writes resumed after %d retries", attempt)
            attempt = 0
            with self._cond:
                self._queue.popleft()
                self._cond.notify_all()

    # ---- applying one operation (background thread only)
    def _apply(self, op: _Op) -> None:
        if op.kind == "ensure_run":
            self._apply_ensure_run(op.handle, **op.payload)
            return
        state = self.runs.get(op.handle)
        if state is None:  # its ensure_run is ahead in the queue, so this cannot happen
            log.error("MLflow run %s unknown; dropping %s", op.handle, op.kind)
            return
        getattr(self, f"_apply_{op.kind}")(state, **op.payload)

    def _mlflow(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def _experiment(self) -> str:
        if self._experiment_id is None:
            client = self._mlflow()
            experiment = client.get_experiment_by_name(self.experiment_name)
            if experiment is None:
                try:
                    self._experiment_id = client.create_experiment(self.experiment_name,
                                                                   artifact_location=self.artifact_location)
                except Exception:  # created concurrently (or the create reply was lost): look it up again
                    experiment = client.get_experiment_by_name(self.experiment_name)
                    if experiment is None:
                        raise
                    self._experiment_id = experiment.experiment_id
            else:
                self._experiment_id = experiment.experiment_id
        return self._experiment_id

    def _apply_ensure_run(self, handle: str, lookup_tags: dict[str, str], tags: dict[str, str], run_name: str,
                          parent: Optional[str]) -> None:
        client, experiment_id = self._mlflow(), self._experiment()
        tags = dict(tags)
        if parent is not None:
            tags["mlflow.parentRunId"] = self.runs[parent].run_id
        filter_string = " and ".join(f"tags.`{k}` = '{v}'" for k, v in lookup_tags.items())
        found = client.search_runs([experiment_id], filter_string=filter_string, max_results=1,
                                   order_by=["attributes.start_time ASC"])
        if found:
            run = found[0]
            self.runs[handle] = _known_state(client, run)
            if run.info.status != "RUNNING":
                client.update_run(run.info.run_id, status="RUNNING")
            if tags:
                from mlflow.entities import RunTag

                client.log_batch(run.info.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
            return
        run = client.create_run(experiment_id, run_name=run_name, tags={**tags, **lookup_tags})
        self.runs[handle] = RunState(run.info.run_id)

    def _apply_log_params(self, state: RunState, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        new = [Param(k, _param_text(v)) for k, v in params.items() if k not in state.params]
        for start in range(0, len(new), 100):  # MLflow's log_batch limit is 100 params
            self._mlflow().log_batch(state.run_id, params=new[start:start + 100])
        state.params.update(p.key for p in new)

    def _apply_log_metrics(self, state: RunState, metrics: dict[str, float], step: int, timestamp: int) -> None:
        from mlflow.entities import Metric

        # A resumed trial re-reports epochs after its last checkpoint: keep the first value of each step.
        new = [Metric(k, float(v), timestamp, step) for k, v in metrics.items()
               if step > state.logged_steps.get(k, -1)]
        if new:
            self._mlflow().log_batch(state.run_id, metrics=new)
        for m in new:
            state.logged_steps[m.key] = step

    def _apply_set_tags(self, state: RunState, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self._mlflow().log_batch(state.run_id, tags=[RunTag(k, v[:MAX_PARAM_LENGTH]) for k, v in tags.items()])

    def _apply_log_artifact(self, state: RunState, local_path: str, artifact_path: Optional[str]) -> None:
        self._mlflow().log_artifact(state.run_id, local_path, artifact_path)

    def _apply_terminate(self, state: RunState, status: str) -> None:
        self._mlflow().set_terminated(state.run_id, status=status)


def _is_permanent(exc: Exception) -> bool:
    """A 4xx answer (bad value, conflicting param) will be refused again; 5xx, 429 and network errors
    (which MLflow reports as INTERNAL_ERROR/500) are worth retrying."""
    from mlflow.exceptions import MlflowException

    if not isinstance(exc, MlflowException):
        return False
    status = exc.get_http_status_code()
    return 400 <= status < 500 and status != 429


def _known_state(client: Any, run: Any) -> RunState:
    """A reused run: remember what it already holds so nothing is written twice."""
    state = RunState(run.info.run_id, params=set(run.data.params))
    for key in run.data.metrics:
        history = client.get_metric_history(run.info.run_id, key)
        state.logged_steps[key] = max((m.step for m in history), default=-1)
    return state


def _param_text(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MAX_PARAM_LENGTH else text[:MAX_PARAM_LENGTH - 3] + "..."


def _now_ms() -> int:
    return int(time.time() * 1000)

