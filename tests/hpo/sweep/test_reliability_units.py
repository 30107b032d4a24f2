"""Units of issue 12's reliability parts, without a Ray cluster: heartbeats and liveness, Ray's temp dir
length, out-of-memory failures and fail-fast, secrets kept out of the sweep dir."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gdino.engine.heartbeat import HeartbeatMeter
from hpo.secrets import SecretMissing, env_name, require_secrets, restore_secrets, secret_env, split_secrets
from hpo.sweep.cluster import AF_UNIX_MAX_BYTES, RAY_SOCKET_SUFFIX_BYTES, private_temp_dir
from hpo.sweep.heartbeat import Liveness
from hpo.sweep.monitor import Budgets, SweepMonitor, is_out_of_memory


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------ heartbeats
def test_meter_sends_every_n_steps_or_seconds_with_loss_and_epoch_eta():
    clock, beats = FakeClock(), []
    meter = HeartbeatMeter(beats.append, every_n_steps=10, every_s=5.0, clock=clock)
    meter.phase("build")
    assert [b["phase"] for b in beats] == ["build"]  # phases go out at once
    for step in range(1, 21):
        clock.now += 0.1
        meter.train_step(epoch=1, epoch_step=step, epoch_steps=100, loss=2.0)
    assert [b["step"] for b in beats[1:]] == [10, 20]  # every 10 steps while steps are fast
    assert beats[-1]["loss"] == pytest.approx(2.0) and beats[-1]["epoch_steps"] == 100
    assert beats[-1]["eta_s"] == pytest.approx(80 * 0.1, rel=0.05)  # 80 steps left at 0.1 s each
    clock.now += 6.0  # one slow step: due by time
    meter.train_step(epoch=1, epoch_step=21, epoch_steps=100, loss=2.0)
    assert beats[-1]["step"] == 21
    meter.train_step(epoch=2, epoch_step=1, epoch_steps=100, global_step=500)
    assert meter.step == 500 and meter.epoch == 2  # a resumed run keeps its global step


def test_a_sink_that_raises_never_stops_training():
    def broken(beat: dict) -> None:
        raise ConnectionError("driver gone")

    meter = HeartbeatMeter(broken, every_n_steps=1)
    meter.phase("build")
    meter.train_step(epoch=1, epoch_step=1)
    assert meter.progress == 2


def test_liveness_moves_with_progress_not_with_repeated_beats():
    clock = FakeClock()
    live = Liveness(clock)
    live.beat({"progress": 1})
    clock.now = 100.0
    live.beat({"progress": 1})  # the same counter again: no progress
    assert live.idle_s() == 100.0
    live.beat({"progress": 2})
    assert live.idle_s() == 0.0
    clock.now = 150.0
    live.reported()
    assert live.idle_s() == 0.0 and "phase" in live.describe()


def test_before_the_first_beat_the_start_grace_applies():
    clock = FakeClock()
    live = Liveness(clock)
    clock.now = 60.0
    assert not live.stale(10, start_grace_s=120)  # e.g. Train still starting its worker group
    clock.now = 121.0
    assert live.stale(10, start_grace_s=120)
    live.beat({"progress": 1})
    clock.now = 132.0
    assert live.stale(10, start_grace_s=120)  # once training runs, the stale timeout alone


# ------------------------------------------------------------------ Ray's temp dir
@pytest.mark.parametrize("length", [8, 20, 30, 40, 60, 120, 400])
def test_ray_temp_dir_always_leaves_room_for_rays_socket_paths(length):
    sweep_dir = Path("/tmp") / f"gd{length}{'d' * length}"[: max(1, length - 5)]  # ~`length` characters
    chosen = private_temp_dir(sweep_dir)
    try:
        assert len(chosen.encode()) + RAY_SOCKET_SUFFIX_BYTES <= AF_UNIX_MAX_BYTES
        assert Path(chosen).is_dir()
        if len(str(sweep_dir / "ray")) <= 37:
            assert chosen == str(sweep_dir / "ray")  # short enough: beside the sweep
        else:
            assert chosen.startswith("/tmp/gdray-")  # else a fresh one under /tmp
    finally:
        import shutil

        shutil.rmtree(sweep_dir, ignore_errors=True)
        shutil.rmtree(chosen, ignore_errors=True)


def test_the_issue_example_results_dir_gets_a_short_temp_dir(tmp_path):
    # /data/runs/exp1/automl/sweep_..../ray is 52 characters: Ray's sockets would need ~118
    sweep_dir = Path("/data/runs/exp1/automl/sweep_bohb_20261202-082205")
    chosen = private_temp_dir(sweep_dir) if not sweep_dir.exists() else None
    assert chosen is not None and chosen.startswith("/tmp/gdray-") and len(chosen) < 40
    Path(chosen).rmdir()


# ------------------------------------------------------------------ out of memory
@pytest.mark.parametrize("text", [
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
    "MemoryError: test: lr=0.1 > 0.05 does not fit in memory",
    "ray.exceptions.OutOfMemoryError: Task was killed due to the node running low on memory.",
    "RuntimeError: [enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory",
])
def test_out_of_memory_errors_are_recognised(text):
    assert is_out_of_memory(text)


def test_other_errors_are_not_out_of_memory():
    assert not is_out_of_memory("RuntimeError: dataset is empty")


@dataclass
class FakeTrial:
    trial_id: str
    config: dict[str, Any]
    error_file: str
    status: str = "ERROR"
    extra: dict = field(default_factory=dict)


def _fail(monitor: SweepMonitor, tmp_path: Path, trial_id: str, lr: float, text: str) -> None:
    error = tmp_path / f"{trial_id}.txt"
    error.write_text(f"Traceback (most recent call last):\n  ...\n{text}\n")
    trial = FakeTrial(trial_id, {"train.optim.lr": lr}, str(error))
    monitor.on_trial_start(0, [], trial)
    monitor.on_trial_error(0, [], trial)


def test_oom_of_different_configs_is_not_fail_fasts_same_error(tmp_path, capsys):
    monitor = SweepMonitor(str(tmp_path), "val_mAP50", "max", Budgets(fail_fast_trials=3), 1.0)
    for i, lr in enumerate([0.4, 0.2, 0.1]):
        _fail(monitor, tmp_path, f"t{i}", lr, "MemoryError: does not fit")
    assert monitor.stop_reason is None
    errors = [json.loads(line) for line in (tmp_path / "ledger.jsonl").read_text().splitlines()
              if '"error"' in line and '"event": "error"' in line]
    assert [e["config"] for e in errors] == [{"train.optim.lr": lr} for lr in (0.4, 0.2, 0.1)]
    assert all(e["out_of_memory"] for e in errors)
    assert "trial t0 ran out of memory" in capsys.readouterr().out


def test_the_same_non_oom_error_still_stops_the_sweep(tmp_path):
    monitor = SweepMonitor(str(tmp_path), "val_mAP50", "max", Budgets(fail_fast_trials=2), 1.0)
    for i, lr in enumerate([0.4, 0.2]):
        _fail(monitor, tmp_path, f"t{i}", lr, "RuntimeError: dataset is empty")
    assert monitor.stop_reason == "fail_fast"


# ------------------------------------------------------------------ secrets
SPEC = {"encryption_key": "tlt-key-123", "results_dir": "/r",
        "mlflow": {"tracking_uri": "http://alice:pw-456@127.0.0.1:5000", "experiment_name": "x"},
        "dataset": {"train_data_sources": [{"image_dir": "s3://bob:pw-789@bucket/images", "json_file": "/a.json"}]},
        "train": {"optim": {"lr": 0.1}}}


def test_split_masks_every_secret_and_records_its_path():
    redacted, secrets = split_secrets(SPEC)
    text = json.dumps(redacted)
    assert not any(s in text for s in ("tlt-key-123", "pw-456", "pw-789"))
    assert set(secrets) == {"encryption_key", "mlflow.tracking_uri", "dataset.train_data_sources.0.image_dir"}
    assert redacted["train"] == SPEC["train"] and redacted["results_dir"] == "/r"
    env = secret_env(secrets)
    assert env["TAO_ENCRYPTION_KEY"] == "tlt-key-123" and env["MLFLOW_TRACKING_URI"].endswith("@127.0.0.1:5000")
    assert restore_secrets(redacted, sorted(secrets), env) == SPEC


def test_missing_secret_is_a_typed_error_naming_the_variable_and_the_spec_option():
    with pytest.raises(SecretMissing) as err:
        require_secrets(["encryption_key"], "/sweeps/s1", environ={})
    assert "TAO_ENCRYPTION_KEY" in str(err.value) and "-e spec.yaml" in str(err.value)
    assert require_secrets(["encryption_key"], "/s", spec_secrets={"encryption_key": "k"}, environ={}) == \
        {"encryption_key": "k"}
    assert env_name("dataset.train_data_sources.0.image_dir") == "GDINO_SECRET_DATASET_TRAIN_DATA_SOURCES_0_IMAGE_DIR"


def test_the_lightning_callback_beats_through_setup_training_and_validation(tmp_path):
    import pytorch_lightning as pl
    import torch

    from gdino.engine.heartbeat import HeartbeatCallback

    class Tiny(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.TensorDataset(torch.randn(32, 4), torch.randn(32, 1))
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    beats: list[dict] = []
    meter = HeartbeatMeter(beats.append, every_n_steps=2, every_s=1e9)
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         callbacks=[HeartbeatCallback(meter)], default_root_dir=str(tmp_path))
    trainer.fit(Tiny(), loader, loader)

    phases = [b["phase"] for b in beats]
    assert phases[0] == "setup" and "train" in phases and "validate" in phases
    train_beats = [b for b in beats if b["phase"] == "train" and b["epoch_step"]]
    assert train_beats[-1]["step"] == 16 and train_beats[-1]["epoch"] == 2  # global step over 2 x 8 batches
    assert train_beats[-1]["epoch_steps"] == 8 and train_beats[-1]["loss"] is not None
    progress = [b["progress"] for b in beats]
    assert progress == sorted(progress) and len(set(progress)) == len(progress)  # always moving
