"""The trial driver: one Tune trial = one training run (notes/ray.md §1, the Ray 2.60 pattern).

`run_trial` is a Tune function trainable. It builds the trial's spec (base spec + sampled flat config +
epoch budget), then either fits a `ray.train.torch.TorchTrainer` whose workers run the training
function (backend "train"), or runs the training function in the Tune actor itself (backend
"function": the cheap path of notes/ray.md implication 14). In both cases the training runs on a
background thread and this thread pumps its reports into `ray.tune.report`, which lets it

- attach a Tune checkpoint to each report when the scheduler pauses or exploits trials (hyperband,
  bohb, pbt): Train's checkpoints otherwise never reach Tune (notes/ray.md §3);
- stop a trial whose training makes no progress for `stale_timeout_s` (StaleTrialError), releasing its
  resources: progress is a report or a heartbeat whose counter moved (hpo.sweep.heartbeat; heartbeats
  come through a side channel, never tune.report, and go on to the sweep driver's live view).

`run_trial` must stay a module-level function with this name: Tuner.restore matches it by name.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from hpo.sweep.checkpoints import TrialCheckpoints, publish_directory, write_score
from hpo.sweep.cluster import WORKER_GROUP_START_TIMEOUT_S
from hpo.sweep.heartbeat import HubForwarder, Liveness
from hpo.sweep.resources import TrialResources
from hpo.sweep.worker import CHECKPOINT_KEY, WorkerContext, import_callable, train_loop_per_worker

log = logging.getLogger(__name__)

EPOCHS_KEY = "__epochs__"     # a config key an algorithm may set to give one trial its own epoch budget
STALE_MARKER = "StaleTrialError"
_POLL_S = 1.0


class StaleTrialError(RuntimeError):
    """The trial reported nothing for stale_timeout_s: it is stopped and its resources released."""


class TrialFailedBefore(RuntimeError):
    """A Tune retry of a trial whose training itself raised (not a lost trial driver): the same error
    again, without training again (its message is the first attempt's traceback)."""


FAILED_MARKER = "trial_failed.txt"  # in the trial's results dir: the training's own error, redacted


def _remember_failure(marker: Path, err: BaseException) -> None:
    """Tune retries (automl.max_failures) are for trial drivers that died (a node gone), which cannot
    write this: an error the training raised (stale, OOM, a bug) would only repeat, so a retry reads
    this file and fails at once with the same text."""
    import traceback

    from gdino.redact import redact_text

    try:
        marker.write_text(redact_text("".join(traceback.format_exception(err))))
    except OSError:
        log.warning("could not record the failure of this trial in %s", marker)


@dataclass
class TrialContext:
    """Everything a trial needs besides its sampled config (passed with tune.with_parameters)."""

    sweep_dir: str
    base_spec: dict[str, Any]
    metric: str
    mode: str
    trial_epochs: int
    resources: TrialResources
    train_fn: str = "hpo.sweep.worker:gdino_train_fn"
    train_fn_options: dict[str, Any] = field(default_factory=dict)
    keep_checkpoints: int = 2
    max_failures: int = 2
    stale_timeout_s: float = 1800.0
    tune_checkpoints: bool = False
    multi_fidelity: bool = False  # epochs are the algorithm's fidelity (never a searched value)
    secret_paths: list[str] = field(default_factory=list)  # redacted in base_spec (hpo.secrets) ...
    secret_values: dict[str, str] = field(default_factory=dict, repr=False)  # ... their values, in memory
    heartbeat_hub: Optional[str] = None  # the sweep driver's hpo.sweep.heartbeat hub (a Ray actor name)


EPOCH_PARAM = "train.num_epochs"


def trial_epoch_budget(config: dict[str, Any], ctx: TrialContext) -> int:
    """The epochs this trial runs: the algorithm's per-trial budget when it sets one, else a searched
    `train.num_epochs` (only non-multi-fidelity algorithms search it), else the sweep's trial budget."""
    if config.get(EPOCHS_KEY):
        return int(config[EPOCHS_KEY])
    if not ctx.multi_fidelity and config.get(EPOCH_PARAM):
        return int(config[EPOCH_PARAM])
    return int(ctx.trial_epochs)


def trial_results_dir(sweep_dir: str | Path, trial_id: str) -> Path:
    return Path(sweep_dir) / "trials" / trial_id


def build_trial_spec(base_spec: dict[str, Any], flat: dict[str, Any], epochs: int,
                     results_dir: str) -> dict[str, Any]:
    """base spec + sampled values + the trial's epoch budget (lr_steps rescaled) + its own results_dir."""
    from hpo.space import apply_config, apply_epoch_budget

    # a searched num_epochs arrives as `epochs`: applied by the budget, which rescales lr_steps from the
    # base spec's epochs
    sampled = {k: v for k, v in flat.items() if k != EPOCH_PARAM}
    spec = apply_epoch_budget(apply_config(copy.deepcopy(base_spec), sampled), epochs)
    spec["results_dir"] = results_dir
    train = spec.setdefault("train", {})
    for key in ("checkpoint_interval", "validation_interval"):  # TAO: min(spec value, num_epochs)
        if key in train and isinstance(train[key], int):
            train[key] = max(1, min(train[key], epochs))
    return spec


def run_trial(config: dict[str, Any], ctx: TrialContext) -> None:
    """The Tune function trainable (see the module docstring)."""
    import ray.tune
    import yaml

    trial_id = ray.tune.get_context().get_trial_id()
    flat = {k: v for k, v in config.items() if not k.startswith("__")}
    epochs = trial_epoch_budget(config, ctx)
    results_dir = trial_results_dir(ctx.sweep_dir, trial_id)
    results_dir.mkdir(parents=True, exist_ok=True)
    spec = build_trial_spec(ctx.base_spec, flat, epochs, str(results_dir))
    (results_dir / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))  # redacted (hpo.secrets)

    tune_checkpoint = ray.tune.get_checkpoint()
    tune_resume_dir = tune_checkpoint.to_directory() if tune_checkpoint is not None else None
    failed = results_dir / FAILED_MARKER
    if failed.is_file():
        raise TrialFailedBefore(failed.read_text())
    reports: "queue.Queue[dict]" = queue.Queue(maxsize=1)
    if ctx.resources.backend == "train":
        fit = _train_backend(ctx, spec, trial_id, str(results_dir), tune_resume_dir)
    else:
        spec = _with_secrets(spec, ctx)
        fit = _function_backend(ctx, spec, trial_id, str(results_dir), tune_resume_dir, reports.put)
    _pump(fit, reports, ctx, HubForwarder(ctx.heartbeat_hub, trial_id), failed)


