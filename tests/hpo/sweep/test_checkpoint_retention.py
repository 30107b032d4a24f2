"""Which checkpoints a trial keeps, and when (hpo.sweep.checkpoints; docs/ARCHITECTURE.md "Checkpoints and
disk"). Real files, real torch checkpoints, a real ledger; no Ray."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hpo.sweep.checkpoints import (
    TrialCheckpoints,
    directory_bytes,
    disk_budget_exceeded,
    drop_optimizer_state,
    publish_directory,
    tidy_after_sweep,
    write_score,
)
from hpo.sweep.ledger import Ledger

WEIGHTS = 10_000  # floats per fake checkpoint


def fake_checkpoint(folder: Path, seed: int) -> Path:
    """A Lightning-shaped model.ckpt: weights plus Adam-like state twice their size."""
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    weights = torch.randn(WEIGHTS, generator=g)
    torch.save({"state_dict": {"w": weights}, "epoch": seed,
                "optimizer_states": [{"exp_avg": weights.clone(), "exp_avg_sq": weights.clone()}],
                "lr_schedulers": [{"last_epoch": seed}]}, folder / "model.ckpt")
    return folder


def has_optimizer(folder: str | Path) -> bool:
    return "optimizer_states" in torch.load(str(Path(folder) / "model.ckpt"), weights_only=False)


def test_publish_is_all_or_nothing_and_replaces_a_repeated_epoch(tmp_path):
    source = fake_checkpoint(tmp_path / "src", 1)
    target = publish_directory(source, tmp_path / "checkpoints" / "epoch_0001")
    assert (target / "model.ckpt").read_bytes() == (source / "model.ckpt").read_bytes()
    fake_checkpoint(source, 2)  # a resumed trial reports epoch 1 again
    publish_directory(source, target)
    assert torch.load(str(target / "model.ckpt"), weights_only=False)["epoch"] == 2
    assert [p.name for p in target.parent.iterdir()] == ["epoch_0001"]  # no staging dirs left behind


def test_nothing_is_pruned_before_tune_acknowledged_a_newer_checkpoint(tmp_path):
    """The race of issue 12 part 7: epoch 1 must survive while Tune may still copy it, i.e. until the
    report of epoch 2 returned."""
    kept = TrialCheckpoints(keep=1, mode="max", prune=True)
    e1 = str(fake_checkpoint(tmp_path / "epoch_0001", 1))
    kept.acknowledged(e1, 0.5)
    e2 = str(fake_checkpoint(tmp_path / "epoch_0002", 2))  # published, not yet acknowledged
    assert Path(e1).is_dir() and has_optimizer(e1)
    kept.acknowledged(e2, 0.4)  # worse than epoch 1: epoch 1 stays as the best, epoch 2 as the latest
    assert Path(e1).is_dir() and not has_optimizer(e1) and has_optimizer(e2)
    e3 = str(fake_checkpoint(tmp_path / "epoch_0003", 3))
    kept.acknowledged(e3, 0.3)
    assert not Path(e2).exists() and Path(e1).is_dir() and has_optimizer(e3)
    kept.finished()
    assert not has_optimizer(e3) and not has_optimizer(e1)


def test_a_resumed_trial_prunes_what_it_kept_before_its_pause(tmp_path):
    """A paused trial resumes in a new process: keep_checkpoints spans both runs, by the recorded scores."""
    folder = tmp_path / "checkpoints"
    for epoch, score in ((1, 0.9), (2, 0.1)):
        write_score(fake_checkpoint(tmp_path / "src", epoch), score)
        publish_directory(tmp_path / "src", folder / f"epoch_{epoch:04d}")
    resumed = TrialCheckpoints(keep=1, mode="max", prune=True)
    resumed.adopt(folder)
    e3 = str(fake_checkpoint(folder / "epoch_0003", 3))
    resumed.acknowledged(e3, 0.5)
    assert sorted(p.name for p in folder.iterdir()) == ["epoch_0001", "epoch_0003"]  # the best + the latest


def test_train_backend_retention_never_deletes(tmp_path):
    kept = TrialCheckpoints(keep=1, mode="min", prune=False)  # Ray Train prunes its own
    paths = [str(fake_checkpoint(tmp_path / f"c{i}", i)) for i in range(3)]
    for i, path in enumerate(paths):
        kept.acknowledged(path, float(i))
    assert all(Path(p).is_dir() for p in paths)
    assert [has_optimizer(p) for p in paths] == [False, False, True]
    gone = tmp_path / "gone"
    assert drop_optimizer_state(gone) == 0  # pruned meanwhile: nothing to do, no error


def test_dropping_optimizer_state_keeps_the_weights(tmp_path):
    folder = fake_checkpoint(tmp_path / "c", 7)
    before = torch.load(str(folder / "model.ckpt"), weights_only=False)["state_dict"]["w"]
    saved = drop_optimizer_state(folder)
    assert saved >= 2 * WEIGHTS * 4  # the two moments
    after = torch.load(str(folder / "model.ckpt"), weights_only=False)
    assert torch.equal(after["state_dict"]["w"], before) and after["epoch"] == 7
    assert drop_optimizer_state(folder) == 0


def _trial(ledger: Ledger, sweep: Path, trial_id: str, values: list[float], complete: bool) -> list[str]:
    ledger.append("start", trial_id, config={"lr": 0.1})
    paths = []
    for epoch, value in enumerate(values, start=1):
        path = str(fake_checkpoint(sweep / "trials" / trial_id / "checkpoints" / f"epoch_{epoch:04d}", epoch))
        ledger.append("result", trial_id, epoch=epoch, value=value, checkpoint=path)
        paths.append(path)
    if complete:
        ledger.append("complete", trial_id)
    return paths


@pytest.mark.parametrize("delete_intermediate", [True, False])
def test_after_the_sweep_finished_trials_keep_weights_and_only_the_best_keeps_any(tmp_path, delete_intermediate):
    ledger = Ledger(tmp_path, "val_mAP50", "max")
    best = _trial(ledger, tmp_path, "best", [0.2, 0.6, 0.5], complete=True)
    other = _trial(ledger, tmp_path, "other", [0.3], complete=True)
    paused = _trial(ledger, tmp_path, "paused", [0.1, 0.15], complete=False)
    tune_copy = fake_checkpoint(tmp_path / "tune" / "exp" / "run_trial_other_00001" / "checkpoint_000000", 0)

    freed = tidy_after_sweep(tmp_path, "val_mAP50", "max", multi_fidelity=False,
                             delete_intermediate=delete_intermediate)

    assert freed > 0 and not tune_copy.exists()
    assert Path(paused[-1]).is_dir() and has_optimizer(paused[-1]) and not Path(paused[0]).exists()
    if delete_intermediate:
        assert [Path(p).is_dir() for p in best] == [False, True, False]  # the best epoch's: the promoted one
        assert not any(Path(p).exists() for p in other)
    else:
        assert all(Path(p).is_dir() for p in best + other)
    assert not any(has_optimizer(p) for p in best + other if Path(p).is_dir())


def test_disk_budget_message_counts_the_room_for_the_next_checkpoint(tmp_path):
    fake_checkpoint(tmp_path / "c", 1)
    used_gb = directory_bytes(tmp_path) / 1e9
    assert disk_budget_exceeded(tmp_path, None) is None
    assert disk_budget_exceeded(tmp_path, used_gb * 3) is None
    message = disk_budget_exceeded(tmp_path, used_gb * 3, headroom=used_gb * 2.5)
    assert message is not None and "automl.max_disk_gb" in message and str(tmp_path) in message


def test_the_monitor_stops_the_sweep_before_the_disk_budget_is_spent(tmp_path):
    """A sweep dir at 1 checkpoint with room for less than one more: the monitor sets max_disk_gb as the stop
    reason (BudgetStopper then stops every trial, the summary prints the message)."""
    from types import SimpleNamespace

    from hpo.sweep.monitor import Budgets, BudgetStopper, SweepMonitor, read_status

    checkpoint = fake_checkpoint(tmp_path / "trials" / "t1" / "checkpoints" / "epoch_0001", 1)
    one = directory_bytes(checkpoint) / 1e9
    roomy = SweepMonitor(str(tmp_path), "val_mAP50", "max", Budgets(max_disk_gb=one * 3), 0.0)
    trial = SimpleNamespace(trial_id="t1", config={})
    roomy.on_trial_result(0, [], trial, {"val_mAP50": 0.1, "epoch": 1, "checkpoint_path": str(checkpoint)})
    assert roomy.stop_reason is None

    tight = SweepMonitor(str(tmp_path), "val_mAP50", "max", Budgets(max_disk_gb=one * 1.5), 0.0)
    tight.on_trial_result(0, [], trial, {"val_mAP50": 0.1, "epoch": 1, "checkpoint_path": str(checkpoint)})
    assert tight.stop_reason == "max_disk_gb" and "automl.max_disk_gb" in tight.stop_detail
    assert BudgetStopper(tight).stop_all() and read_status(tmp_path)["stop_reason"] == "max_disk_gb"
