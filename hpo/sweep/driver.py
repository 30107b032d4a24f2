"""The trial driver: one Tune trial = one training run (notes/ray.md §1, the Ray 2.60 pattern).

`run_trial` is a Tune function trainable. It builds the trial's spec (base spec + sampled flat config +
epoch budget), then either fits a `ray.train.torch.TorchTrainer` whose workers run the training
function (backend "train"), or runs the training function in the Tune actor itself (backend
"function": the cheap path of notes/ray.md implication 14). In both cases the training runs on a
background thread and this thread pumps its reports into `ray.tune.report`, which lets it

- attach a Tune checkpoint to each report when the scheduler pauses or exploits trials (hyperband,
  bohb, pbt): Train's checkpoints otherwise never reach Tune (notes/ray.md §3);
- stop a trial that reports nothing for `stale_timeout_s` (StaleTrialError), releasing its resources.

`run_trial` must stay a module-level function with this name: Tuner.restore matches it by name.
"""
from __future__ import annotations

import copy
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from hpo.sweep.resources import TrialResources
from hpo.sweep.worker import CHECKPOINT_KEY, WorkerContext, import_callable, train_loop_per_worker

log = logging.getLogger(__name__)

EPOCHS_KEY = "__epochs__"     # a config key an algorithm may set to give one trial its own epoch budget
STALE_MARKER = "StaleTrialError"
_POLL_S = 1.0


class StaleTrialError(RuntimeError):
    """The trial reported nothing for stale_timeout_s: it is stopped and its resources released."""


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
    (results_dir / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))

    tune_checkpoint = ray.tune.get_checkpoint()
    tune_resume_dir = tune_checkpoint.to_directory() if tune_checkpoint is not None else None
    reports: "queue.Queue[dict]" = queue.Queue(maxsize=1)
    if ctx.resources.backend == "train":
        fit = _train_backend(ctx, spec, trial_id, str(results_dir), tune_resume_dir)
    else:
        fit = _function_backend(ctx, spec, trial_id, str(results_dir), tune_resume_dir, reports.put)
    _pump(fit, reports, ctx)


def _pump(fit: "_Fit", reports: "queue.Queue[dict]", ctx: TrialContext) -> None:
    """Forward the training's reports to Tune until it ends; raise if it fails or goes stale."""
    import ray.tune

    get = fit.get if fit.get is not None else (lambda timeout: reports.get(timeout=timeout))
    last_report = time.monotonic()
    fit.thread.start()
    while True:
        try:
            item = get(_POLL_S)
        except Exception:  # queue.Empty or ray.util.queue.Empty
            if not fit.thread.is_alive() and fit.drained():
                break
            if time.monotonic() - last_report > ctx.stale_timeout_s:
                raise StaleTrialError(f"{STALE_MARKER}: the trial reported nothing for "
                                      f"{ctx.stale_timeout_s:g} s and was stopped")
            continue
        last_report = time.monotonic()
        metrics, checkpoint_path = item["metrics"], item.get("checkpoint")
        if checkpoint_path:
            metrics[CHECKPOINT_KEY] = checkpoint_path
        checkpoint = None
        if checkpoint_path and ctx.tune_checkpoints:
            checkpoint = ray.tune.Checkpoint.from_directory(checkpoint_path)
        ray.tune.report(metrics, checkpoint=checkpoint)
    fit.thread.join()
    if fit.error is not None:
        raise fit.error


@dataclass
class _Fit:
    thread: threading.Thread
    get: Optional[Callable[[float], dict]] = None
    drained: Callable[[], bool] = lambda: True
    error: Optional[BaseException] = None


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
    """Train in this actor; checkpoints go to Tune (copied), so every report carries one."""
    import shutil

    kept: dict[str, float] = {}  # checkpoint dir -> score; the best keep_checkpoints survive, as in Train
    sign = 1.0 if ctx.mode == "max" else -1.0

    def sink(metrics: dict, checkpoint_dir: Optional[str]) -> None:
        path = None
        if checkpoint_dir:
            path = str(Path(results_dir) / "checkpoints" / f"epoch_{int(metrics.get('epoch', 0)):04d}")
            shutil.copytree(checkpoint_dir, path, dirs_exist_ok=True)
            kept[path] = sign * float(metrics.get(ctx.metric, float("-inf") * sign))
            for stale in sorted(kept, key=kept.__getitem__, reverse=True)[ctx.keep_checkpoints:]:
                if stale != path:  # the newest stays until the next report: Tune restores from it
                    shutil.rmtree(stale, ignore_errors=True)
                    kept.pop(stale)
        put({"metrics": metrics, "checkpoint": path})

    worker_ctx = WorkerContext(trial_id=trial_id, results_dir=results_dir, resume_dir=tune_resume_dir,
                               options=dict(ctx.train_fn_options), _sink=sink)
    ctx.tune_checkpoints = True  # the only place this backend's checkpoints live
    train_fn = import_callable(ctx.train_fn)
    return _background(lambda: train_fn(spec, worker_ctx))


def _train_backend(ctx: TrialContext, spec: dict, trial_id: str, results_dir: str,
                   tune_resume_dir: Optional[str]) -> _Fit:
    import ray.train
    from ray.train.torch import TorchTrainer
    from ray.util.queue import Queue

    res = ctx.resources
    forward: Queue = Queue(maxsize=1, actor_options={"num_cpus": 0})
    per_worker = {"CPU": res.cpus_per_worker, **({"GPU": res.gpus_per_worker} if res.use_gpu else {})}
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"spec": spec, "trial_id": trial_id, "results_dir": results_dir,
                           "train_fn": ctx.train_fn, "options": dict(ctx.train_fn_options),
                           "tune_resume_dir": tune_resume_dir},
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
    fit.get = lambda timeout: forward.get(block=True, timeout=timeout)
    fit.drained = forward.empty
    return fit


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

    return ForwardReports(forward)


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}
