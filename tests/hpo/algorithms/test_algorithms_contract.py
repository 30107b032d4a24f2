"""Every algorithm through the same deterministic cases, without a cluster (stub trials, direct
scheduler/searcher calls, via the simulator)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from algorithms_testlib import ALL, METRIC, MULTI_FIDELITY, OBJECTIVE, build, curve, simulate

from hpo.algorithms.scoring import trial_score
from hpo.algorithms.simulator import FunctionObjective, Simulator

pytestmark = pytest.mark.timeout(120)


def _private_free(config: dict) -> dict:
    return {k: v for k, v in config.items() if not k.startswith("__")}


@pytest.mark.parametrize("name", ALL)
def test_suggestions_are_feasible_and_epochs_never_searched_by_multi_fidelity(name):
    alg, run = simulate(name)
    assert len(run.trials) == alg.num_samples
    for trial in run.trials.values():
        config = _private_free(trial.config)
        alg.space.validate(config)  # raises SpecError when infeasible
        if name in MULTI_FIDELITY:
            assert "train.num_epochs" not in config
    assert run.best is not None and run.best.score is not None


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_sweep_other_seed_other_sweep(name):
    _, first = simulate(name, seed=11)
    _, again = simulate(name, seed=11)
    _, other = simulate(name, seed=12)
    assert [(t.config, t.history) for t in first.trials.values()] == \
        [(t.config, t.history) for t in again.trials.values()]
    assert first.trace == again.trace
    if name != "grid":  # a grid is the same set of points whatever the seed (only its order moves)
        assert [t.config for t in first.trials.values()] != [t.config for t in other.trials.values()]


@pytest.mark.parametrize("name", ALL)
def test_restored_searcher_makes_the_suggestions_the_dead_sweep_would_have_made(name, tmp_path):
    alg = build(name, seed=5)
    Simulator(alg, OBJECTIVE, workers=2, max_trials=max(2, alg.num_samples // 2)).run()
    path = tmp_path / "searcher.pkl"
    alg.searcher.save(str(path))
    revived = build(name, seed=5)
    revived.searcher.restore(str(path))
    for k in range(3):
        trial_id = f"next-{k}"
        expected, got = alg.searcher.suggest(trial_id), revived.searcher.suggest(trial_id)
        assert got == expected
        if expected is None:  # waiting for a result (sequential BO / batch boundary): same for both
            break


@pytest.mark.parametrize("name", ALL)
def test_failed_trials_are_failures_never_scores(name):
    def flaky(config, epoch):
        if config["train.optim.lr"] > 3e-3:
            raise RuntimeError("diverged")
        return curve(config, epoch)

    knobs = {"max_recommendations": 64} if name == "grid" else {}  # a grid reaching the failing corner
    alg, run = simulate(name, objective=FunctionObjective(flaky), **knobs)
    failed = [t for t in run.trials.values() if t.state == "ERROR"]
    assert failed, "the case must contain failures"
    for t in failed:
        assert t.history == [] and t.error and "diverged" in t.error
    assert run.best is None or run.best.trial_id not in {t.trial_id for t in failed}
    searcher = alg.searcher
    known = getattr(searcher, "_trials", {})
    for t in failed:
        if t.trial_id in known:
            assert known[t.trial_id].state == "failed"
    if hasattr(searcher, "observations"):
        _, y = searcher.observations()
        assert len(y) == sum(1 for t in known.values() if t.state == "done")
        assert np.all(np.isfinite(y)) and np.all(y > 0)  # the objective is positive: no fake 0


@pytest.mark.parametrize("name", ALL)
def test_no_trial_trains_past_its_budget(name):
    alg, run = simulate(name)
    budgets = set(alg.budgets)
    for t in run.trials.values():
        assert t.epoch <= alg.trial_epochs
        if name in ("hyperband", "bohb", "dehb", "asha"):  # these stop only at rung budgets
            assert t.epoch in budgets, (t.trial_id, t.epoch, sorted(budgets))
    if name in MULTI_FIDELITY:
        assert max(t.epoch for t in run.trials.values()) == alg.trial_epochs


def test_best_trial_of_a_multi_fidelity_sweep_reached_the_largest_budget():
    alg, run = simulate("hyperband")
    best = run.trials[run.best.trial_id]
    assert best.epoch == alg.trial_epochs
    top = [t for t in run.trials.values() if t.epoch == alg.trial_epochs]
    assert run.best.score == max(trial_score(t.history, "max") for t in top)


MODEL_BASED = {"bayesian": "random", "bfbo": "random", "tpe": "random", "bohb": "hyperband",
               "dehb": "hyperband"}


def _bowl(config: dict, epoch: int) -> dict:
    """A smooth optimum away from the middle of the space, narrow in lr."""
    x = math.log10(config["train.optim.lr"])
    q = ((x + 2.2) / 0.5) ** 2 + ((config["model.dec_layers"] - 9) / 3.0) ** 2
    return {METRIC: (1.0 - math.exp(-epoch / 4.0)) / (1.0 + q)}


@pytest.mark.parametrize("name", sorted(MODEL_BASED))
def test_model_based_search_beats_its_random_baseline_on_average(name):
    baseline = MODEL_BASED[name]
    knobs = {"max_recommendations": 16} if baseline == "random" else {"min_points_in_model": 4}
    if baseline == "hyperband":
        knobs.update(max_epochs=9)  # 12 configs per round of brackets; 5 rounds below
    seeds = range(6)

    def mean_best(algorithm: str) -> float:
        scores = []
        for seed in seeds:
            alg = build(algorithm, seed=seed, **knobs)
            rounds = 5 if baseline == "hyperband" else 1
            run = Simulator(alg, FunctionObjective(_bowl), workers=2, max_trials=alg.num_samples * rounds).run()
            scores.append(run.best.score)
        return float(np.mean(scores))

    assert mean_best(name) > mean_best(baseline)


@pytest.mark.parametrize("name", ["random", "hyperband", "pbt"])
def test_simulator_trace_follows_the_best_trial_rule_and_stops_at_a_target(name):
    alg, run = simulate(name)
    times = [t for t, _ in run.trace]
    assert times == sorted(times) and run.trace[-1][1] == run.best.score
    target = run.trace[len(run.trace) // 2][1]
    stopped = Simulator(build(name), OBJECTIVE, workers=3, target=target).run()
    assert stopped.stop_reason == "target" and stopped.time == run.time_to(target, "max")
    assert stopped.epochs <= run.epochs


@pytest.mark.parametrize("name", ["bohb", "asha"])
def test_every_start_and_every_resume_pays_the_launch_cost_once(name):
    """Hyperband promotions resume a paused trial: each such start pays `launch_cost` once, on top of
    the epochs it trains; epochs inside a running trial pay nothing extra."""
    plain = Simulator(build(name, seed=5), FunctionObjective(lambda c, e: {METRIC: e}, cost=2.0), workers=1).run()
    launched = Simulator(build(name, seed=5), FunctionObjective(lambda c, e: {METRIC: e}, cost=2.0), workers=1,
                         launch_cost=7.0).run()
    starts = sum(t.starts for t in launched.trials.values())
    assert starts == sum(t.starts for t in plain.trials.values()) >= len(launched.trials)
    assert launched.epochs == plain.epochs
    # one worker: simulated time is the sum of what every start and epoch costs
    assert plain.time == pytest.approx(2.0 * plain.epochs)
    assert launched.time == pytest.approx(2.0 * launched.epochs + 7.0 * starts)
    if name == "bohb":
        assert starts > len(launched.trials)  # promotions resumed, and paid again
