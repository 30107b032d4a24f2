"""Nothing lost (issue 12 part 6), end to end: a sweep driver is SIGKILLed while the MLflow server is down
(its tracker holds buffered writes), the server comes back, the sweep is resumed: every trial's
per-epoch metrics are in the store, each step exactly once, and the system-metric and heartbeat steps
go on from where the killed driver left them (no step written twice)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tracking_server import MlflowServer, tags_of
from waiting import wait_for  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.reliability, pytest.mark.mlflow_server, pytest.mark.slow,
              pytest.mark.timeout(600)]

ray = pytest.importorskip("ray")

HERE = Path(__file__).parent
CHEAP = "hpo.testing:quadratic_train_fn"
EPOCHS, LRS = 4, [0.1, 0.05]
EPOCH_KEYS = ("val_mAP50", "val_mAP", "val_loss", "train_loss", "lr")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A private local cluster with the dashboard (the sweep's preflight needs its State API)."""
    from hpo.sweep.cluster import connect, disconnect

    c = connect(None, tmp_path_factory.mktemp("ray"), num_cpus=2, object_store_memory=200_000_000)
    try:
        yield c
    finally:
        disconnect(c)


def _results(sweep_dir: Path) -> list[dict]:
    from hpo.sweep.ledger import Ledger

    return [e for e in Ledger(sweep_dir, "val_mAP50", "max").events() if e["event"] == "result"]


def _stored_epochs(server: MlflowServer, experiment: str) -> int:
    try:
        runs = [r for r in server.runs(experiment) if tags_of(r).get("gdino.run_type") == "trial"]
    except Exception:  # the experiment does not exist yet
        return 0
    return sum(len(server.history(r["info"]["run_id"], "val_mAP50")) for r in runs)


def test_driver_killed_during_an_outage_then_resumed_loses_no_metric(cluster, mlflow_server, tmp_path,
                                                                      fast_mlflow_retries):
    from hpo.sweep.engine import SweepSetup, restore_sweep

    sweep_dir, experiment = tmp_path / "sweep", "kill-outage"
    setup = SweepSetup(sweep_dir=str(sweep_dir), base_spec={"train": {"num_epochs": EPOCHS, "optim": {"lr": 0.01}}},
                       automl={"max_concurrent": 1}, backend="function", train_fn=CHEAP, trial_epochs=EPOCHS,
                       train_fn_options={"steps_per_epoch": 20, "step_delay_s": 0.1,
                                         "heartbeat": {"every_n_steps": 5, "every_s": 0.5}})
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"setup": setup.__dict__, "lrs": LRS, "ray_address": cluster.address,
                                "uri": mlflow_server.url, "experiment": experiment, "sweep_id": "kill-outage"}))
    child = subprocess.Popen([sys.executable, str(HERE / "spill_children.py"), "sweep", str(args)],
                             env={**os.environ, "PYTHONPATH": str(Path.cwd())},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _stored_epochs(mlflow_server, experiment) >= 1 or child.poll() is not None, 300,
                  "a first epoch in the store")
        assert child.poll() is None
        mlflow_server.stop()  # the outage: from here the killed driver's writes can only be buffered
        at_stop = len(_results(sweep_dir))
        wait_for(lambda: len(_results(sweep_dir)) >= at_stop + 2, 240, "two epochs during the outage")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    assert (sweep_dir / "mlflow_spill.jsonl").is_file()
    mlflow_server.start()

    result = restore_sweep(sweep_dir, cluster)

    assert {t["state"] for t in result.trials} == {"TERMINATED"} and len(result.trials) == len(LRS)
    runs = mlflow_server.runs(experiment)
    trials = [r for r in runs if tags_of(r).get("gdino.run_type") == "trial"]
    assert len(trials) == len(LRS) and len([r for r in runs if tags_of(r).get("gdino.run_type") == "sweep"]) == 1
    for run in trials:
        run_id = run["info"]["run_id"]
        assert run["info"]["status"] == "FINISHED"
        for key in EPOCH_KEYS:
            steps = [m["step"] for m in mlflow_server.history(run_id, key)]
            assert sorted(steps) == list(range(1, EPOCHS + 1)), (tags_of(run)["trial_id"], key, steps)
        for key in ("system/cpu_utilization_percentage", "live/loss"):
            steps = [m["step"] for m in mlflow_server.history(run_id, key)]
            assert steps and len(steps) == len(set(steps)), (key, steps)  # continued, never rewritten
    assert not (sweep_dir / "mlflow_spill.jsonl").exists()  # all delivered: the spill file is gone
