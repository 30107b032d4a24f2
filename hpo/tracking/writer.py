"""An ordered, buffered MLflow writer that never blocks or kills the sweep.

Tune callbacks run in the sweep driver's event loop; a slow or stopped `mlflow server` must not stall
or fail it. So every write is queued as an operation and applied in order by one background thread.
When an operation fails (server down, network error) it stays at the head of the queue and the thread
retries with backoff; `flush(timeout)` waits until the queue is empty, so the store is complete once
the sweep has finished and the server is reachable again.

Runs are addressed by *handles* (our own names, e.g. "sweep" or "trial:<id>") because a run id only
exists once the server has answered. Creating a run is get-or-create by tags (`sweep_id`, `trial_id`,
`gdino.run_type`), which makes both retries after a lost reply and resumed sweeps reuse their runs.

Nothing lost (issue 12, part 6): with a `spill_path` (the sweep dir's mlflow_spill.jsonl) every queued
operation is also appended to that file as one JSON line `{"seq", "kind", "handle", "payload"}` (written
through at once, so a SIGKILLed driver loses nothing; fsync'd at most every FSYNC_EVERY_S against power
loss) and `{"applied": seq}` follows once the store has it. Operations apply strictly in order, so the
applied ones are a prefix: a new writer on the same file (a resumed sweep) replays the rest first,
after finding the runs they address again. Replays are idempotent: runs by their tags, params by
name, metrics by (key, step) against what the store already holds (`_known_state`), so each metric
lands exactly once. The file is compacted when the queue is empty, and removed by a complete `close`.
"""
from __future__ import annotations

import json
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
SPILL_NAME = "mlflow_spill.jsonl"
FSYNC_EVERY_S = 1.0
MAX_BATCH_OPS, MAX_BATCH_METRICS = 200, 900  # MLflow's log_batch takes up to 1000 metrics
COMPACT_AFTER_LINES = 20_000  # an empty queue with this many lines in the spill file rewrites it


def spill_path_for(sweep_dir: str | os.PathLike) -> Path:
    return Path(sweep_dir) / SPILL_NAME


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
    seq: Optional[int] = None  # its line in the spill file (None: not spilled, e.g. a replay's lookup)


