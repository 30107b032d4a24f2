"""A two-node Ray cluster on this machine (a head with 1 CPU and no trial resource, a worker node with
2 CPUs and the custom resource `gdino_trial`), both `ray start --block` on 127.0.0.1 and stopped by PID.
A sweep whose trials ask for `gdino_trial` (automl.trial_resources) must run every trial on the worker
node, with its storage on a path both nodes share; its driver is SIGKILLed mid-sweep and the sweep is
resumed from another process; MLflow has the parent and one child per trial; promotion runs as a Ray
task on the worker node (issue 12 parts 8 and 9; docs/cluster.md says what this proves)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from ray_nodes import LocalRayNode, wait_for

pytestmark = [pytest.mark.ray, pytest.mark.reliability, pytest.mark.timeout(600)]

TRIAL_RESOURCE = "gdino_trial"
HERE = Path(__file__).parent


@pytest.fixture
def two_nodes() -> Iterator[tuple[LocalRayNode, LocalRayNode]]:
    head = LocalRayNode(num_cpus=1)
    worker = LocalRayNode(num_cpus=2, resources={TRIAL_RESOURCE: 2}, head_of=head)
    try:
        head.start()
        worker.start()
        yield head, worker
    finally:
        worker.stop()
        head.stop()
    assert head.our_pids() == [] and worker.our_pids() == []  # nothing of ours is left running
    for path in (head.temp_dir, head.marker, worker.marker):
        shutil.rmtree(path, ignore_errors=True)


def _spec(shared: Path) -> dict:
    return {"results_dir": str(shared / "results"), "automl_policy": "auto",
            "train": {"num_epochs": 3, "optim": {"lr": 0.01}},
            "automl": {"algorithm": "random", "max_recommendations": 3, "max_epochs": 3,
                       "hyperparameters": ["train.optim.lr"],
                       "max_concurrent": 1, "seed": 5, "storage_path": str(shared / "automl"),
                       "trial_resources": {TRIAL_RESOURCE: 1}}}


def _events(sweep_dir: Path) -> list[dict]:
    from hpo.sweep.ledger import Ledger

    return list(Ledger(sweep_dir, "val_mAP50", "max").events())


def test_sweep_on_two_nodes_runs_trials_and_promotion_on_the_worker_node(two_nodes, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from hpo.api import PROMOTION_TASK_RECORD, resume_sweep, sweep_status

    head, worker = two_nodes
    shared = tmp_path / "shared"  # what both nodes mount (NFS/EFS on a real cluster)
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"spec": _spec(shared), "ray_address": head.address}))
    driver_log = tmp_path / "driver.log"
    child = subprocess.Popen([sys.executable, str(HERE / "two_node_driver.py"), str(args)],
                             env={**os.environ, "RAY_ADDRESS": head.address},
                             stdout=driver_log.open("wb"), stderr=subprocess.STDOUT)
    try:
        sweep_dir = Path(str(wait_for(lambda: next((shared / "automl").glob("sweep_*"), None)
                                      if (shared / "automl").is_dir() else None, 240, "the sweep dir")))

        def one_finished_and_the_next_running() -> bool:
            kinds = [e["event"] for e in _events(sweep_dir)]
            return kinds.count("complete") >= 1 and kinds.count("start") >= 2

        wait_for(one_finished_and_the_next_running, 300, "a finished trial and a running one")
    except AssertionError:
        raise AssertionError("the sweep's driver did not get going; its log ends:\n"
                             + driver_log.read_text()[-4000:]) from None
    finally:
        child.kill()  # SIGKILL the sweep's driver (the head node lives on)
        child.wait()
    assert sweep_status(sweep_dir).state == "interrupted"

    result = resume_sweep(sweep_dir, ray_address=head.address)

    # the sweep finished once: every trial completed exactly once
    assert result.state == "finished" and result.best_trial_id is not None
    completes = [e["trial_id"] for e in _events(sweep_dir) if e["event"] == "complete"]
    assert len(completes) == len(set(completes)) == len(result.trials) >= 3
    # every epoch of every trial ran on the worker node, none on the head
    for trial in result.trials:
        lines = (sweep_dir / "trials" / trial["trial_id"] / "nodes.txt").read_text().split()
        assert set(lines[1::2]) == {worker.node_id}, trial["trial_id"]
    # checkpoints on the shared storage
    assert result.best_checkpoint and Path(result.best_checkpoint).resolve().is_relative_to(shared.resolve())
    assert Path(result.best_checkpoint, "model.pt").is_file()
    # MLflow: one parent run, one child per trial, in the store on the shared storage
    client = MlflowClient(f"sqlite:///{shared / 'results' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("grounding_dino")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) >= 1 and len(children) == len(result.trials)
    # promotion ran as a Ray task with a trial's resources, on the worker node (the cheap trainable's
    # checkpoint is no detector, so the promotion itself fails at a named step: recorded, not raised)
    where = json.loads((sweep_dir / PROMOTION_TASK_RECORD).read_text())
    assert where["node_id"] == worker.node_id and where["resources"][TRIAL_RESOURCE] == 1
    assert result.promotion_error and "promotion failed at" in result.promotion_error
