"""TAO-style training side effects: `status.json` lines, `model_epoch_XXX_step_XXXXX.pth` checkpoints, and
what every checkpoint leaves out (frozen parts, see gdino.model.frozen).

Which checkpoint is written when (docs/ARCHITECTURE.md, "Checkpoints and disk"):
- plain training: a complete `.pth` every `checkpoint_interval` and always one of the last epoch
  (`TaoCheckpoint`);
- sweep trials: no `.pth` (Ray's `model.ckpt` only; hpo.sweep.worker), with frozen parts that their source
  rebuilds left out and recorded (`OmitFrozenParts`); the `.pth` of the best is written at promotion.
"""
from __future__ import annotations

import json
import logging
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

from gdino.errors import CheckpointError

log = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"model_epoch_(\d+)_step_(\d+)\.pth$")
KPI_KEYS = ("val_mAP", "val_mAP50", "val_loss")
OPTIMIZER_KEYS = ("optimizer_states", "lr_schedulers")  # what a Lightning checkpoint needs only to resume


def tao_checkpoint_name(epoch: int, step: int) -> str:
    return f"model_epoch_{epoch:03d}_step_{step:05d}.pth"


class TaoCheckpoint(ModelCheckpoint):
    """Every `checkpoint_interval` epochs (or steps), named as TAO names them; all are kept. The last epoch
    is always saved, whatever the interval, so a finished training leaves its final model."""

    FILE_EXTENSION = ".pth"

    def __init__(self, dirpath: str | Path, interval: int, unit: str = "epoch") -> None:
        by_step = unit == "step"
        super().__init__(dirpath=str(dirpath), filename="model_epoch_{epoch:03d}_step_{step:05d}",
                         auto_insert_metric_name=False, save_top_k=-1, save_last=False,
                         every_n_epochs=None if by_step else max(1, interval),
                         every_n_train_steps=max(1, interval) if by_step else None,
                         save_on_train_epoch_end=True)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if trainer.global_step == 0 or self._last_global_step_saved == trainer.global_step:
            return  # nothing trained, or the interval already saved this step
        last_epoch = max(0, trainer.current_epoch - 1)  # the loop has counted the finished epoch already
        path = Path(self.dirpath or ".") / tao_checkpoint_name(last_epoch, trainer.global_step)
        trainer.save_checkpoint(str(path))  # collective under DDP: every rank runs this hook
        self._last_global_step_saved = trainer.global_step
        if trainer.is_global_zero:
            log.info("final model: %s", path)


MODEL_KEYS = ("state_dict", "gdino_omitted", "hyper_parameters", "epoch", "global_step",
              "pytorch-lightning_version")  # what a TAO-style model file keeps of a Lightning checkpoint


def write_model_file(source: str | Path, target: str | Path) -> Path:
    """The TAO-style `.pth` of a checkpoint: its weights (frozen parts left out as the checkpoint left them,
    with their record), spec and epoch, without optimizer or loop state. Written atomically."""
    import os

    import torch

    from gdino.model.checkpoints.reading import load_object

    state = load_object(Path(source))  # weights-only, with the allow-list for our own Lightning checkpoints
    if not isinstance(state, dict) or "state_dict" not in state:
        raise CheckpointError(f"{source} is not a Lightning checkpoint of this package",
                              hint="pass the model.ckpt of a trial (its Ray checkpoint directory)")
    target = Path(target)
    staging = target.with_name(f".{target.name}.tmp")
    torch.save({k: state[k] for k in MODEL_KEYS if k in state}, str(staging))
    os.replace(staging, target)
    return target


