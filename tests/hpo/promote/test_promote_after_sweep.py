"""End to end: a real tiny Grounding DINO sweep (`launch_sweep`, Ray Train trials, MLflow tracking) ends with
its best trial promoted automatically: a `champion` alias on a registered ONNX model, its source run the best
trial's MLflow run. Slow (two real trainings on a private 2-CPU Ray cluster)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(600)]

ENGINE_HELPERS = Path(__file__).resolve().parents[2] / "gdino" / "engine" / "tiny_run.py"


def _tiny_run():
    spec = importlib.util.spec_from_file_location("gdino_tiny_run", ENGINE_HELPERS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_finished_sweep_promotes_its_best_trial_to_champion(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from gdino.data.generate import GenerateOptions, generate
    from hpo.api import launch_sweep

    monkeypatch.setenv("GDINO_DATA_CACHE", str(tmp_path / "cache"))
    helpers = _tiny_run()
    data = tmp_path / "shapes"
    generate(GenerateOptions(out_dir=data, num_train=8, num_val=4, num_infer=2, image_size=64, num_classes=3,
                             max_objects=2, seed=3))
    spec = helpers.tiny_spec(data, helpers.make_tiny_bert(tmp_path / "tiny-bert"), tmp_path / "results")
    spec["export"] = {"input_height": 64, "input_width": 64}
    spec["automl"] = {"algorithm": "asha", "max_epochs": 2, "reduction_factor": 2, "max_recommendations": 2,
                      "max_trials": 2, "hyperparameters": ["train.optim.lr"], "seed": 5,
                      "registered_model_name": "gdino_e2e"}
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec["mlflow"] = {"tracking_uri": uri, "experiment_name": "e2e", "system_metrics": False}

    result = launch_sweep(spec, sweep_dir=tmp_path / "sweep", num_cpus=2, object_store_memory=200_000_000)

    assert result.best_trial_id is not None
    assert getattr(result, "promotion_error", None) is None, result.promotion_error
    assert f"promoted trial {result.best_trial_id}" in result.promotion
    best_model = tmp_path / "results" / "best_model"
    assert (best_model / "model.onnx").is_file() and (best_model / "model.pth").is_file()
    client = MlflowClient(tracking_uri=uri)
    champion = client.get_model_version_by_alias("gdino_e2e", "champion")
    assert champion.tags["trial_id"] == result.best_trial_id
    assert champion.tags["sweep_id"] == "sweep"
    source = client.get_run(champion.tags["source_run_id"])  # the best trial's own MLflow run
    assert source.data.tags["trial_id"] == result.best_trial_id
