"""`fit(cfg)`: the one training loop, for plain runs and for Ray Train workers.

    trainer = fit(cfg)                                             # plain training
    fit(cfg, strategy=RayDDPStrategy(), plugins=[RayLightningEnvironment()],
        callbacks=[report_cb], prepare_trainer=ray.train.lightning.prepare_trainer)   # inside Ray Train

Builds the datasets (gdino.data), the Lightning module and a `pytorch_lightning.Trainer` configured
from `train.*` (epochs, validation/checkpoint intervals, precision, clipping, devices, DDP/FSDP),
writes TAO's status.json and model_epoch_XXX_step_XXXXX.pth files into the results dir, and resumes
from `train.resume_training_checkpoint_path` or else the latest checkpoint there.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from gdino.errors import UnsupportedError

log = logging.getLogger(__name__)

PRECISION = {"fp32": "32-true", "fp16": "16-mixed", "bf16": "bf16-mixed"}


def results_dir_of(cfg: Any) -> Path:
    folder = Path(cfg.train.results_dir or cfg.results_dir or "results/train")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def build_loaders(cfg: Any, seed: Optional[int]):
    """(train loader, val loader or None, COCO ground truth dict or None)."""
    import torch

    from gdino.data import build_dataset, collate_fn

    train_set = build_dataset(cfg, "train", seed=seed)
    workers = int(cfg.dataset.workers)
    pin = bool(cfg.dataset.pin_memory) and torch.cuda.is_available()
    common = {"batch_size": int(cfg.dataset.batch_size), "num_workers": workers, "collate_fn": collate_fn,
              "pin_memory": pin, "persistent_workers": False}
    train_loader = torch.utils.data.DataLoader(train_set, shuffle=True, drop_last=False, **common)
    if not cfg.dataset.val_data_sources.json_file:
        return train_loader, None, None
    val_set = build_dataset(cfg, "val")
    val_loader = torch.utils.data.DataLoader(val_set, shuffle=False, **common)
    return train_loader, val_loader, getattr(val_set, "coco_gt", None)


def _device_settings(cfg: Any, devices: Any, accelerator: Optional[str]) -> tuple[Any, str]:
    import torch

    if accelerator is None:
        accelerator = "gpu" if torch.cuda.is_available() and cfg.train.num_gpus > 0 else "cpu"
    if devices is None:
        devices = list(cfg.train.gpu_ids)[: cfg.train.num_gpus] if accelerator == "gpu" else 1
    return devices, accelerator


def _strategy(cfg: Any, strategy: Any) -> Any:
    if strategy is not None:
        return strategy
    if cfg.train.num_gpus * cfg.train.num_nodes <= 1:
        return "auto"
    return "fsdp" if cfg.train.distributed_strategy == "fsdp" else "ddp"


def _precision(cfg: Any, accelerator: str, strategy: Any) -> str:
    precision = PRECISION[cfg.train.precision]
    if accelerator == "cpu" and precision == "16-mixed":
        raise UnsupportedError("train.precision=fp16 needs a GPU", hint="use fp32 or bf16 on the CPU")
    if str(strategy) == "fsdp" and precision == "32-true" and accelerator == "gpu":
        return "16-mixed"  # TAO forces mixed precision under FSDP
    return precision


def resume_path(cfg: Any, results_dir: Path, ckpt_path: Optional[str]) -> Optional[str]:
    from gdino.engine.callbacks import latest_checkpoint

    if ckpt_path:
        return ckpt_path
    if cfg.train.resume_training_checkpoint_path:
        return cfg.train.resume_training_checkpoint_path
    latest = latest_checkpoint(results_dir)
    if latest is not None:
        log.info("resuming from the latest checkpoint in %s: %s", results_dir, latest)
    return str(latest) if latest else None


def build_module(cfg: Any, coco_gt: Optional[dict] = None):
    from gdino.engine.module import GroundingDinoModule
    from gdino.model.weights import load_weights

    module = GroundingDinoModule(cfg.model_dump(mode="json"), coco_gt=coco_gt)
    if cfg.train.pretrained_model_path:
        load_weights(module.net, cfg.train.pretrained_model_path)
    if cfg.train.activation_checkpoint:
        module.net.backbone.set_grad_checkpointing(True)
    return module


def _checkpoint_callbacks(cfg: Any, results_dir: Path, tao_checkpoints: bool) -> list[Any]:
    from gdino.engine.callbacks import OmitFrozenParts, TaoCheckpoint

    if tao_checkpoints:  # plain training: complete, self-contained .pth files (loadable anywhere)
        return [TaoCheckpoint(results_dir, cfg.train.checkpoint_interval, cfg.train.checkpoint_interval_unit)]
    return [OmitFrozenParts()]  # sweep trials: frozen parts left out of every checkpoint, with their record


def fit(cfg: Any, *, strategy: Any = None, plugins: Sequence[Any] = (), callbacks: Sequence[Any] = (),
        devices: Any = None, accelerator: Optional[str] = None, enable_progress_bar: bool = True,
        ckpt_path: Optional[str] = None, prepare_trainer: Optional[Callable[[Any], Any]] = None,
        trainer_kwargs: Optional[dict] = None, tao_checkpoints: bool = True):
    """Train `cfg` (an ExperimentConfig); returns the fitted `pytorch_lightning.Trainer`.

    `tao_checkpoints`: write the `model_epoch_*.pth` files (plain training: every `checkpoint_interval`
    and always the last epoch). Sweep trials pass False: their checkpoints are Ray's (hpo.sweep.worker)."""
    import pytorch_lightning as pl
    from pytorch_lightning.loggers import CSVLogger

    from gdino.engine.callbacks import StatusLogger

    results_dir = results_dir_of(cfg)
    seed = int(cfg.train.seed) if cfg.train.seed >= 0 else None
    if seed is not None:
        pl.seed_everything(seed, workers=True, verbose=False)
    train_loader, val_loader, coco_gt = build_loaders(cfg, seed)
    module = build_module(cfg, coco_gt)
    external = strategy is not None  # e.g. Ray Train's: it owns devices and world size
    if external and devices is None:
        devices = "auto"
    devices, accelerator = _device_settings(cfg, devices, accelerator)
    strategy = _strategy(cfg, strategy)
    trainer = pl.Trainer(
        max_epochs=int(cfg.train.num_epochs), accelerator=accelerator, devices=devices,
        num_nodes=1 if external else int(cfg.train.num_nodes), strategy=strategy, plugins=list(plugins) or None,
        precision=_precision(cfg, accelerator, strategy),
        gradient_clip_val=float(cfg.train.clip_grad_norm) or None, gradient_clip_algorithm="norm",
        check_val_every_n_epoch=int(cfg.train.validation_interval), num_sanity_val_steps=0,
        callbacks=[*_checkpoint_callbacks(cfg, results_dir, tao_checkpoints), StatusLogger(results_dir), *callbacks],
        logger=CSVLogger(str(results_dir), name="lightning_logs"), default_root_dir=str(results_dir),
        enable_progress_bar=enable_progress_bar, deterministic=False,
        # without a ModelCheckpoint of ours Lightning would add its own (a full checkpoint per epoch)
        **{"enable_checkpointing": tao_checkpoints, **(trainer_kwargs or {})})
    if prepare_trainer is not None:
        trainer = prepare_trainer(trainer)
    if cfg.train.is_dry_run:
        log.info("train.is_dry_run: network, data and trainer built; not training")
        return trainer
    trainer.fit(module, train_loader, val_loader, ckpt_path=resume_path(cfg, results_dir, ckpt_path))
    return trainer
