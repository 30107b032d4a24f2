"""A sweep of the real tiny Grounding DINO preset that starts from a pretrained checkpoint (issue 11 part 6
c, d): architecture parameters leave the space with a printed reason, the checkpoint's zero-shot
val_mAP50 is measured first (a Ray task) and lands on the MLflow parent run as `baseline_val_mAP50`, the
spec as written is the first trial, and the top trials are re-evaluated on the test data with both scores in
the report. Slow: one plain 1-epoch training (the "pretrained" checkpoint) and a 2-trial sweep."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(900)]

TINY_RUN = Path(__file__).resolve().parents[2] / "gdino" / "engine" / "tiny_run.py"


def _tiny_run():
    spec = importlib.util.spec_from_file_location("gdino_engine_tiny_run_baseline", TINY_RUN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pretrained_start_measures_zero_shot_and_retests_the_top_trials(tmp_path, monkeypatch, capsys):
    from mlflow import MlflowClient

    from gdino.data.generate import GenerateOptions, generate
    from gdino.engine.train import fit
    from gdino.spec import load_spec
    from hpo.api import launch_sweep
    from hpo.promote import retest_top_trials
    from hpo.sweep.baseline import ZERO_SHOT, ZERO_SHOT_DIR, ZERO_SHOT_METRIC
    from hpo.sweep.engine import SweepSetup

    monkeypatch.setenv("GDINO_DATA_CACHE", str(tmp_path / "cache"))
    helpers = _tiny_run()
    data = tmp_path / "shapes"
    generate(GenerateOptions(out_dir=data, num_train=8, num_val=4, num_infer=2, image_size=64, num_classes=3,
                             max_objects=2, seed=3))
    text = helpers.make_tiny_bert(tmp_path / "tiny-bert")
    spec = helpers.tiny_spec(data, text, tmp_path / "pretrain")
    spec["train"]["num_epochs"] = 1
    fit(load_spec(spec), enable_progress_bar=False)
    checkpoint = sorted((tmp_path / "pretrain").rglob("model_epoch_*.pth"))[-1]

    spec = helpers.tiny_spec(data, text, tmp_path / "results")
    spec["train"].update({"num_epochs": 1, "pretrained_model_path": str(checkpoint)})
    spec["automl"] = {"algorithm": "random", "max_recommendations": 2, "seed": 5, "max_concurrent": 1,
                      "max_epochs": 2,  # each trial's epoch budget (the smallest allowed)
                      "hyperparameters": ["train.optim.lr", "model.enc_layers"]}
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec["mlflow"] = {"tracking_uri": uri, "experiment_name": "pretrained", "system_metrics": False}

    result = launch_sweep(spec, sweep_dir=tmp_path / "sweep", num_cpus=2,
                          object_store_memory=200_000_000, promote=False)
    out = capsys.readouterr().out

    # (c) the architecture parameter is not searched, and the line says why
    assert f"not searched: model.enc_layers: starting from the pretrained checkpoint {checkpoint}" in out
    assert all("model.enc_layers" not in t["config"] for t in result.trials)
    # (c) zero-shot measured before the trials, kept with the sweep and on the parent run
    zero_shot = json.loads((tmp_path / "sweep" / "sweep.json").read_text())["baselines"][ZERO_SHOT]
    assert 0.0 <= zero_shot <= 1.0 and (tmp_path / "sweep" / ZERO_SHOT_DIR / "results.json").is_file()
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("pretrained")
    parent = client.search_runs([experiment.experiment_id], filter_string="tags.`gdino.run_type` = 'sweep'")[0]
    assert parent.data.metrics[ZERO_SHOT_METRIC] == pytest.approx(zero_shot)
    # (a) the spec as written ran first
    (baseline,) = [t for t in result.trials if t["baseline"]]
    assert baseline["config"]["train.optim.lr"] == 1e-3
    assert f"vs baseline ({ZERO_SHOT}, " in out
    # (d) the top trials on the test data, both scores in the report
    rows = retest_top_trials(SweepSetup.load(result.sweep_dir), tmp_path / "results")
    assert [r["trial_id"] for r in rows][0] == result.best_trial_id and len(rows) == 2
    assert isinstance(rows[0]["test_AP50"], float) and rows[0]["val"] is not None
    # a trial whose recorded checkpoint was pruned says so in its row instead of failing the promotion
    assert all(isinstance(r["test_AP50"], float) or r.get("error") for r in rows)
    page = (tmp_path / "results" / "report" / "report.html").read_text()
    assert "validation and test" in page and "vs zero-shot" in page
