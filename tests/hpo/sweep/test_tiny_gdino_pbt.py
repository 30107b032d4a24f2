"""End to end: a PBT sweep of the tiny Grounding DINO preset, each member a Ray Train run of
gdino.engine.train.fit (gdino_train_fn), tracked in MLflow. An exploited member keeps a population
architecture (model.dec_layers is never perturbed), trains on with its *explored* learning rate (not the
donor's, which Lightning's optimizer restore would bring back) and its MLflow run records the new
config as a segment."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(1500)]

TINY_RUN = Path(__file__).resolve().parents[2] / "gdino" / "engine" / "tiny_run.py"  # the tiny preset helpers


def _engine_fixtures():
    spec = importlib.util.spec_from_file_location("gdino_engine_tiny_run", TINY_RUN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pbt_sweep_of_the_tiny_preset_exploits_with_the_explored_config(tmp_path):
    import mlflow

    from gdino.data.generate import GenerateOptions, generate
    from hpo.api import launch_sweep

    fixtures = _engine_fixtures()
    data = tmp_path / "shapes"
    generate(GenerateOptions(out_dir=data, num_train=8, num_val=4, num_infer=2, image_size=64, num_classes=3,
                             max_objects=2, seed=3))
    spec = fixtures.tiny_spec(data, fixtures.make_tiny_bert(tmp_path / "tiny-bert"), tmp_path / "results")
    spec["train"]["optim"]["lr_decay"] = 1.0  # a flat schedule: the reported lr is the configured one
    spec["automl"] = {"algorithm": "pbt", "population_size": 2, "max_epochs": 3, "eval_interval": 1,
                      "hyperparameters": ["train.optim.lr", "model.dec_layers"], "seed": 5,
                      "range_override": [{"parameter": "model.dec_layers", "valid_min": 2, "valid_max": 3}]}
    spec["mlflow"] = {"system_metrics": False}

    result = launch_sweep(spec, sweep_dir=tmp_path / "sweep", num_cpus=2, object_store_memory=200_000_000,
                          promote=False)

    assert result.stop_reason == "trials"
    assert [t["state"] for t in result.trials] == ["TERMINATED", "TERMINATED"]
    assert [t["last_epoch"] for t in result.trials] == [3, 3]
    initial_layers = {t["config"]["model.dec_layers"] for t in result.trials}

    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("grounding_dino").experiment_id],
                              filter_string="tags.`gdino.run_type` = 'trial'")
    exploited = [r for r in runs if "segment1.train.optim.lr" in r.data.params]
    assert exploited, "a member must have been exploited (2 members, 3 perturbation points)"
    for run in exploited:
        params = run.data.params
        assert int(params["segment1.model.dec_layers"]) in initial_layers  # an architecture of the population
        new_lr, start = float(params["segment1.train.optim.lr"]), int(params["segment1.from_epoch"])
        lrs = {int(m.step): m.value for m in client.get_metric_history(run.info.run_id, "lr")}
        after = [lr for epoch, lr in lrs.items() if epoch > start]
        assert after and after[-1] == pytest.approx(new_lr, rel=1e-6)  # the explored lr, not the donor's