def _with_secrets(spec: dict[str, Any], ctx: TrialContext) -> dict[str, Any]:
    """The trial's spec with its secrets put back, in memory (the files keep the redacted one)."""
    from hpo.secrets import restore_secrets, secret_env

    return restore_secrets(spec, ctx.secret_paths, {**os.environ, **secret_env(ctx.secret_values)})


def _pump(fit: "_Fit", reports: "queue.Queue[dict]", ctx: TrialContext,
          forward_beat: Callable[[dict], None] = lambda beat: None,
          failure_marker: Optional[Path] = None) -> None:
    """Forward the training's reports to Tune until it ends; raise if it fails or goes stale (no report
    and no heartbeat progress for stale_timeout_s). Heartbeats go to `forward_beat`, never to Tune."""
    import ray.tune

    get = fit.get if fit.get is not None else (lambda timeout: reports.get(timeout=timeout))
    liveness = Liveness()
    fit.thread.start()
    while True:
        for beat in fit.heartbeats():
            liveness.beat(beat)
            forward_beat(beat)
        try:
            item = get(_POLL_S)
        except Exception:  # queue.Empty or ray.util.queue.Empty
            if not fit.thread.is_alive() and fit.drained():
                break
            if liveness.stale(ctx.stale_timeout_s, fit.start_grace_s):
                stale = StaleTrialError(f"{STALE_MARKER}: the trial reported nothing for {ctx.stale_timeout_s:g} s "
                                        f"and its training made no progress ({liveness.describe()}); it was stopped")
                if failure_marker is not None:
                    _remember_failure(failure_marker, stale)
                raise stale from None  # the empty poll is not the cause
            continue
        liveness.reported()
        metrics, checkpoint_path = item["metrics"], item.get("checkpoint")
        if checkpoint_path:
            metrics[CHECKPOINT_KEY] = checkpoint_path
        checkpoint = None
        if checkpoint_path and ctx.tune_checkpoints:
            checkpoint = ray.tune.Checkpoint.from_directory(checkpoint_path)
        ray.tune.report(metrics, checkpoint=checkpoint)
        fit.retention.acknowledged(checkpoint_path, metrics.get(ctx.metric))  # Tune has it: older may go
    fit.thread.join()
    if fit.error is not None:
        if failure_marker is not None:
            _remember_failure(failure_marker, fit.error)
        raise fit.error
    fit.retention.finished()


