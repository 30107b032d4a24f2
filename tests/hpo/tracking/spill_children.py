"""Processes the spill tests SIGKILL (run as `python spill_children.py KIND ARGS.json`).

- writer: an MlflowWriter with a spill file logs steps 0-4 and flushes them, writes `<dir>/flushed`,
  waits for `<dir>/outage` (the test stopped the server), logs steps 5-9 (they can only be buffered),
  writes `<dir>/queued` and waits to be killed.
- sweep: a sweep driver (function backend, cheap trainable, MLflow tracker with the sweep dir's spill
  file) on the test's Ray cluster.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

KEYS = ("val_mAP50", "train_loss")


def writer(args: dict) -> None:
    from hpo.tracking.writer import MlflowWriter

    directory = Path(args["dir"])
    w = MlflowWriter(args["uri"], args["experiment"], spill_path=args["spill"])
    w.ensure_run("trial:a", lookup_tags={"trial_id": "a"}, tags={"state": "RUNNING"}, run_name="trial_a")
    for step in range(5):
        w.log_metrics("trial:a", {k: step / 10 for k in KEYS}, step=step)
    assert w.flush(timeout=120), w.last_error
    (directory / "flushed").write_text("ok")
    while not (directory / "outage").exists():
        time.sleep(0.1)
    for step in range(5, 10):
        w.log_metrics("trial:a", {k: step / 10 for k in KEYS}, step=step)
    w.terminate("trial:a", "FINISHED")
    (directory / "queued").write_text("ok")
    while True:  # the test SIGKILLs this process
        time.sleep(1)


def sweep(args: dict) -> None:
    from ray import tune

    from hpo.sweep.cluster import ray_cluster
    from hpo.sweep.engine import SweepPlan, SweepSetup, run_sweep
    from hpo.tracking.mlflow_callback import MlflowSweepCallback
    from hpo.tracking.writer import spill_path_for

    setup = SweepSetup(**args["setup"])
    plan = SweepPlan(param_space={"train.optim.lr": tune.grid_search(args["lrs"])})
    tracker = MlflowSweepCallback(args["uri"], args["experiment"], args["sweep_id"], {}, {}, [],
                                  system_metrics=True, system_metrics_interval_s=0.5,
                                  max_epochs=setup.trial_epochs, spill_path=str(spill_path_for(setup.sweep_dir)))
    with ray_cluster(args["ray_address"], Path(setup.sweep_dir)) as cluster:
        run_sweep(setup, plan, cluster, tracker=tracker, progress=False)


if __name__ == "__main__":
    {"writer": writer, "sweep": sweep}[sys.argv[1]](json.loads(Path(sys.argv[2]).read_text()))
