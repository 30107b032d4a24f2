"""A cheap but real trainable for engine tests and overhead benchmarks.

A linear regression in torch, trained with SGD at `train.optim.lr` for `train.num_epochs` epochs; the
reported `val_mAP50` is 1 / (1 + validation MSE), so learning rate really changes the score and a
scheduler has something to prune. Checkpoints hold the weights and the epoch, so retries and
Tune restores continue where the trial left off.

Test-only knobs, in `ctx.options` (never in the spec): `fail_with` (raise RuntimeError at epoch 1),
`hold_at_epoch` + `hold_dir` (write `<hold_dir>/<trial_id>.pid` with this worker's pid, then wait
for `<hold_dir>/release`; only the first attempt holds: gives a test a live worker to kill), `steps_per_epoch`.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from hpo.sweep.worker import WorkerContext

_FEATURES = 8


def quadratic_train_fn(spec: dict[str, Any], ctx: WorkerContext) -> None:
    import torch

    train = spec.get("train") or {}
    lr = float((train.get("optim") or {}).get("lr", 1e-2))
    epochs = int(train.get("num_epochs", 3))
    steps = int(ctx.options.get("steps_per_epoch", 20))

    generator = torch.Generator().manual_seed(1234)  # the same data for every trial
    true_w = torch.randn(_FEATURES, 1, generator=generator)
    x_train, x_val = torch.randn(256, _FEATURES, generator=generator), torch.randn(64, _FEATURES, generator=generator)
    y_train, y_val = x_train @ true_w, x_val @ true_w

    model = torch.nn.Linear(_FEATURES, 1)
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.zeros_(model.bias)
    start_epoch = 0
    if ctx.resume_dir:
        state = torch.load(Path(ctx.resume_dir, "model.pt"), weights_only=True)
        model.load_state_dict(state["model"])
        start_epoch = int(state["epoch"])
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)

    train_s = 0.0  # time inside the training loop itself (bench/overhead.py: the rest is overhead)
    for epoch in range(start_epoch + 1, epochs + 1):
        _test_hooks(ctx, epoch)
        began = time.perf_counter()
        for _ in range(steps):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x_train), y_train)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            val_loss = float(torch.nn.functional.mse_loss(model(x_val), y_val))
        train_s += time.perf_counter() - began
        metrics = {"epoch": epoch, "train_loss": float(loss), "val_loss": val_loss, "lr": lr,
                   "val_mAP50": 1.0 / (1.0 + val_loss), "val_mAP": 0.5 / (1.0 + val_loss), "train_s": train_s}
        tmp = tempfile.mkdtemp(prefix="cheap-ckpt-")
        try:
            if ctx.is_rank_zero:
                torch.save({"model": model.state_dict(), "epoch": epoch}, Path(tmp, "model.pt"))
            ctx.report(metrics, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _test_hooks(ctx: WorkerContext, epoch: int) -> None:
    if ctx.options.get("fail_with") and epoch == 1:
        raise RuntimeError(str(ctx.options["fail_with"]))
    hold_at = ctx.options.get("hold_at_epoch")
    if hold_at is None or epoch != int(hold_at) or not ctx.is_rank_zero:
        return
    hold_dir = Path(ctx.options["hold_dir"])
    pid_file = Path(hold_dir, f"{ctx.trial_id}.pid")
    if not pid_file.exists():  # only the first attempt holds: a retry runs through
        hold_dir.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(str(os.getpid()))
        while not Path(hold_dir, "release").exists():  # the test kills this process while it waits
            time.sleep(0.2)
