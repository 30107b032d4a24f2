"""The sweep engine: Tuner + trial driver (Tune function -> ray.train TorchTrainer), budgets, ledger,
fault tolerance and resume. The public entry points are in `hpo.api`; this package's pieces:

    cluster    start/join Ray; the checks that turn Ray's silent hangs into SweepErrors
    resources  what one trial asks for; concurrency capped by the limiting resource
    driver     run_trial: the Tune function trainable (Train-backed or in-process)
    worker     the training-function contract, the per-worker loop, gdino's Lightning wiring
    monitor    ledger writing, budgets and early stops (a Tune Callback + Stopper)
    ledger     the JSON-lines trial ledger and the trial score rule
    engine     SweepSetup / SweepPlan / SweepResult, run_sweep, restore_sweep

"""
from __future__ import annotations

from hpo.sweep.engine import SweepPlan, SweepResult, SweepSetup, collect_result, restore_sweep, run_sweep

__all__ = ["SweepPlan", "SweepResult", "SweepSetup", "collect_result", "restore_sweep", "run_sweep"]
