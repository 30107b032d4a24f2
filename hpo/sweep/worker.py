"""What runs inside a trial's training process(es): the injectable training function contract.

A training function is `fn(spec: dict, ctx: WorkerContext) -> None`, named by an import path
("module:function") so that Ray workers can import it. It trains `spec['train']['num_epochs']` epochs,
resumes from `ctx.resume_dir` when given, and calls `ctx.report(metrics, checkpoint_dir)` at every
validation. `gdino_train_fn` is the real one (gdino.engine.train.fit under Ray's Lightning strategy);
`hpo.testing:quadratic_train_fn` is a cheap real trainable for engine tests.

Two ways to run it (hpo.sweep.driver): inside Ray Train workers (`train_loop_per_worker`, reporting via
`ray.train.report`, rank-0 checkpoints) or inside the Tune actor itself (the "function" backend).
"""
from __future__ import annotations

import importlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

REPORTED_METRICS = ("val_mAP50", "val_mAP", "val_loss", "train_loss", "lr", "epoch")
CHECKPOINT_META = "gdino_checkpoint.json"  # epoch + owning trial: decides which checkpoint to resume from
CHECKPOINT_KEY = "checkpoint_path"


@dataclass
class WorkerContext:
    trial_id: str
    results_dir: str
    rank: int = 0
    world_size: int = 1
    resume_dir: Optional[str] = None
    options: dict[str, Any] = field(default_factory=dict)  # free-form, for the training function
    _sink: Optional[Callable[[dict, Optional[str]], None]] = None
    # liveness side channel to the trial driver (never Tune's report): gdino.engine.heartbeat fields
    _heartbeat: Optional[Callable[[dict], None]] = None

    @property
    def is_rank_zero(self) -> bool:
        return self.rank == 0

    def report(self, metrics: Mapping[str, Any], checkpoint_dir: Optional[str] = None) -> None:
        """Every rank calls this the same number of times (Ray's report is a barrier); only rank 0's
        metrics and checkpoint are kept. The checkpoint directory is copied; the caller may delete it."""
        clean = {k: float(v) for k, v in metrics.items() if _is_number(v)}
        if checkpoint_dir is not None and self.is_rank_zero:
            Path(checkpoint_dir, CHECKPOINT_META).write_text(
                json.dumps({"epoch": int(clean.get("epoch", 0)), "trial_id": self.trial_id}))
        assert self._sink is not None, "WorkerContext without a report sink"
        self._sink(clean, checkpoint_dir if self.is_rank_zero else None)

    def heartbeat_meter(self, **throttle: Any) -> Any:
        """A gdino.engine.heartbeat.HeartbeatMeter sending to the trial driver (rank 0 only: the ranks
        move in lock-step, a hung rank stalls rank 0 at the next collective)."""
        from gdino.engine.heartbeat import HeartbeatMeter

        sink = self._heartbeat if self.is_rank_zero else None
        return HeartbeatMeter(sink, **{**dict(self.options.get("heartbeat") or {}), **throttle})


def _is_number(v: Any) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def import_callable(path: str) -> Callable[..., Any]:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def read_checkpoint_meta(directory: Optional[str]) -> dict[str, Any]:
    if not directory:
        return {}
    meta = Path(directory, CHECKPOINT_META)
    return json.loads(meta.read_text()) if meta.is_file() else {}


def choose_resume_dir(own_dir: Optional[str], tune_dir: Optional[str], trial_id: str) -> Optional[str]:
    """Which checkpoint a (re)started trial continues from.

    - a Tune checkpoint from *another* trial is a PBT exploit: its weights always win;
    - otherwise the newer of the trial's own Train checkpoint (worker retry, driver restart) and the
      Tune checkpoint (un-pausing scheduler), the Tune one on a tie.
    """
    tune_meta, own_meta = read_checkpoint_meta(tune_dir), read_checkpoint_meta(own_dir)
    if tune_dir and tune_meta.get("trial_id") not in (None, trial_id):
        return tune_dir
    if tune_dir and own_dir:
        return own_dir if own_meta.get("epoch", 0) > tune_meta.get("epoch", 0) else tune_dir
    return tune_dir or own_dir


