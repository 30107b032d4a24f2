"""A cheap but real trainable for engine tests and overhead benchmarks.

A linear regression in torch, trained with SGD at `train.optim.lr` for `train.num_epochs` epochs; the
reported `val_mAP50` is 1 / (1 + validation MSE), so learning rate really changes the score and a
scheduler has something to prune. Checkpoints hold the weights and the epoch, so retries and
Tune restores continue where the trial left off.

Test-only knobs, in `ctx.options` (never in the spec): `fail_with` (raise RuntimeError at epoch 1),
`hold_at_epoch` + `hold_dir` (write `<hold_dir>/<trial_id>.pid` with this worker's pid, then wait
for `<hold_dir>/release`; only the first attempt holds: gives a test a live worker to kill), `steps_per_epoch`,
`record_node` (append "<epoch> <Ray node id>" to `<results_dir>/nodes.txt`: which node trained it),
`step_delay_s` (each training step sleeps this long: a slow epoch that still makes progress),
`hang_at_step` (training step N of the first epoch run hangs until `<hold_dir>/release`: a hung step),
`memory_error_if_lr_above` (raise MemoryError at the first epoch when train.optim.lr is above it: a
config that does not fit), `heartbeat` ({"every_n_steps", "every_s"} for the heartbeat meter),
`overfit` (c: the validation loss grows by c x lr x (epoch - 1), so a high learning rate peaks early and
then falls behind: learning curves that cross, as real ones do).
`require_secret_sha256` (raise unless sha256 of the spec's encryption_key is this: the secret reached the
trial, in memory). Like the real training it sends heartbeats (gdino.engine.heartbeat) while it builds and trains.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

# At import, i.e. when the trial driver resolves `hpo.testing:quadratic_train_fn` and before it starts
# watching liveness: importing torch takes seconds in a fresh worker (tens on a loaded machine), which
# would otherwise count against a test's small stale_timeout_s.
import torch

from hpo.sweep.worker import WorkerContext

_FEATURES = 8


def quadratic_train_fn(spec: dict[str, Any], ctx: WorkerContext) -> None:
    meter = ctx.heartbeat_meter()
    meter.phase("build")

    train = spec.get("train") or {}
    lr = float((train.get("optim") or {}).get("lr", 1e-2))
    epochs = int(train.get("num_epochs", 3))
    steps = int(ctx.options.get("steps_per_epoch", 20))
    every = max(1, int(train.get("validation_interval") or 1))  # reports at validations, as gdino's loop
    step_delay_s = float(ctx.options.get("step_delay_s", 0.0))
    _check_secret(spec, ctx.options.get("require_secret_sha256"))
    limit = ctx.options.get("memory_error_if_lr_above")
    if limit is not None and lr > float(limit):
        raise MemoryError(f"test: lr={lr} > {limit} does not fit in memory")

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
    meter.phase("data")

    train_s = 0.0  # time inside the training loop itself (bench/overhead.py: the rest is overhead)
    for epoch in range(start_epoch + 1, epochs + 1):
        _test_hooks(ctx, epoch)
        began = time.perf_counter()
        for step in range(1, steps + 1):
            _hang_hook(ctx, epoch == start_epoch + 1, step)
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x_train), y_train)
            loss.backward()
            optimizer.step()
            if step_delay_s:
                time.sleep(step_delay_s)  # a slow step, not a test waiting
            meter.train_step(epoch=epoch, epoch_step=step, epoch_steps=steps, global_step=(epoch - 1) * steps + step,
                             loss=float(loss) if meter.wants_loss() else None)
        meter.phase("validate")
        with torch.no_grad():
            val_loss = float(torch.nn.functional.mse_loss(model(x_val), y_val))
        val_loss += float(ctx.options.get("overfit", 0.0)) * lr * (epoch - 1)
        train_s += time.perf_counter() - began
        if epoch % every and epoch != epochs:
            continue  # no validation this epoch: nothing to report
        metrics = {"epoch": epoch, "train_loss": float(loss), "val_loss": val_loss, "lr": lr,
                   "val_mAP50": 1.0 / (1.0 + val_loss), "val_mAP": 0.5 / (1.0 + val_loss), "train_s": train_s}
        tmp = tempfile.mkdtemp(prefix="cheap-ckpt-")
        try:
            if ctx.is_rank_zero:
                torch.save({"model": model.state_dict(), "epoch": epoch}, Path(tmp, "model.pt"))
            ctx.report(metrics, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _check_secret(spec: dict[str, Any], sha256: Any) -> None:
    import hashlib

    if sha256 and hashlib.sha256(str(spec.get("encryption_key", "")).encode()).hexdigest() != sha256:
        raise RuntimeError("test: the spec's encryption_key did not reach the trial")


def _hang_hook(ctx: WorkerContext, first_epoch: bool, step: int) -> None:
    hang_at = ctx.options.get("hang_at_step")
    if hang_at is None or not first_epoch or step != int(hang_at):
        return
    release = Path(ctx.options["hold_dir"], "release")
    while not release.exists():  # the hung step: no heartbeat, no report until released
        time.sleep(0.2)


def _test_hooks(ctx: WorkerContext, epoch: int) -> None:
    if ctx.options.get("record_node") and ctx.is_rank_zero:  # which Ray node ran this epoch (cluster tests)
        import ray

        with Path(ctx.results_dir, "nodes.txt").open("a") as out:
            out.write(f"{epoch} {ray.get_runtime_context().get_node_id()}\n")
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
