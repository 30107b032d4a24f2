"""End to end: `launch_sweep` of the tiny Grounding DINO preset with ASHA, each trial a Ray Train run of
gdino.engine.train.fit under RayDDPStrategy on a private 2-CPU cluster, tracked in MLflow."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(600)]

TINY_RUN = Path(__file__).resolve().parents[2] / "gdino" / "engine" / "tiny_run.py"  # the tiny preset helpers


def _engine_fixtures():
    spec = importlib.util.spec_from_file_location("gdino_engine_tiny_run", TINY_RUN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_asha_sweep_of_the_tiny_preset_runs_train_trials(tmp_path):
    from gdino.data.generate import GenerateOptions, generate
    from hpo.api import launch_sweep, sweep_status

    fixtures = _engine_fixtures()
    data = tmp_path / "shapes"
    generate(GenerateOptions(out_dir=data, num_train=8, num_val=4, num_infer=2, image_size=64, num_classes=3,
                             max_objects=2, seed=3))
    spec = fixtures.tiny_spec(data, fixtures.make_tiny_bert(tmp_path / "tiny-bert"), tmp_path / "results")
    spec["automl"] = {"algorithm": "asha", "max_epochs": 2, "reduction_factor": 2, "max_recommendations": 2,
                      "max_trials": 2, "hyperparameters": ["train.optim.lr"], "seed": 5}

    result = launch_sweep(spec, sweep_dir=tmp_path / "sweep", num_cpus=2, object_store_memory=200_000_000,
                          promote=False)  # promotion (export, registry) has its own tests

    assert result.stop_reason == "trials"
    assert [t["state"] for t in result.trials] == ["TERMINATED", "TERMINATED"]
    assert result.best_trial_id is not None and result.best_epoch >= 1
    assert Path(result.best_checkpoint, "model.ckpt").is_file()  # a Lightning checkpoint from rank 0
    trial_spec = Path(result.sweep_dir, "trials", result.best_trial_id, "spec.yaml").read_text()
    assert "num_epochs: 2" in trial_spec
    assert sweep_status(result.sweep_dir).best_trial_id == result.best_trial_id
