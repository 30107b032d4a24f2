"""fit(): the tiny run learns, logs TAO's metrics and files, resumes from the latest checkpoint."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gdino.engine.callbacks import latest_checkpoint


def test_tiny_run_loss_falls_and_validation_metrics_are_logged(trained):
    _, trainer, losses = trained
    assert len(losses) == 3 and losses[-1] < losses[0]
    for key in ("val_loss", "val_mAP", "val_mAP50", "train_loss"):
        assert key in trainer.callback_metrics
    assert 0.0 <= float(trainer.callback_metrics["val_mAP50"]) <= 1.0


def test_status_json_and_tao_checkpoints(trained):
    cfg, _, _ = trained
    results = Path(cfg.results_dir)
    lines = [json.loads(line) for line in (results / "status.json").read_text().splitlines()]
    assert [l["status"] for l in lines] == ["STARTED", "RUNNING", "RUNNING", "RUNNING", "SUCCESS"]
    assert {"val_mAP", "val_mAP50", "val_loss"} <= set(lines[-2]["kpi"]) and lines[-2]["epoch"] == 2
    names = sorted(p.name for p in results.glob("model_epoch_*.pth"))
    assert names == ["model_epoch_000_step_00002.pth", "model_epoch_001_step_00004.pth",
                     "model_epoch_002_step_00006.pth"]
    assert latest_checkpoint(results).name == names[-1]


def test_training_resumes_from_the_latest_checkpoint(trained):
    from gdino.engine.train import fit

    cfg, _, _ = trained
    more = cfg.model_copy(update={"train": cfg.train.model_copy(update={"num_epochs": 4})})
    trainer = fit(more, enable_progress_bar=False)
    assert trainer.global_step == 8  # 6 steps restored + the 2 of epoch 4
    assert (Path(cfg.results_dir) / "model_epoch_003_step_00008.pth").is_file()


def test_fp16_on_cpu_is_refused(trained):
    from gdino.engine.train import _precision
    from gdino.errors import UnsupportedError

    cfg, _, _ = trained
    fp16 = cfg.model_copy(update={"train": cfg.train.model_copy(update={"precision": "fp16"})})
    with pytest.raises(UnsupportedError, match="fp16"):
        _precision(fp16, "cpu", "auto")


def test_cpu_preset_spec_is_valid_and_fits_its_image_size():
    from gdino.model.fields import check_model_config
    from gdino.spec import load_spec

    root = Path(__file__).resolve().parents[3]
    cfg = load_spec(root / "examples" / "tiny_cpu.yaml", action="train")
    check_model_config(cfg.model)
    side = max(cfg.dataset.augmentation.scales)
    tokens = sum(math.ceil(side / stride) ** 2 for stride in (8, 16, 32, 64))  # 4 levels: strides 8..64
    assert cfg.model.num_queries <= tokens and cfg.model.backbone == "resnet_18"
