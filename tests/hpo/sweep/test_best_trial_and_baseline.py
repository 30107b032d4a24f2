"""Real sweeps (private 2-CPU local Ray, the cheap trainable, function backend, SQLite MLflow) for the one
ranking rule (issue 12 part 5) and the baseline trial (issue 11 part 6): the printed, recorded (ledger and
MLflow parent run) and promoted best trial are one trial even when a trial stopped at a low rung scored
higher than every full-budget trial; the spec as written runs first, is marked everywhere, and wins (and
is what promotion picks) when nothing sampled beats it."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(600)]

ray = pytest.importorskip("ray")


CHEAP = "hpo.testing:quadratic_train_fn"


def _spec(tmp_path: Path, lr: float, **automl: Any) -> dict[str, Any]:
    return {"results_dir": str(tmp_path / "results"), "train": {"num_epochs": 4, "optim": {"lr": lr}},
            "automl": {"hyperparameters": ["train.optim.lr"], "max_concurrent": 2, "seed": 3, "promote": False,
                       "max_epochs": 4, **automl},
            "mlflow": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment_name": "rule",
                       "system_metrics": False}}


def _parent_run(tmp_path: Path, sweep_id: str) -> Any:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("rule")
    runs = client.search_runs([experiment.experiment_id],
                              filter_string=f"tags.sweep_id = '{sweep_id}' and tags.`gdino.run_type` = 'sweep'")
    assert len(runs) == 1
    return client, experiment, runs[0]


def _printed_best(out: str) -> str:
    found = re.findall(r"^best trial (\w+)", out, flags=re.M)
    assert found, out
    return found[-1]


def test_printed_recorded_and_promoted_best_are_one_trial_in_a_multi_fidelity_sweep(cluster, tmp_path, capsys):
    """Hyperband R=4, eta=2: bracket s=2 (rungs at 1, 2, 4 epochs) gets four slow learning rates, bracket
    s=1 (rungs at 2, 4) a fast one (0.05) and a moderate one (0.01). With crossing learning curves
    (`overfit`), 0.05 peaks at epoch 1 and loses its rung at epoch 2 to 0.01, which goes on to 4 epochs:
    the stopped trial's score is above every full-budget trial's, and must not be the sweep's best."""
    from gdino.spec import load_spec
    from hpo.api import _plan_from_algorithm, launch_sweep
    from hpo.promote import _best_trial
    from hpo.sweep.baseline import add_baseline_trial
    from hpo.sweep.engine import SweepSetup
    from hpo.sweep.ledger import Ledger

    cfg = load_spec(_spec(tmp_path, 0.003, algorithm="hyperband", max_epochs=4, reduction_factor=2,
                          range_override=[{"parameter": "train.optim.lr", "valid_min": 1e-4, "valid_max": 0.1}]))
    plan, space = _plan_from_algorithm(cfg, cfg.automl, "val_mAP50", "max")
    assert add_baseline_trial(plan, space) == {"train.optim.lr": 0.003, "__baseline__": True}
    plan.searcher.points_to_evaluate += [{"train.optim.lr": lr} for lr in (1e-3, 1.5e-3, 2e-3, 2.5e-3, 0.05, 0.01)]
    assert plan.num_samples == 7  # 4 + 2 bracket slots + the baseline outside the rungs

    result = launch_sweep(cfg, plan=plan, sweep_dir=tmp_path / "sweep", backend="function", train_fn=CHEAP,
                          train_fn_options={"overfit": 20.0}, promote=False)
    out = capsys.readouterr().out

    records = Ledger(result.sweep_dir, "val_mAP50", "max").trials()
    assert len(records) == 7 and all(r.state == "TERMINATED" for r in records.values())
    by_lr = {r.config["train.optim.lr"]: r for r in records.values()}
    full = [r for r in records.values() if r.last_epoch == 4]
    # the premise: a trial stopped at a lower rung scored above every full-budget trial
    assert by_lr[0.05].last_epoch == 2 and by_lr[0.05].score > max(r.score for r in full)
    # recorded in the ledger / the sweep result: the best full-budget trial
    best = max(full, key=lambda r: r.score)
    assert best is by_lr[0.01] and result.best_trial_id == best.trial_id
    # printed
    assert _printed_best(out) == best.trial_id
    # recorded on the MLflow parent run
    _, _, parent = _parent_run(tmp_path, "sweep")
    assert parent.data.tags["best_trial_id"] == best.trial_id
    assert parent.data.metrics["best_score"] == pytest.approx(best.score)
    # promoted (promotion's select step)
    assert _best_trial(SweepSetup.load(result.sweep_dir)).trial_id == best.trial_id

    # the baseline ran first, at the full budget, outside the rungs, and is marked everywhere
    (baseline,) = [r for r in records.values() if r.baseline]  # suggested first; Tune may start two at once
    assert baseline.config["train.optim.lr"] == 0.003 and baseline.last_epoch == 4
    assert result.baseline_trial_id == baseline.trial_id and not result.best_is_baseline
    assert parent.data.tags["baseline_trial_id"] == baseline.trial_id
    assert parent.data.tags["best_is_baseline"] == "false"
    report = (tmp_path / "results" / "report" / "report.html").read_text()
    assert f"{baseline.trial_id} (baseline)" in report and "vs spec as written" in report
    assert f"vs baseline (spec as written, {baseline.score:.4g})" in out
    assert "(baseline)" in out.split("== sweep:")[-1]  # the live table marks it too


def test_the_spec_as_written_wins_and_is_what_gets_promoted(cluster, tmp_path, capsys):
    """random search, 3 trials in all: the baseline is one of them (counted in the trial budget). The
    user's range override keeps every sampled learning rate far below the spec's own 0.05, which wins."""
    from mlflow import MlflowClient

    from hpo.api import launch_sweep
    from hpo.promote import _best_trial
    from hpo.sweep.engine import SweepSetup

    spec = _spec(tmp_path, 0.05, algorithm="random", max_recommendations=3,
                 range_override=[{"parameter": "train.optim.lr", "valid_min": 1e-4, "valid_max": 1e-3}])
    result = launch_sweep(spec, sweep_dir=tmp_path / "sweep", backend="function", train_fn=CHEAP, promote=False)
    out = capsys.readouterr().out

    assert len(result.trials) == 3  # the baseline counts in max_recommendations
    (first,) = [t for t in result.trials if t["baseline"]]
    assert first["config"]["train.optim.lr"] == 0.05
    assert result.best_trial_id == first["trial_id"] and result.best_is_baseline
    assert _best_trial(SweepSetup.load(result.sweep_dir)).trial_id == first["trial_id"]
    assert "the spec as written (the baseline trial) is the best" in out
    _, experiment, parent = _parent_run(tmp_path, "sweep")
    assert parent.data.tags["best_is_baseline"] == "true"
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    child = client.search_runs([experiment.experiment_id], filter_string=f"tags.trial_id = '{first['trial_id']}'")
    assert child[0].data.tags["baseline"] == "true"


def test_baseline_trial_false_runs_sampled_configs_only(cluster, tmp_path, capsys):
    from hpo.api import launch_sweep

    spec = _spec(tmp_path, 0.05, algorithm="random", max_recommendations=2, baseline_trial=False)
    result = launch_sweep(spec, sweep_dir=tmp_path / "sweep", backend="function", train_fn=CHEAP,
                          promote=False, tracking=False, progress=False)
    assert len(result.trials) == 2 and not any(t["baseline"] for t in result.trials)
    assert result.baseline_trial_id is None
    assert "baseline trial" not in capsys.readouterr().out