class MlflowWriter:
    """Queue of MLflow operations applied in order by a daemon thread (see the module docstring)."""

    def __init__(self, tracking_uri: str, experiment_name: str, *, artifact_location: Optional[str] = None,
                 spill_path: Optional[str | os.PathLike] = None):
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.artifact_location = artifact_location
        self.runs: dict[str, RunState] = {}
        self._queue: deque[_Op] = deque()
        self._cond = threading.Condition()
        self._thread: Optional[threading.Thread] = None
        self._client: Any = None
        self._experiment_id: Optional[str] = None
        self.failures = 0  # failed attempts (outages), for reporting
        self.dropped = 0  # operations the store refused for good (4xx)
        self.last_error: Optional[str] = None
        self.spill_path = Path(spill_path) if spill_path is not None else None
        self.replayed = 0  # operations of an earlier writer replayed from the spill file
        self._spilled_steps: dict[str, int] = {}  # metric key prefix "system/" -> largest step in the file
        self._ensure_ops: dict[str, _Op] = {}  # handle -> its latest ensure_run (kept by compaction)
        self._next_seq = 0
        self._spill_lines = 0
        self._last_fsync = 0.0
        self._spill: Any = None
        if self.spill_path is not None:
            self._staging = Path(f"{self.spill_path}.staged")  # artifacts must outlive a killed driver too
            self._staging.mkdir(parents=True, exist_ok=True)
            self._replay_spill()
        else:
            self._staging = Path(tempfile.mkdtemp(prefix="gdino-mlflow-staging-"))

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
        staged = self._staging / f"{len(os.listdir(self._staging))}-{time.time_ns()}" / Path(local_path).name
        staged.parent.mkdir(parents=True)
        shutil.copy2(local_path, staged)
        self._put("log_artifact", handle, local_path=str(staged), artifact_path=artifact_path)

    def terminate(self, handle: str, status: str) -> None:
        self._put("terminate", handle, status=status)

    def _put(self, kind: str, handle: str, **payload: Any) -> None:
        with self._cond:
            op = _Op(kind, handle, payload)
            self._spill_op(op)
            self._queue.append(op)
            self._cond.notify_all()
        self._start_thread()

    # ---- the spill file (see the module docstring); every method below runs under self._cond
    def _spill_op(self, op: _Op) -> None:
        if self.spill_path is None:
            return
        op.seq, self._next_seq = self._next_seq, self._next_seq + 1
        if op.kind == "ensure_run":
            self._ensure_ops[op.handle] = op
        self._spill_write({"seq": op.seq, "kind": op.kind, "handle": op.handle, "payload": op.payload})

    def _spill_applied(self, op: _Op) -> None:
        if self.spill_path is not None and op.seq is not None:
            self._spill_write({"applied": op.seq})

    def _spill_write(self, record: dict[str, Any]) -> None:
        if self._spill is None:
            self._spill = open(self.spill_path, "a", encoding="utf-8")
        # written through to the OS at once: a SIGKILLed process loses nothing; fsync (power loss) is paced
        self._spill.write(json.dumps(record, default=str) + "\n")
        self._spill.flush()
        self._spill_lines += 1
        if time.monotonic() - self._last_fsync >= FSYNC_EVERY_S:
            os.fsync(self._spill.fileno())
            self._last_fsync = time.monotonic()

    def _replay_spill(self) -> None:
        """Queue what an earlier writer on this spill file left unapplied (see the module docstring)."""
        if not self.spill_path.is_file():
            return
        ops: list[_Op] = []
        applied = -1
        for line in self.spill_path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # the last line of a killed writer may be cut short
                continue
            if "applied" in record:
                applied = max(applied, int(record["applied"]))
                continue
            op = _Op(record["kind"], record["handle"], record["payload"], int(record["seq"]))
            ops.append(op)
            self._note_spilled_steps(op)
        self._next_seq = max((op.seq for op in ops), default=-1) + 1
        self._spill_lines = len(ops)
        for op in ops:
            if op.kind == "ensure_run":
                self._ensure_ops[op.handle] = op
        pending = [op for op in ops if op.seq > applied]
        self._queue.extend(self._lookups_for(pending))
        self._queue.extend(pending)
        self.replayed = len(pending)
        if pending:
            log.info("MLflow: replaying %d buffered writes from %s", len(pending), self.spill_path)
            self._start_thread()

    def _lookups_for(self, pending: list[_Op]) -> list[_Op]:
        """Runs the pending operations address whose ensure_run was applied earlier: find them again
        (without reopening them), parents first, in the order they were created."""
        pending_ensures = {op.handle for op in pending if op.kind == "ensure_run"}
        needed = {op.handle for op in pending}
        for handle in list(needed):
            parent = self._ensure_ops.get(handle, _Op("", "", {})).payload.get("parent")
            while parent and parent not in needed:
                needed.add(parent)
                parent = self._ensure_ops.get(parent, _Op("", "", {})).payload.get("parent")
        ordered = sorted((self._ensure_ops[h] for h in needed - pending_ensures if h in self._ensure_ops),
                         key=lambda op: op.seq)
        return [_Op("lookup_run", op.handle, dict(op.payload)) for op in ordered]

    def _note_spilled_steps(self, op: _Op) -> None:
        if op.kind != "log_metrics":
            return
        for key in op.payload.get("metrics", {}):
            prefix = key.split("/", 1)[0] + "/" if "/" in key else ""
            self._spilled_steps[prefix] = max(self._spilled_steps.get(prefix, -1), int(op.payload["step"]))

    def max_spilled_step(self, prefix: str) -> int:
        """The largest step of metrics named `prefix...` in the spill file when this writer started
        (-1: none): a resumed run continues its steps after it."""
        return self._spilled_steps.get(prefix, -1)

    def _compact_spill(self) -> None:
        """Queue empty: everything spilled is applied. Keep only the runs' ensure_run lines (a later
        replay must find them again) and the applied mark."""
        if self.spill_path is None or self._spill_lines < COMPACT_AFTER_LINES or self._queue:
            return
        tmp = self.spill_path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as out:
            for op in sorted(self._ensure_ops.values(), key=lambda o: o.seq):
                out.write(json.dumps({"seq": op.seq, "kind": op.kind, "handle": op.handle,
                                      "payload": op.payload}, default=str) + "\n")
            out.write(json.dumps({"applied": self._next_seq - 1}) + "\n")
            out.flush()
            os.fsync(out.fileno())
        if self._spill is not None:
            self._spill.close()
            self._spill = None
        os.replace(tmp, self.spill_path)
        self._spill_lines = len(self._ensure_ops) + 1

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
        """Flush; when complete, the staged artifacts and the spill file are no longer needed."""
        done = self.flush(timeout)
        with self._cond:
            if self._spill is not None:
                self._spill.flush()
                os.fsync(self._spill.fileno())
                if done:
                    self._spill.close()
                    self._spill = None
            if done:
                shutil.rmtree(self._staging, ignore_errors=True)
                if self.spill_path is not None:
                    self.spill_path.unlink(missing_ok=True)
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
                batch = self._head_batch()
            op = batch[0]
            try:
                self._apply_batch(batch)
            except Exception as exc:  # noqa: BLE001 - any MLflow/network failure: keep the op, retry
                self.failures += 1
                from gdino.redact import redact_text

                self.last_error = redact_text(f"{type(exc).__name__}: {exc}")[:500]
                if _is_permanent(exc):  # the store refused this write (e.g. a changed param): retrying cannot help
                    log.error("MLflow refused %s on %s; skipping it: %s", op.kind, op.handle, self.last_error)
                    self.dropped += len(batch)
                    with self._cond:
                        for done in batch:
                            self._queue.popleft()
                            self._spill_applied(done)  # decided for good: a replay must not retry it
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
                for done in batch:
                    self._queue.popleft()
                    self._spill_applied(done)
                if not self._queue:
                    self._compact_spill()
                self._cond.notify_all()

    def _head_batch(self) -> list[_Op]:
        """The head operation, with the log_metrics right behind it on the same run: one log_batch call
        for a backlog (an outage's worth of heartbeats) instead of one call each. Under self._cond."""
        batch = [self._queue[0]]
        if batch[0].kind != "log_metrics":
            return batch
        count = len(batch[0].payload["metrics"])
        for op in list(self._queue)[1:MAX_BATCH_OPS]:
            count += len(op.payload.get("metrics", {}))
            if op.kind != "log_metrics" or op.handle != batch[0].handle or count > MAX_BATCH_METRICS:
                break
            batch.append(op)
        return batch

    def _apply_batch(self, batch: list[_Op]) -> None:
        if len(batch) == 1:
            self._apply(batch[0])
            return
        self._apply(_Op("log_metrics_many", batch[0].handle, {"batches": [op.payload for op in batch]}))

    # ---- applying one operation (background thread only)
    def _apply(self, op: _Op) -> None:
        if op.kind in ("ensure_run", "lookup_run"):
            self._apply_ensure_run(op.handle, **op.payload, reopen=op.kind == "ensure_run")
            return
        state = self.runs.get(op.handle)
        known = self._ensure_ops.get(op.handle)
        if state is None and known is not None:  # created by an earlier writer on this spill file
            self._apply_ensure_run(op.handle, **known.payload, reopen=False)
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
                          parent: Optional[str], reopen: bool = True) -> None:
        """Get-or-create by tags. `reopen=False` (a replay finding a run again): leave its status and tags."""
        client, experiment_id = self._mlflow(), self._experiment()
        tags = dict(tags)
        filter_string = " and ".join(f"tags.`{k}` = '{v}'" for k, v in lookup_tags.items())
        found = client.search_runs([experiment_id], filter_string=filter_string, max_results=1,
                                   order_by=["attributes.start_time ASC"])
        if parent is not None and (not found or reopen):
            tags["mlflow.parentRunId"] = self.runs[parent].run_id
        if found:
            run = found[0]
            self.runs[handle] = _known_state(client, run)
            if not reopen:
                return
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

    def _apply_log_metrics_many(self, state: RunState, batches: list[dict[str, Any]]) -> None:
        """Several log_metrics of one run in one call, with the same keep-the-first-value-per-step rule."""
        from mlflow.entities import Metric

        logged = dict(state.logged_steps)
        new = []
        for payload in batches:
            for k, v in payload["metrics"].items():
                if payload["step"] > logged.get(k, -1):
                    new.append(Metric(k, float(v), payload["timestamp"], payload["step"]))
                    logged[k] = payload["step"]
        if new:
            self._mlflow().log_batch(state.run_id, metrics=new)
        state.logged_steps = logged

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

