"""Budget combinations that cannot work are typed errors naming the keys (before Ray starts); the plan's
epoch line; validation aligned with the rungs; PBT's explore keeps the architecture of each member."""
from __future__ import annotations

import numpy as np
import pytest
from algorithms_testlib import build, simulate, small_space

from gdino.errors import SpecError
from hpo.algorithms.budget import aligned_validation_interval, epoch_plan_line
from hpo.space import trial_rng

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("name", ["asha", "hyperband", "bohb", "dehb", "hyperband_es"])
def test_max_epochs_below_the_reduction_factor_names_both_keys(name):
    # was: ValueError: min() arg is an empty sequence (asha) / an empty plan of 0 trials (hyperband)
    with pytest.raises(SpecError) as err:
        build(name, max_epochs=2, reduction_factor=3)
    text = str(err.value)
    assert err.value.key == "automl.max_epochs"
    assert "automl.max_epochs=2" in text and "automl.reduction_factor=3" in text
    assert "set automl.max_epochs=3 or more" in text  # what would fix it


def test_pbt_interval_not_below_the_trial_budget_is_refused():
    with pytest.raises(SpecError, match="no member would ever be exploited") as err:
        build("pbt", max_epochs=3, eval_interval=10)
    assert err.value.key == "automl.eval_interval"


def test_hyperband_es_that_could_never_stop_a_trial_is_refused():
    with pytest.raises(SpecError) as err:
        build("hyperband_es", max_epochs=3, reduction_factor=3, min_early_stop_epochs=3)
    assert err.value.key == "automl.min_early_stop_epochs"


@pytest.mark.parametrize("name", ["asha", "hyperband"])
def test_the_smallest_valid_budget_builds_a_plan(name):
    alg = build(name, max_epochs=2, reduction_factor=2)
    assert alg.budgets[0] == 1 and alg.trial_epochs == 2


def test_the_epoch_line_says_what_a_trial_trains_and_what_it_replaces():
    line = epoch_plan_line(build("bohb", max_epochs=27), spec_num_epochs=50)
    assert line.startswith("epochs per trial: 1..27 (bohb fidelity, automl.max_epochs=27; rungs 1, 3, 9, 27")
    assert "train.num_epochs=50 from the spec is replaced" in line
    single = epoch_plan_line(build("random", max_epochs=12, space=small_space().without(["train.num_epochs"])), 12)
    assert single == "epochs per trial: 12 (random: automl.max_epochs=12)"
    assert epoch_plan_line(build("random"), 50).startswith("epochs per trial: searched")


def test_a_bohb_plan_whose_model_cannot_fit_says_so():
    line = epoch_plan_line(build("bohb", max_epochs=3, min_points_in_model=10), None)
    assert "model needs 10 results at one budget" in line


@pytest.mark.parametrize("interval, milestones, expected", [
    (2, [1, 3, 9], 1), (2, [2, 6, 18], 2), (4, [2, 6, 18], 2), (3, [3, 9, 27], 3), (5, [10, 20], 5), (1, [4], 1)])
def test_the_validation_interval_lands_on_every_rung(interval, milestones, expected):
    aligned = aligned_validation_interval(interval, milestones)
    assert aligned == expected and all(m % aligned == 0 for m in milestones)


# ------------------------------------------------------------------ PBT explore
def test_pbt_explore_never_changes_the_architecture_of_a_member():
    alg = build("pbt")
    rng = np.random.default_rng(0)
    for i in range(50):
        config = alg.space.sample_trial(3, i)
        explored = alg.scheduler._explore(dict(config))
        assert explored["model.dec_layers"] == config["model.dec_layers"]  # an ARCHITECTURE_PARAMS entry
    moved = [alg.space.perturb(alg.space.sample(rng), trial_rng(1, k))["train.optim.lr"] for k in range(5)]
    assert len(set(moved)) > 1  # optimizer parameters still move


def test_simulated_pbt_members_keep_their_architecture_through_exploits():
    alg, run = simulate("pbt")
    segments = alg.scheduler.segments or []
    assert segments, "the case must contain exploits"
    initial = {alg.searcher._trials[t.trial_id].config["model.dec_layers"] for t in run.trials.values()}
    for seg in segments:  # the exploited member takes its donor's weights, hence a donor's architecture:
        assert seg["config"]["model.dec_layers"] in initial  # never a new one the checkpoint cannot load
