"""The pieces behind the contract: TAO's bracket plan, synchronous rungs under direct scheduler calls
(stub trials, the way Ray tests its schedulers), scoring, learning curves, the registry and knobs."""
from __future__ import annotations

import pytest
from algorithms_testlib import ALL, METRIC, OBJECTIVE, build, simulate
from pydantic import ValidationError
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from gdino.config.automl import AutoMLConfig
from gdino.errors import SpecError
from hpo.algorithms import ALGORITHMS, make_algorithm
from hpo.algorithms.schedulers import Bracket, SyncHyperBand, hyperband_brackets, power_law_fit
from hpo.algorithms.scoring import TrialSummary, best_epoch, best_trial, metric_mode, trial_score
from hpo.algorithms.simulator import Simulator

pytestmark = pytest.mark.timeout(60)


# --- TAO's Hyperband plan -----------------------------------------------------------------------------
def test_tao_hyperband_plan_is_42_configs_and_234_epochs():
    brackets = hyperband_brackets(27, 3)
    assert [(b.sizes, b.budgets) for b in brackets] == [
        ((27, 9, 3, 1), (1, 3, 9, 27)), ((9, 3, 1), (3, 9, 27)), ((6, 2), (9, 27))]  # s = 0 omitted
    assert sum(b.configs for b in brackets) == 42
    assert sum(b.epochs for b in brackets) == 234
    alg = build("hyperband", max_epochs=27, reduction_factor=3)
    assert alg.num_samples == 42 and alg.planned_epochs == 234 and alg.trial_epochs == 27


def test_hyperband_simulated_sweep_trains_exactly_the_planned_epochs():
    alg, run = simulate("hyperband", max_epochs=27, reduction_factor=3)
    assert run.epochs == 234 and len(run.trials) == 42
    assert sorted(t.epoch for t in run.trials.values()).count(27) == 1 + 1 + 2


def test_epoch_multiplier_scales_every_rung():
    assert hyperband_brackets(27, 3, epoch_multiplier=2)[0].budgets == (2, 6, 18, 54)
    assert build("hyperband", epoch_multiplier=2).trial_epochs == 54


class _Controller:
    """Records what the scheduler asks of Tune (stop_trial) and maps statuses like Tune."""

    def __init__(self):
        self.stopped = []

    def stop_trial(self, trial):
        self.stopped.append(trial.trial_id)
        trial.set_status(Trial.TERMINATED)


def _trials(n):
    return [Trial("__fake", trial_id=f"t{i}", stub=True) for i in range(n)]


def _result(epoch, value):
    return {"epoch": epoch, METRIC: value}


def test_sync_rung_pauses_until_complete_then_promotes_the_top_and_stops_the_rest():
    scheduler = SyncHyperBand([Bracket(1, (3, 1), (2, 6))], METRIC, "max")
    controller, trials = _Controller(), _trials(3)
    for t in trials:
        scheduler.on_trial_add(controller, t)
    assert scheduler.choose_trial_to_run(controller) is trials[0]
    for t in trials:
        t.set_status(Trial.RUNNING)
    assert scheduler.on_trial_result(controller, trials[0], _result(1, 0.9)) == TrialScheduler.CONTINUE
    assert scheduler.on_trial_result(controller, trials[0], _result(2, 0.5)) == TrialScheduler.PAUSE
    trials[0].set_status(Trial.PAUSED)
    assert scheduler.on_trial_result(controller, trials[1], _result(2, 0.7)) == TrialScheduler.PAUSE
    trials[1].set_status(Trial.PAUSED)
    # the last of the rung decides: t1 (0.7) wins, t0 and the current t2 (0.6) lose
    assert scheduler.on_trial_result(controller, trials[2], _result(2, 0.6)) == TrialScheduler.STOP
    assert controller.stopped == ["t0"]
    assert scheduler.choose_trial_to_run(controller) is trials[1]
    trials[1].set_status(Trial.RUNNING)
    assert scheduler.on_trial_result(controller, trials[1], _result(6, 0.8)) == TrialScheduler.STOP


def test_a_failed_trial_completes_its_rung_but_is_never_promoted():
    scheduler = SyncHyperBand([Bracket(1, (2, 1), (2, 6))], METRIC, "max")
    controller, (good, bad) = _Controller(), _trials(2)
    for t in (good, bad):
        scheduler.on_trial_add(controller, t)
        t.set_status(Trial.RUNNING)
    assert scheduler.on_trial_result(controller, good, _result(2, 0.1)) == TrialScheduler.PAUSE
    good.set_status(Trial.PAUSED)
    bad.set_status(Trial.ERROR)
    scheduler.on_trial_error(controller, bad)
    assert scheduler.choose_trial_to_run(controller) is good  # promoted despite its low score
    assert controller.stopped == []


def test_minimised_metric_promotes_the_lowest():
    scheduler = SyncHyperBand([Bracket(1, (2, 1), (1, 3))], "val_loss", "min")
    controller, (a, b) = _Controller(), _trials(2)
    for t in (a, b):
        scheduler.on_trial_add(controller, t)
        t.set_status(Trial.RUNNING)
    assert scheduler.on_trial_result(controller, a, {"epoch": 1, "val_loss": 0.2}) == TrialScheduler.PAUSE
    a.set_status(Trial.PAUSED)
    assert scheduler.on_trial_result(controller, b, {"epoch": 1, "val_loss": 0.9}) == TrialScheduler.STOP
    assert scheduler.choose_trial_to_run(controller) is a


