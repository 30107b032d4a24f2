"""Resume contract for all eleven algorithms on the simulated backend: the driver is "killed" at a named
point (Tune's trial table and the searcher's saved state, which holds the scheduler's, are all that
survive), a fresh algorithm resumes it the way Tuner.restore does, and the sweep ends exactly as the
same sweep uninterrupted: the same trials, configs, learning curves, epochs paid and best trial."""
from __future__ import annotations

import pytest
from algorithms_testlib import ALL, OBJECTIVE, build

from hpo.algorithms.simulator import Simulator

pytestmark = pytest.mark.timeout(120)

WORKERS = 3


def _finished(sim: Simulator) -> int:
    return sum(n for status, n in sim.status_counts().items() if status in ("TERMINATED", "ERROR"))


# name -> (probe on the running simulator); each kill happens after every event of that simulated time
KILL_POINTS = {
    "after the first result": lambda sim: sim._epochs >= 1,
    "after 1 trial finished": lambda sim: _finished(sim) >= 1,
    "after 2 trials finished, 1 paused": lambda sim: _finished(sim) >= 2 and sim.status_counts().get("PAUSED", 0) >= 1,
    "half the epochs paid": lambda sim: sim._epochs >= HALF[sim.algorithm.name],
}
HALF: dict[str, int] = {}


def _summary(run) -> dict:
    return {"trials": len(run.trials), "epochs": run.epochs,
            "best": run.best.trial_id if run.best else None,
            "curves": {t.trial_id: (t.config, t.history, t.state) for t in run.trials.values()}}


def resume_case(name: str, kill_point: str, seed: int = 7) -> tuple[dict, dict, bool]:
    """(uninterrupted summary, killed-and-resumed summary, whether the kill point was reached)."""
    whole = Simulator(build(name, seed=seed), OBJECTIVE, workers=WORKERS).run()
    HALF[name] = max(1, whole.epochs // 2)
    first = Simulator(build(name, seed=seed), OBJECTIVE, workers=WORKERS)
    killed = first.run(kill_when=KILL_POINTS[kill_point])
    if killed.stop_reason != "killed":
        return _summary(whole), _summary(killed), False
    resumed = Simulator.restored(build(name, seed=seed), OBJECTIVE, first.snapshot(), workers=WORKERS).run()
    return _summary(whole), _summary(resumed), True


PAUSING = ("hyperband", "bohb", "dehb", "hyperband_es", "pbt")  # the others never hold a PAUSED trial
CASES = [(name, point) for name in ALL for point in sorted(KILL_POINTS) if "paused" not in point or name in PAUSING]


@pytest.mark.parametrize("name, kill_point", CASES)
def test_a_killed_sweep_resumes_to_the_uninterrupted_result(name, kill_point):
    whole, resumed, killed = resume_case(name, kill_point)
    assert killed, f"the sweep ended before '{kill_point}'"
    assert resumed["trials"] == whole["trials"]
    assert resumed["epochs"] == whole["epochs"]  # nothing re-run: finished trials stay finished
    assert resumed["best"] == whole["best"]
    assert resumed["curves"] == whole["curves"]


def test_without_the_saved_scheduler_state_a_resumed_bohb_sweep_does_not_finish_the_plan():
    """The bug of issue 12: Tune restored the searcher but rebuilt the scheduler, so restored trials
    fell into fresh rung-0 slots. Dropping the scheduler state from the snapshot shows the difference."""
    import pickle

    whole = Simulator(build("bohb", seed=7), OBJECTIVE, workers=WORKERS).run()
    first = Simulator(build("bohb", seed=7), OBJECTIVE, workers=WORKERS)
    first.run(kill_when=KILL_POINTS["after 2 trials finished, 1 paused"])
    saved = pickle.loads(first.snapshot())
    saved["searcher"]["__scheduler_state__"] = None
    resumed = Simulator.restored(build("bohb", seed=7), OBJECTIVE, pickle.dumps(saved), workers=WORKERS).run()
    assert (resumed.epochs, len(resumed.trials)) != (whole.epochs, len(whole.trials)) or \
        resumed.best.trial_id != whole.best.trial_id
