"""The resume table: algorithm x kill point -> trials, epochs paid, best trial, vs the same sweep
uninterrupted, on the simulated-time backend (hpo.algorithms.simulator) with the contract tests'
synthetic objective and small budgets (tests/hpo/algorithms/algorithms_testlib.py).

A "kill" stops the simulated driver once every event of the current simulated time is processed;
what survives is what Tune saves (trial table with each trial's latest checkpoint, the searcher's
state holding the scheduler's); `Simulator.restored` resumes it the way Tuner.restore does.
The real-Ray counterparts (bohb, asha, pbt, bayesian) are tests/hpo/sweep/test_resume_ray.py.

    python bench/resume_table.py [--seed 7] [--workers 3] [--without-scheduler-state]
"""
from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "hpo" / "algorithms"))

from algorithms_testlib import ALL, OBJECTIVE, build  # noqa: E402

from hpo.algorithms.simulator import Simulator  # noqa: E402


def _finished(sim: Simulator) -> int:
    return sum(n for status, n in sim.status_counts().items() if status in ("TERMINATED", "ERROR"))


def kill_points(half_epochs: int) -> dict:
    return {
        "after the first result": lambda sim: sim._epochs >= 1,
        "after 1 trial finished": lambda sim: _finished(sim) >= 1,
        "after 2 finished, 1 paused": lambda sim: _finished(sim) >= 2 and sim.status_counts().get("PAUSED", 0) >= 1,
        "half the epochs paid": lambda sim: sim._epochs >= half_epochs,
    }


def row(run) -> tuple[int, int, str]:
    return len(run.trials), run.epochs, run.best.trial_id if run.best else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--without-scheduler-state", action="store_true",
                        help="drop the saved scheduler state (the behaviour before issue 12)")
    args = parser.parse_args()
    import logging

    logging.disable(logging.INFO)  # Ray's PBT logs every exploit
    print("| algorithm | kill point | trials | epochs paid | best trial "
          "| uninterrupted (trials, epochs, best) | same |")
    print("|---|---|---|---|---|---|---|")
    for name in ALL:
        whole = Simulator(build(name, seed=args.seed), OBJECTIVE, workers=args.workers).run()
        for point, probe in kill_points(max(1, whole.epochs // 2)).items():
            first = Simulator(build(name, seed=args.seed), OBJECTIVE, workers=args.workers)
            if first.run(kill_when=probe).stop_reason != "killed":
                print(f"| {name} | {point} | - | - | - | {row(whole)} | not reached |")
                continue
            snapshot = first.snapshot()
            if args.without_scheduler_state:
                saved = pickle.loads(snapshot)
                saved["searcher"]["__scheduler_state__"] = None
                snapshot = pickle.dumps(saved)
            resumed = Simulator.restored(build(name, seed=args.seed), OBJECTIVE, snapshot, workers=args.workers).run()
            same = row(resumed) == row(whole) and all(
                (a.config, a.history) == (b.config, b.history)
                for a, b in zip(resumed.trials.values(), whole.trials.values()))
            trials, epochs, best = row(resumed)
            print(f"| {name} | {point} | {trials} | {epochs} | {best} | {row(whole)} | {'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