def test_learning_curve_stopping_stops_hopeless_trials_and_saves_epochs():
    _, plain = simulate("hyperband")
    _, es = simulate("hyperband_es")
    assert es.epochs < plain.epochs
    assert es.best.score == pytest.approx(plain.best.score, rel=0.05)


def test_power_law_fit_extrapolates_a_saturating_curve():
    import numpy as np

    t = np.arange(1.0, 8.0)
    predict, r2 = power_law_fit(np.column_stack([t, 0.8 - 0.5 * t ** -0.5]))
    assert r2 > 0.99 and predict(27.0) == pytest.approx(0.8 - 0.5 * 27 ** -0.5, abs=1e-3)


def test_pbt_exploits_copy_the_donor_checkpoint_and_perturb_within_the_space():
    alg, run = simulate("pbt", population_size=6, eval_interval=4, max_epochs=12)
    scheduler = alg.scheduler
    assert scheduler._num_perturbations > 0
    paid = sum(t.epochs_paid for t in run.trials.values())
    assert paid == run.epochs
    # every exploit copied a donor's checkpoint from before its final epoch, and no member skipped
    # ahead: each trained its whole budget (a recipient may repeat epochs, never skip them)
    assert scheduler.segments and all(s["epoch"] < 12 for s in scheduler.segments)
    assert all(t.epoch == 12 and t.epochs_paid >= 12 for t in run.trials.values())
    for t in run.trials.values():
        alg.space.validate(t.config)


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_pbt_population_grows_before_any_member_passes_its_first_perturbation(workers):
    """A member admitted after the first ones finished could only clone their final weights."""
    alg = build("pbt", population_size=6, eval_interval=3, max_epochs=12)
    sim = Simulator(alg, OBJECTIVE, workers=workers)
    furthest_when_complete: list[int] = []

    def observe(s: Simulator) -> bool:
        if len(s._trials) == 6 and not furthest_when_complete:
            furthest_when_complete.append(max(t.epoch for t in s._sim.values()))
        return False

    run = sim.run(kill_when=observe)
    assert furthest_when_complete and furthest_when_complete[0] <= 3
    assert all(t.epoch == 12 for t in run.trials.values())


def test_pbt_final_epoch_neither_exploits_nor_donates():
    """Ray keeps a member whose final result is in RUNNING until its trainable returns: it must not
    become a donor then (a clone would get the whole budget's weights and train nothing)."""
    alg = build("pbt", population_size=2, eval_interval=2, max_epochs=4)
    scheduler = alg.scheduler
    trials = [Trial("__simulated", trial_id=f"t{i}", stub=True, config={}) for i in range(2)]

    class Controller:
        def get_trials(self) -> list[Trial]:
            return trials

    for t in trials:
        scheduler.on_trial_add(Controller(), t)
        t.set_status(Trial.RUNNING)
    assert scheduler.on_trial_result(Controller(), trials[0], {"epoch": 4, METRIC: 0.9}) == TrialScheduler.CONTINUE
    state = scheduler._trial_state[trials[0]]
    assert state.last_perturbation_time == 0 and state.last_checkpoint is None  # no donor checkpoint


# --- scoring -------------------------------------------------------------------------------------------
def test_metric_direction_rule():
    assert metric_mode("val_mAP50") == "max" and metric_mode("val_loss") == "min"
    assert metric_mode("Train_Loss_total") == "min"


def test_trial_score_is_the_best_epoch_later_epoch_on_ties_and_ignores_non_finite():
    history = [(1, 0.2), (2, 0.5), (3, float("nan")), (4, 0.5), (5, 0.1)]
    assert best_epoch(history, "max") == (4, 0.5)
    assert trial_score(history, "min") == 0.1
    assert trial_score([(1, float("inf"))], "max") is None


def test_best_trial_multi_fidelity_only_counts_the_largest_budget():
    trials = [TrialSummary("a", 0.9, 3), TrialSummary("b", 0.5, 27), TrialSummary("c", 0.99, 27, failed=True),
              TrialSummary("d", 0.95, 27, finished=False)]
    assert best_trial(trials, "max", multi_fidelity=True).trial_id == "b"
    assert best_trial(trials, "max", multi_fidelity=False).trial_id == "a"
    assert best_trial(trials, "max", multi_fidelity=True, largest_budget=30) is None


# --- registry and knobs ----------------------------------------------------------------------------------
def test_registry_has_every_tao_name_and_rejects_others():
    assert set(ALGORITHMS) == set(ALL)
    with pytest.raises(SpecError, match="unknown AutoML algorithm"):
        make_algorithm("hyperbnd", None, AutoMLConfig(), METRIC)


def test_unknown_automl_keys_are_rejected_not_ignored():
    with pytest.raises(ValidationError):
        AutoMLConfig(max_recomendations=5)


def test_tao_defaults():
    cfg = AutoMLConfig()
    assert (cfg.max_recommendations, cfg.max_epochs, cfg.reduction_factor, cfg.epoch_multiplier) == (20, 27, 3, 1)
    assert (cfg.population_size, cfg.eval_interval) == (10, 10)
    assert build("bayesian", max_recommendations=20).num_samples == 20
    assert build("bayesian").searcher.sequential is True
    assert build("pbt", population_size=10).num_samples == 10
    assert build("asha").budgets == [1, 3, 9, 27]
