"""TAO-style training side effects: `status.json` lines and `model_epoch_XXX_step_XXXXX.pth` checkpoints."""
from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

CHECKPOINT_PATTERN = re.compile(r"model_epoch_(\d+)_step_(\d+)\.pth$")
KPI_KEYS = ("val_mAP", "val_mAP50", "val_loss")


class TaoCheckpoint(ModelCheckpoint):
    """Every `checkpoint_interval` epochs (or steps), named as TAO names them; all are kept."""

    FILE_EXTENSION = ".pth"

    def __init__(self, dirpath: str | Path, interval: int, unit: str = "epoch") -> None:
        by_step = unit == "step"
        super().__init__(dirpath=str(dirpath), filename="model_epoch_{epoch:03d}_step_{step:05d}",
                         auto_insert_metric_name=False, save_top_k=-1, save_last=False,
                         every_n_epochs=None if by_step else max(1, interval),
                         every_n_train_steps=max(1, interval) if by_step else None,
                         save_on_train_epoch_end=True)


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