@dataclass
class _Fit:
    thread: threading.Thread
    get: Optional[Callable[[float], dict]] = None
    drained: Callable[[], bool] = lambda: True
    error: Optional[BaseException] = None
    heartbeats: Callable[[], list] = list  # the beats received since the last call
    start_grace_s: float = 0.0  # how long the training may take to send its first beat (see Liveness)
    retention: TrialCheckpoints = field(default_factory=lambda: TrialCheckpoints(keep=1, mode="max", prune=False))


HEARTBEAT_BUFFER = 1000  # beats the trial driver has not read yet (it reads every _POLL_S)


def _local_beats() -> tuple[Callable[[dict], None], Callable[[], list]]:
    """(sink for the training thread, reader for the pump): a thread-safe queue; full drops the beat."""
    beats: "queue.Queue[dict]" = queue.Queue(maxsize=HEARTBEAT_BUFFER)

    def put(beat: dict) -> None:
        try:
            beats.put_nowait(beat)
        except queue.Full:
            pass

    def read() -> list:
        out = []
        while True:
            try:
                out.append(beats.get_nowait())
            except queue.Empty:
                return out

    return put, read


def _remote_beats(beats: Any) -> Callable[[], list]:
    """Reader of a ray.util.queue.Queue the Train workers put beats into."""
    def read() -> list:
        try:
            n = beats.qsize()
            return beats.get_nowait_batch(n) if n else []
        except Exception:  # noqa: BLE001 - an unreadable queue is no progress (nothing else)
            return []

    return read


def _background(target: Callable[[], None]) -> _Fit:
    fit = _Fit(thread=threading.Thread(target=lambda: None))

    def run() -> None:
        try:
            target()
        except BaseException as err:  # re-raised on the driver thread by _pump
            fit.error = err

    fit.thread = threading.Thread(target=run, name="trial-fit", daemon=True)
    return fit


def _function_backend(ctx: TrialContext, spec: dict, trial_id: str, results_dir: str,
                      tune_resume_dir: Optional[str], put: Callable[[dict], None]) -> _Fit:
    """Train in this actor; checkpoints go to Tune (copied), so every report carries one.

    Each checkpoint is published under its final name atomically and pruned (best keep_checkpoints plus
    the latest) only once Tune acknowledged a newer one (`_pump` -> TrialCheckpoints.acknowledged, on the
    pump thread, after ray.tune.report returned): Tune may still be copying the previous one meanwhile."""
    def sink(metrics: dict, checkpoint_dir: Optional[str]) -> None:
        path = None
        if checkpoint_dir:
            target = Path(results_dir) / "checkpoints" / f"epoch_{int(metrics.get('epoch', 0)):04d}"
            write_score(checkpoint_dir, metrics.get(ctx.metric))  # lets a resumed trial rank it again
            path = str(publish_directory(checkpoint_dir, target))
        put({"metrics": metrics, "checkpoint": path})

    put_beat, read_beats = _local_beats()
    worker_ctx = WorkerContext(trial_id=trial_id, results_dir=results_dir, resume_dir=tune_resume_dir,
                               options=dict(ctx.train_fn_options), _sink=sink, _heartbeat=put_beat)
    ctx.tune_checkpoints = True  # the only place this backend's checkpoints live
    train_fn = import_callable(ctx.train_fn)
    fit = _background(lambda: train_fn(spec, worker_ctx))
    fit.heartbeats = read_beats
    fit.retention = TrialCheckpoints(keep=ctx.keep_checkpoints, mode=ctx.mode, prune=True)
    fit.retention.adopt(Path(results_dir) / "checkpoints")  # a paused trial's earlier checkpoints
    return fit