# ---------------------------------------------------------------------------------- Ray Train workers
def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """The per-worker loop of a trial's TorchTrainer."""
    import ray.train

    context = ray.train.get_context()
    own = ray.train.get_checkpoint()  # the latest of this Train run: set after a worker failure
    own_dir = _local_dir(own) if own is not None else None

    def sink(metrics: dict, checkpoint_dir: Optional[str]) -> None:
        checkpoint = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=checkpoint)

    ctx = WorkerContext(trial_id=loop_config["trial_id"], results_dir=loop_config["results_dir"],
                        rank=context.get_world_rank(), world_size=context.get_world_size(),
                        resume_dir=choose_resume_dir(own_dir, loop_config.get("tune_resume_dir"),
                                                     loop_config["trial_id"]),
                        options=dict(loop_config.get("options") or {}), _sink=sink,
                        _heartbeat=_queue_sink(loop_config.get("heartbeats")))
    from hpo.secrets import restore_secrets, secret_env  # the spec travels redacted, its secrets in memory

    spec = restore_secrets(loop_config["spec"], list(loop_config.get("secret_paths") or []),
                           {**os.environ, **secret_env(loop_config.get("secrets") or {})})
    import_callable(loop_config["train_fn"])(spec, ctx)


def _queue_sink(heartbeats: Any) -> Optional[Callable[[dict], None]]:
    """Heartbeats into the trial driver's ray.util.queue.Queue; a full queue drops the beat."""
    if heartbeats is None:
        return None

    def put(beat: dict) -> None:
        try:
            heartbeats.put_nowait(beat)
        except Exception:  # noqa: BLE001 - queue.Full or a driver gone: liveness is best effort
            pass

    return put


def _local_dir(checkpoint: Any) -> str:
    """Local checkpoints are used in place; remote ones (s3://...) are downloaded once."""
    path = str(checkpoint.path)
    if os.path.isdir(path):
        return path
    return checkpoint.to_directory(tempfile.mkdtemp(prefix="gdino-resume-"))


# ---------------------------------------------------------------------------------- gdino training
def gdino_train_fn(spec: dict[str, Any], ctx: WorkerContext) -> None:
    """Grounding DINO training under Ray: gdino.engine.train.fit with Ray's Lightning strategy
    (DDP, or FSDP when train.distributed_strategy says so), RayLightningEnvironment and a callback
    that reports at every validation with a rank-0 checkpoint."""
    import copy

    import ray.train.lightning as rl
    import torch

    from gdino.config import ExperimentConfig
    from gdino.engine.train import fit

    worker_spec = copy.deepcopy(spec)
    # Ray placed one process per device already: each Lightning trainer drives one device of one node
    # and RayLightningEnvironment supplies world size and ranks.
    worker_spec.setdefault("train", {})["num_nodes"] = 1
    cfg = ExperimentConfig.model_validate(worker_spec)
    strategy_name = str(worker_spec["train"].get("distributed_strategy", "ddp")).lower()
    strategy = rl.RayFSDPStrategy() if strategy_name == "fsdp" else rl.RayDDPStrategy()
    from gdino.engine.heartbeat import HeartbeatCallback

    meter = ctx.heartbeat_meter()
    meter.phase("build")  # model and data build next (minutes on a real dataset): that is progress too
    fit(cfg, strategy=strategy, plugins=[rl.RayLightningEnvironment()],
        callbacks=[make_lightning_report_callback(ctx), HeartbeatCallback(meter), *_restore_hooks(ctx)],
        devices="auto",
        accelerator="gpu" if torch.cuda.is_available() else "cpu", enable_progress_bar=False,
        ckpt_path=_lightning_ckpt(ctx.resume_dir), prepare_trainer=rl.prepare_trainer,
        tao_checkpoints=False)  # a trial's checkpoints are Ray's; the best one's .pth is written at promotion


def _lightning_ckpt(resume_dir: Optional[str]) -> Optional[str]:
    if not resume_dir:
        return None
    path = Path(resume_dir, "model.ckpt")
    return str(path) if path.is_file() else None


