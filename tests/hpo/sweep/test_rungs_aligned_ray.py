"""Rungs and validation agree: a bohb sweep whose spec validates every 3rd epoch (`validation_interval: 3`)
still gets a report at every rung budget (1, 2, 4), so its KDE model is fitted on results at the low
rungs; before, the first report came at epoch 3, past the rungs, and bohb sampled like random Hyperband."""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(600)]

ray = pytest.importorskip("ray")

from hpo.sweep.ledger import Ledger  # noqa: E402


def test_bohb_with_validation_interval_3_fits_its_model_at_the_rung_budgets(cluster, tmp_path, capsys):
    from gdino.spec import load_spec
    from hpo.api import _plan_from_algorithm
    from hpo.sweep.engine import SweepSetup, run_sweep

    cfg = load_spec({"results_dir": str(tmp_path / "results"),
                     "train": {"num_epochs": 4, "validation_interval": 3, "optim": {"lr": 0.01}},
                     "automl": {"algorithm": "bohb", "max_epochs": 4, "reduction_factor": 2, "seed": 3,
                                "min_points_in_model": 2, "hyperparameters": ["train.optim.lr"],
                                "max_concurrent": 2}})
    plan, _ = _plan_from_algorithm(cfg, cfg.automl, "val_mAP50", "max")
    assert plan.rung_milestones == [1, 2, 4]
    setup = SweepSetup(sweep_dir=str(tmp_path / "bohb"), base_spec=cfg.model_dump(mode="json"),
                       automl=cfg.automl.model_dump(mode="json"), backend="function",
                       train_fn="hpo.testing:quadratic_train_fn")

    result = run_sweep(setup, plan, cluster, progress=False)

    out = capsys.readouterr().out
    assert "train.validation_interval=3 -> 1: every rung budget (1, 2, 4) needs a validation" in out
    assert "epochs per trial: 1..4 (bohb fidelity" in out
    assert result.stop_reason == "trials" and len(result.trials) == plan.num_samples == 6
    reported = {int(e["epoch"]) for e in Ledger(setup.sweep_dir, "val_mAP50", "max").events()
                if e["event"] == "result"}
    assert {1, 2, 4} <= reported  # a report at every rung budget
    # the searcher state Tune saved (what a resume would restore): the KDE model's fits
    [saved] = list(Path(setup.sweep_dir, "tune", "experiment").glob("searcher-state-*.pkl"))
    fits = pickle.loads(saved.read_bytes())["model_fits"]
    assert fits, "the KDE model was never fitted"
    assert {budget for _, budget, _ in fits} <= {1, 2, 4}
    assert all(points >= 2 for _, _, points in fits)
