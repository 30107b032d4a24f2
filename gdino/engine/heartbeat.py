"""Liveness heartbeats from a training loop: step counter, running loss, ETA of the epoch.

A heartbeat is a small dict handed to a *sink* (any callable; under a sweep, the trial driver's side
channel, never Ray Tune's `report`, so schedulers only ever see validation results). Whoever receives
them decides a run is alive while `progress` keeps moving: it grows with every training or
validation step and every phase change (building the model, loading data, sanity check, ...), so a
long epoch is alive and a hung step is not.

    meter = HeartbeatMeter(sink, every_n_steps=50, every_s=10.0)
    meter.phase("build")                                    # sent at once
    meter.train_step(epoch=1, epoch_step=i + 1, epoch_steps=n, loss=float(loss))   # sent when due
    HeartbeatCallback(meter)                                # the same from a Lightning Trainer

Fields: phase, progress, step (training steps so far), epoch (1-based, the one running),
epoch_step, epoch_steps (None when unknown), loss (running mean, EMA), eta_s (seconds left in the
epoch, None until known), time (wall clock). A sink that raises never stops training.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable, Optional

log = logging.getLogger(__name__)

Sink = Callable[[dict[str, Any]], None]
LOSS_SMOOTHING = 0.1  # EMA weight of the newest loss: the running loss of the last ~20 steps


class HeartbeatMeter:
    """Counts progress and sends a heartbeat every `every_n_steps` steps or `every_s` seconds of
    progress, whichever comes first (see the module docstring)."""

    def __init__(self, sink: Optional[Sink], *, every_n_steps: int = 50, every_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sink = sink
        self.every_n_steps, self.every_s = max(1, int(every_n_steps)), float(every_s)
        self.clock = clock
        self.progress = 0
        self.step = 0
        self.phase_name = "start"
        self.epoch: Optional[int] = None
        self.epoch_step = 0
        self.epoch_steps: Optional[int] = None
        self.loss: Optional[float] = None
        self._epoch_started = clock()
        self._epoch_first_step = 0
        self._last_sent_progress = -1
        self._last_sent_at = -math.inf

    # ---- events
    def phase(self, name: str) -> None:
        """Entering a phase (build, data, train, validate, ...) is progress; sent at once."""
        self.phase_name = name
        self.progress += 1
        self.send()

    def train_step(self, *, epoch: int, epoch_step: int, epoch_steps: Optional[int] = None,
                   loss: Optional[float] = None, global_step: Optional[int] = None) -> None:
        """One training step; `global_step` (steps since the run began, resumes included) keeps `step`
        growing across restarts from a checkpoint."""
        if epoch != self.epoch:
            self.epoch, self._epoch_started, self._epoch_first_step = epoch, self.clock(), epoch_step - 1
            self.loss = None
        self.phase_name = "train"
        self.step = int(global_step) if global_step is not None else self.step + 1
        self.progress += 1
        self.epoch_step, self.epoch_steps = epoch_step, epoch_steps
        if loss is not None and math.isfinite(loss):
            self.loss = loss if self.loss is None else (1 - LOSS_SMOOTHING) * self.loss + LOSS_SMOOTHING * loss
        self._send_if_due()

    def wants_loss(self) -> bool:
        """Whether the next train step should read its loss (`.item()` syncs a GPU: every few steps only)."""
        return (self.step + 1) % max(1, self.every_n_steps // 10) == 0

    def validation_step(self) -> None:
        self.phase_name = "validate"
        self.progress += 1
        self._send_if_due()

    # ---- sending
    def eta_s(self) -> Optional[float]:
        """Seconds left in the running epoch at the pace of its steps so far."""
        done = self.epoch_step - self._epoch_first_step
        if not self.epoch_steps or done <= 0:
            return None
        return (self.clock() - self._epoch_started) / done * max(self.epoch_steps - self.epoch_step, 0)

    def beat(self) -> dict[str, Any]:
        return {"phase": self.phase_name, "progress": self.progress, "step": self.step, "epoch": self.epoch,
                "epoch_step": self.epoch_step, "epoch_steps": self.epoch_steps, "loss": self.loss,
                "eta_s": self.eta_s(), "time": time.time()}

    def _send_if_due(self) -> None:
        if (self.progress - self._last_sent_progress >= self.every_n_steps
                or self.clock() - self._last_sent_at >= self.every_s):
            self.send()

    def send(self) -> None:
        self._last_sent_progress, self._last_sent_at = self.progress, self.clock()
        if self.sink is None:
            return
        try:
            self.sink(self.beat())
        except Exception:  # noqa: BLE001 - liveness is best effort; training goes on
            log.debug("heartbeat not delivered", exc_info=True)


def HeartbeatCallback(meter: HeartbeatMeter) -> Any:  # noqa: N802 - a class factory (lazy Lightning import)
    """A Lightning callback feeding `meter`: phases (setup = model and data built, sanity check, each
    train epoch, validation) and every training and validation batch."""
    import pytorch_lightning as pl

    class _HeartbeatCallback(pl.Callback):
        def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
            meter.phase("setup")

        def on_sanity_check_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
            meter.phase("sanity_check")

        def on_train_epoch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
            meter.phase("train")

        def on_train_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any,
                               batch: Any, batch_idx: int) -> None:
            total = trainer.num_training_batches
            meter.train_step(epoch=trainer.current_epoch + 1, epoch_step=batch_idx + 1,
                             global_step=trainer.global_step,
                             epoch_steps=int(total) if isinstance(total, int) or _finite(total) else None,
                             loss=_loss_of(outputs) if meter.wants_loss() else None)

        def on_validation_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
            meter.phase("validate")

        def on_validation_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any,
                                    batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
            meter.validation_step()

    return _HeartbeatCallback()


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _loss_of(outputs: Any) -> Optional[float]:
    loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
    try:
        return float(loss.detach().item()) if hasattr(loss, "detach") else (float(loss) if loss is not None else None)
    except (TypeError, ValueError, RuntimeError):
        return None