class OmitFrozenParts(pl.Callback):
    """Leaves frozen parts that their source rebuilds out of every checkpoint this trainer saves, with the
    `gdino_omitted` record (gdino.model.frozen); on resume, puts them back only if the record matches.

    Lightning restores the module's weights before any callback sees the checkpoint, so loading is made
    non-strict in `setup` and the strict check is done here instead: the only tensors a checkpoint may lack
    are those of a recorded part whose fingerprint equals the rebuilt one; nothing may be left over."""

    def __init__(self) -> None:
        self._record: Optional[dict] = None

    def record(self, pl_module: pl.LightningModule) -> dict:
        import torch

        from gdino.model.frozen import omitted_parts

        if self._record is None:  # frozen parts never change: one fingerprint per training
            net = pl_module.net
            assert isinstance(net, torch.nn.Module)
            self._record = omitted_parts(net, pl_module.cfg)
        return self._record

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        pl_module.strict_loading = False

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        from gdino.model.frozen import OMITTED_KEY, omitted_bytes, strip_omitted

        record = self.record(pl_module)
        if not record:
            return
        state = checkpoint["state_dict"]
        if not getattr(self, "_logged", False) and trainer.is_global_zero:
            self._logged = True
            log.info("checkpoints leave out the frozen %s (%.1f MB each): rebuilt from %s when loaded",
                     ", ".join(record), omitted_bytes(state, record) / 1e6,
                     ", ".join(part["source"] for part in record.values()))
        checkpoint["state_dict"] = strip_omitted(state, record)
        checkpoint[OMITTED_KEY] = record

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        check_resumed_state(pl_module, checkpoint)


def check_resumed_state(pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
    """Raise CheckpointError unless `checkpoint` restored every tensor of `pl_module`, counting a part left
    out with a matching `gdino_omitted` record as restored (it was rebuilt from its source)."""
    from gdino.model.frozen import OMITTED_KEY, is_omitted, state_fingerprint

    saved = set(checkpoint.get("state_dict", {}))
    own = pl_module.state_dict()
    record = checkpoint.get(OMITTED_KEY) or {}
    leftover = sorted(saved - set(own))
    missing = sorted(k for k in set(own) - saved if not is_omitted(k, record))
    if leftover or missing:
        raise CheckpointError(f"the checkpoint does not fit this network: {len(missing)} tensors missing "
                              f"{missing[:5]}, {len(leftover)} unknown {leftover[:5]}",
                              hint="resume with the model.* settings the checkpoint was trained with")
    for part, entry in record.items():
        names = {k: v for k, v in own.items() if is_omitted(k, {part: entry})}
        prefix = next(iter(entry["prefixes"]))
        rebuilt = state_fingerprint({k.removeprefix("net.").removeprefix(prefix): v for k, v in names.items()})
        if rebuilt != entry["fingerprint"]:
            raise CheckpointError(
                f"the checkpoint left out the frozen {part} from {entry['source']!r}, but the {part} built now "
                "differs from the one it was trained with",
                hint=f"use the {part} weights the checkpoint was trained with (model.text_encoder_type="
                     f"{entry['source']})")


def latest_checkpoint(results_dir: str | Path) -> Optional[Path]:
    """The checkpoint with the highest (epoch, step) in results_dir (TAO's resume default)."""
    folder = Path(results_dir)
    if not folder.is_dir():
        return None
    found = []
    for path in folder.rglob("*.pth"):
        match = CHECKPOINT_PATTERN.search(path.name)
        if match:
            found.append(((int(match.group(1)), int(match.group(2))), path))
    return max(found)[1] if found else None


class StatusLogger(pl.Callback):
    """Appends TAO's status.json lines: STARTED, one RUNNING line per epoch (with kpi), SUCCESS/FAILURE."""

    def __init__(self, results_dir: str | Path) -> None:
        self.path = Path(results_dir) / "status.json"
        self._epoch_started = time.monotonic()

    def write(self, status: str, message: str, **fields: Any) -> None:
        now = datetime.now(timezone.utc)
        line = {"date": now.strftime("%-m/%-d/%Y"), "time": now.strftime("%-H:%M:%S"), "status": status,
                "verbosity": "INFO", "message": message, **fields}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as fh:
            fh.write(json.dumps(line) + "\n")

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self.write("STARTED", "Starting Training Loop.")

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_started = time.monotonic()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if hasattr(v, "item") or
                   isinstance(v, (int, float))}
        seconds = time.monotonic() - self._epoch_started
        epoch = trainer.current_epoch
        remaining = max(0, (trainer.max_epochs or 0) - epoch - 1)
        self.write("RUNNING", "Train metrics generated.", epoch=epoch, max_epoch=trainer.max_epochs,
                   time_per_epoch=f"{seconds:.1f}s", eta=f"{seconds * remaining:.1f}s",
                   kpi={k: metrics[k] for k in KPI_KEYS if k in metrics},
                   graphical={k: metrics[k] for k in ("train_loss", "lr") if k in metrics})

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self.write("SUCCESS", "Training finished successfully.")

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if trainer.is_global_zero:
            self.write("FAILURE", f"Training failed: {type(exception).__name__}")
