"""No secret in the sweep dir (issue 12 part 7): a sweep launched with `encryption_key=...` and an MLflow
tracking URI with credentials writes neither into any file under the sweep dir or the MLflow server's
store, yet its trials get the key (in memory, in their Ray task context) and its runs reach the server
(the URI in memory), and Ray's session logs hold neither. Resuming needs them again: from the
environment, else a typed error."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from tracking_server import tags_of
from tracking_sweeps import files_containing

pytestmark = [pytest.mark.ray, pytest.mark.mlflow_server, pytest.mark.slow, pytest.mark.timeout(600)]

ray = pytest.importorskip("ray")

CHEAP = "hpo.testing:quadratic_train_fn"
KEY, PASSWORD = "tlt-KEY-5521-do-not-leak", "pw-9902-do-not-leak"


def test_secrets_stay_out_of_every_file_and_resume_asks_for_them(mlflow_server, tmp_path, monkeypatch):
    from ray import tune

    from hpo.api import launch_sweep, resume_sweep
    from hpo.secrets import SecretMissing
    from hpo.sweep.engine import SweepPlan

    monkeypatch.delenv("TAO_ENCRYPTION_KEY", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = mlflow_server.url.replace("http://", f"http://alice:{PASSWORD}@")
    spec = {"results_dir": str(tmp_path / "results"), "encryption_key": KEY,
            "train": {"num_epochs": 2, "optim": {"lr": 0.05}},
            "automl": {"hyperparameters": ["train.optim.lr"], "max_concurrent": 1, "promote": False, "max_epochs": 2},
            "mlflow": {"tracking_uri": uri, "experiment_name": "secrets", "system_metrics": False}}
    plan = SweepPlan(param_space={"train.optim.lr": tune.grid_search([0.1, 0.05])})
    sweep_dir = tmp_path / "results" / "sweep"
    ray_dirs_before = set(Path("/tmp").glob("gdray-*"))
    result = launch_sweep(spec, plan=plan, sweep_dir=sweep_dir, backend="function", train_fn=CHEAP,
                          train_fn_options={"require_secret_sha256": hashlib.sha256(KEY.encode()).hexdigest()},
                          num_cpus=2, object_store_memory=200_000_000, promote=False, progress=False)

    assert [t["state"] for t in result.trials] == ["TERMINATED", "TERMINATED"]  # each trial had the key
    runs = mlflow_server.runs("secrets")
    assert len([r for r in runs if tags_of(r).get("gdino.run_type") == "trial"]) == 2  # the URI worked
    assert (sweep_dir / "sweep.json").is_file() and list(sweep_dir.glob("trials/*/spec.yaml"))
    assert files_containing(tmp_path, (KEY, PASSWORD)) == []
    assert files_containing(mlflow_server.root, (KEY, PASSWORD)) == []
    # nor Ray's session logs (its runtime_env agent logs env_vars: secrets do not travel that way)
    ray_dirs = set(Path("/tmp").glob("gdray-*")) - ray_dirs_before
    assert ray_dirs and [hit for d in ray_dirs for hit in files_containing(d, (KEY, PASSWORD))] == []

    with pytest.raises(SecretMissing, match="TAO_ENCRYPTION_KEY") as err:
        resume_sweep(sweep_dir, num_cpus=2, object_store_memory=200_000_000, promote=False)
    assert "-e spec.yaml" in str(err.value) and KEY not in str(err.value)

    monkeypatch.setenv("TAO_ENCRYPTION_KEY", KEY)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    resumed = resume_sweep(sweep_dir, num_cpus=2, object_store_memory=200_000_000, promote=False)
    assert resumed.state == "finished" and len(resumed.trials) == 2
    assert files_containing(tmp_path, (KEY, PASSWORD)) == []
    assert files_containing(mlflow_server.root, (KEY, PASSWORD)) == []
