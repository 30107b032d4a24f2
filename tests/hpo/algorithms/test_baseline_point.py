"""The baseline trial through every algorithm (issue 11 part 6 a): each one's searcher suggests the spec
as written first and then exactly what it would have suggested without it; Hyperband-style schedulers
run it outside their rungs as an extra trial, the others count it in their trial budget."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from gdino.config.automl import AutoMLConfig
from hpo.algorithms import make_algorithm
from hpo.algorithms.registry import ALGORITHMS
from hpo.algorithms.scoring import BASELINE_KEY
from hpo.space import build_search_space
from hpo.sweep.baseline import add_baseline_trial

OUTSIDE = {"hyperband", "bohb", "dehb", "hyperband_es"}


def _algorithm(name: str):
    automl = AutoMLConfig(algorithm=name, max_epochs=4, reduction_factor=2, max_recommendations=4,
                          population_size=3, eval_interval=2, hyperparameters=["train.optim.lr",
                                                                               "train.optim.weight_decay"])
    space = build_search_space({"train": {"optim": {"lr": 0.05, "weight_decay": 1e-4}}, "automl": automl})
    return make_algorithm(name, space, automl, "val_mAP50"), space


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_the_spec_as_written_is_suggested_first_then_the_usual_proposals(name, capsys):
    plain, _ = _algorithm(name)
    alg, space = _algorithm(name)
    plan = SimpleNamespace(searcher=alg.searcher, scheduler=alg.scheduler, num_samples=alg.num_samples)
    config = add_baseline_trial(plan, space)
    assert config == {"train.optim.lr": 0.05, "train.optim.weight_decay": 1e-4, BASELINE_KEY: True}
    assert space["train.optim.lr"].domain.contains(0.05)  # widened to hold the spec's value
    assert plan.searcher.suggest("base") == config
    if name == "bayesian":  # sequential (TAO): waits for the baseline, then models it as its first point
        assert plan.searcher.suggest("t1") is None
        plan.searcher.on_trial_complete("base", {"val_mAP50": 0.5, "epoch": 4})
        assert plan.searcher.observations()[1].tolist() == [0.5]
        assert space.is_feasible(plan.searcher.suggest("t1"))
    else:
        assert plan.searcher.suggest("t1") == plain.searcher.suggest("t1")  # no proposal index taken
        plan.searcher.on_trial_complete("base", {"val_mAP50": 0.5, "epoch": 4})  # every model takes it
    assert plan.num_samples == alg.num_samples + (1 if name in OUTSIDE else 0)
    assert "baseline trial: the spec as written runs first" in capsys.readouterr().out


def test_hyperband_runs_the_baseline_outside_its_brackets():
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import TrialScheduler

    alg, space = _algorithm("hyperband")
    scheduler = alg.scheduler
    base = SimpleNamespace(trial_id="base", config={"train.optim.lr": 0.05, BASELINE_KEY: True},
                           status=Trial.PENDING)
    other = SimpleNamespace(trial_id="t1", config={"train.optim.lr": 0.01}, status=Trial.PENDING)
    scheduler.on_trial_add(None, base)
    scheduler.on_trial_add(None, other)
    controller = SimpleNamespace(get_trials=lambda: [base, other])
    assert scheduler.choose_trial_to_run(controller) is base
    assert all("base" not in run.members for run in scheduler._runs)  # no rung slot taken
    for epoch in (1, 2, 4):  # never paused or stopped at a rung budget
        assert scheduler.on_trial_result(None, base, {"epoch": epoch, "val_mAP50": 0.1}) == TrialScheduler.CONTINUE