def _train_backend(ctx: TrialContext, spec: dict, trial_id: str, results_dir: str,
                   tune_resume_dir: Optional[str]) -> _Fit:
    import ray.train
    from ray.train.torch import TorchTrainer
    from ray.util.queue import Queue

    res = ctx.resources
    forward: Queue = Queue(maxsize=1, actor_options={"num_cpus": 0})
    beats: Queue = Queue(maxsize=HEARTBEAT_BUFFER, actor_options={"num_cpus": 0})
    per_worker = res.worker_resources()
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"spec": spec, "trial_id": trial_id, "results_dir": results_dir,
                           "train_fn": ctx.train_fn, "options": dict(ctx.train_fn_options),
                           "tune_resume_dir": tune_resume_dir, "heartbeats": beats,
                           "secret_paths": list(ctx.secret_paths), "secrets": dict(ctx.secret_values)},
        scaling_config=ray.train.ScalingConfig(num_workers=res.num_workers, use_gpu=res.use_gpu,
                                               resources_per_worker=per_worker),
        run_config=ray.train.RunConfig(
            # a stable name: a restarted driver resumes this Train run from its latest checkpoint
            name=f"trial_{trial_id}", storage_path=str(Path(ctx.sweep_dir).resolve() / "train"),
            checkpoint_config=ray.train.CheckpointConfig(
                num_to_keep=ctx.keep_checkpoints, checkpoint_score_attribute=ctx.metric,
                checkpoint_score_order=ctx.mode),
            # bounded retries everywhere: Ray's default for controller failures is infinite (§7.1)
            failure_config=ray.train.FailureConfig(max_failures=ctx.max_failures,
                                                   controller_failure_limit=max(1, ctx.max_failures)),
            callbacks=[_forwarder(forward)]))
    fit = _background(lambda: trainer.fit())
    fit.get = lambda timeout: _skip_barrier(forward.get(block=True, timeout=timeout))
    fit.drained = forward.empty
    fit.retention = TrialCheckpoints(keep=ctx.keep_checkpoints, mode=ctx.mode, prune=False)  # Train prunes
    fit.heartbeats = _remote_beats(beats)
    fit.start_grace_s = WORKER_GROUP_START_TIMEOUT_S  # Train's own limit on starting its workers
    return fit


_BARRIER = {"barrier": True}


def _skip_barrier(item: dict) -> dict:
    """A barrier is taken and dropped: taking it is what lets the Train controller go on (`_forwarder`)."""
    if item.get("barrier"):
        raise queue.Empty
    return item


def _forwarder(forward: Any) -> Any:
    from ray.train.v2.api.callback import UserCallback

    class ForwardReports(UserCallback):
        """Runs in the Train controller: hands rank 0's metrics and the persisted checkpoint path to
        the trial driver (size-1 queue: the workers wait until the driver has taken the report)."""

        def __init__(self, q: Any) -> None:
            self._queue = q

        def after_report(self, run_context: Any, metrics: list, checkpoint: Any) -> None:
            self._queue.put({"metrics": dict(metrics[0]),
                             "checkpoint": checkpoint.path if checkpoint is not None else None})
            # Hold the controller until the driver has *finished* with this report (Tune copied the
            # checkpoint, older ones lost their optimizer state): the controller prunes checkpoints when it
            # registers the next report. The queue holds one item, so the second barrier fits only once the
            # driver took the first, which it does only after handling the report.
            self._queue.put(_BARRIER)
            self._queue.put(_BARRIER)

    return ForwardReports(forward)


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}