def make_lightning_report_callback(ctx: WorkerContext) -> Any:
    """A Lightning callback reporting after every (non-sanity) validation, checkpointing on rank 0.

    Unlike Ray's RayTrainReportCallback it reports at validation (not every train epoch, where the
    metric would be stale) and keeps only what Train's CheckpointConfig retains (notes/ray.md §7.6)."""
    import pytorch_lightning as pl

    class RayValidationReport(pl.Callback):
        def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            if trainer.sanity_checking:
                return
            metrics = {k: _as_float(trainer.callback_metrics[k]) for k in REPORTED_METRICS
                       if k in trainer.callback_metrics}
            metrics["epoch"] = trainer.current_epoch + 1  # epochs completed: the schedulers' fidelity
            tmp = tempfile.mkdtemp(prefix="gdino-ckpt-")
            try:
                trainer.save_checkpoint(str(Path(tmp, "model.ckpt")))  # collective; rank 0 writes
                ctx.report(metrics, tmp)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)

    return RayValidationReport()


def _as_float(value: Any) -> float:
    return float(value.item()) if hasattr(value, "item") else float(value)


# ---------------------------------------------------------------------------------- PBT restore hook
def _restore_hooks(ctx: WorkerContext) -> list[Any]:
    """A trial resumed from a checkpoint (a PBT exploit copies its donor's) re-applies its own optimizer
    hyperparameters once Lightning has restored the checkpoint's optimizer and scheduler."""
    return [make_apply_optimizer_config_callback()] if ctx.resume_dir else []


def make_apply_optimizer_config_callback() -> Any:
    """A Lightning callback that, once `fit` has restored a checkpoint's optimizer and LR scheduler,
    writes the *trial's* optimizer hyperparameters back into them.

    Lightning restores the donor's optimizer state (param-group lr, weight_decay, momentum) and
    scheduler state (base_lrs, gamma, milestones) after a PBT exploit: without this the explored
    config would be undone silently. Each group takes the base lr of the freshly configured optimizer
    (lr, lr_backbone, lr x lr_linear_proj_mult), the scheduler takes the new base_lrs and its decay
    settings, and the current lr is the schedule's closed form at the restored epoch. Moment buffers
    (Adam's exp_avg, SGD's momentum) are kept: they belong to the donor's weights."""
    import pytorch_lightning as pl

    class ApplyOptimizerConfig(pl.Callback):
        def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            apply_optimizer_config(trainer, pl_module)

    return ApplyOptimizerConfig()


_GROUP_HYPERPARAMETERS = ("weight_decay", "momentum", "dampening", "nesterov", "betas", "eps")
_SCHEDULER_HYPERPARAMETERS = ("gamma", "step_size", "milestones")


def apply_optimizer_config(trainer: Any, pl_module: Any) -> None:
    """See make_apply_optimizer_config_callback. A restored optimizer of another type (a perturbed
    train.optim.optimizer) is replaced by the configured one: its state cannot carry over."""
    if not trainer.optimizers or not trainer.lr_scheduler_configs:
        return
    configured = pl_module.configure_optimizers()
    fresh_opt, fresh_sched = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    optimizer, config = trainer.optimizers[0], trainer.lr_scheduler_configs[0]
    scheduler = config.scheduler
    if type(optimizer) is not type(fresh_opt) or type(scheduler) is not type(fresh_sched) \
            or len(optimizer.param_groups) != len(fresh_opt.param_groups):
        fresh_sched.last_epoch = scheduler.last_epoch
        trainer.strategy.optimizers = [fresh_opt]
        config.scheduler = fresh_sched
        optimizer, scheduler = fresh_opt, fresh_sched
    else:
        for group, new in zip(optimizer.param_groups, fresh_opt.param_groups):
            group["initial_lr"] = new["initial_lr"]
            for key in _GROUP_HYPERPARAMETERS:
                if key in new:
                    group[key] = new[key]
        scheduler.base_lrs = list(fresh_sched.base_lrs)
        for key in _SCHEDULER_HYPERPARAMETERS:
            if hasattr(fresh_sched, key):
                setattr(scheduler, key, getattr(fresh_sched, key))
    closed_form = getattr(scheduler, "_get_closed_form_lr", None)
    lrs = closed_form() if callable(closed_form) else list(scheduler.base_lrs)
    for group, lr in zip(optimizer.param_groups, lrs):
        group["lr"] = lr
    scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]
