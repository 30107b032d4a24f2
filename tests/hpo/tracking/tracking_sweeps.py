"""A small real Tune sweep for the tracking tests: a cheap function trainable with three cases.

- "good": reports improving val_mAP50 for EPOCHS epochs and returns (-> FINISHED);
- "bad":  reports a much lower score; ASHA (grace 1, eta 2) stops it at its first rung (-> KILLED);
- "fail": raises at epoch 2 with a secret in its message (-> FAILED, the secret redacted).

Trials run one at a time in this order, so ASHA's decisions are deterministic.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import ray
from ray import tune

ENCRYPTION_KEY = "tlt-ENC-KEY-0451"
URI_PASSWORD = "hunter2-pw-7788"
ERROR_TOKEN = "tok-FAIL-9911"
SECRETS = (ENCRYPTION_KEY, URI_PASSWORD, ERROR_TOKEN)
EPOCHS = 4
CASES = ("good", "bad", "fail")
SWEEP_PARAMS = {"algorithm": "asha", "max_epochs": EPOCHS, "reduction_factor": 2, "max_recommendations": 3,
                "encryption_key": ENCRYPTION_KEY}
RESOLVED_SPEC = {"encryption_key": ENCRYPTION_KEY,
                 "train": {"num_epochs": EPOCHS, "optim": {"lr": 1e-3}},
                 "mlflow": {"tracking_uri": f"https://alice:{URI_PASSWORD}@mlflow.example.com"},
                 "dataset": {"train_data_sources": [{"image_dir": f"s3://bob:{URI_PASSWORD}@bucket/images"}]}}
SPACE_TABLE = [{"parameter": "train.optim.lr", "type": "float", "range": "[1e-05, 0.01]", "scale": "log"},
               {"parameter": "case", "type": "categorical", "range": str(list(CASES)), "scale": "-"}]


def cheap_trainable(config: dict[str, Any]) -> None:
    case = config["case"]
    for epoch in range(1, EPOCHS + 1):
        if case == "fail" and epoch == 2:
            raise RuntimeError(f"simulated crash; token={ERROR_TOKEN}")
        quality = 0.9 if case == "good" else (0.1 if case == "bad" else 0.5)
        val = quality * epoch / EPOCHS
        tune.report({"epoch": epoch, "val_mAP50": val, "val_mAP": val / 2, "val_loss": 1 - val,
                     "train_loss": 1.1 - val, "lr": config["train"]["optim"]["lr"]})


def fail_once_trainable(config: dict[str, Any]) -> None:
    """Like "good", but the first attempt ever crashes at epoch 2 (a marker file remembers it)."""
    marker = Path(config["marker"])
    for epoch in range(1, EPOCHS + 1):
        if config["case"] == "fail_once" and epoch == 2 and not marker.exists():
            marker.write_text("failed")
            raise RuntimeError("first attempt crashes")
        val = 0.8 * epoch / EPOCHS
        tune.report({"epoch": epoch, "val_mAP50": val, "val_mAP": val / 2, "val_loss": 1 - val,
                     "train_loss": 1.1 - val, "lr": config["train"]["optim"]["lr"]})


def param_space() -> dict[str, Any]:
    return {"case": tune.grid_search(list(CASES)),
            "train": {"optim": {"lr": 1e-3}},
            "dataset": {"source_uri": f"s3://bob:{URI_PASSWORD}@bucket/train.tar.gz"}}


def run_sweep(callbacks: list, storage: Path, name: str = "sweep", trainable: Any = cheap_trainable,
              space: Optional[dict] = None, scheduler: Any = "asha") -> Any:
    from ray.tune.schedulers import ASHAScheduler

    if scheduler == "asha":
        scheduler = ASHAScheduler(time_attr="training_iteration", grace_period=1, reduction_factor=2, max_t=100)
    tuner = tune.Tuner(
        trainable,
        param_space=space or param_space(),
        tune_config=tune.TuneConfig(metric="val_mAP50", mode="max", max_concurrent_trials=1,
                                    scheduler=scheduler),
        run_config=tune.RunConfig(name=name, storage_path=str(storage), callbacks=callbacks,
                                  failure_config=tune.FailureConfig(max_failures=0), verbose=0),
    )
    return tuner.fit()


def start_private_ray() -> str:
    """A local Ray instance of our own (never another user's): private temp dir, no auth token file."""
    os.environ.pop("RAY_ADDRESS", None)
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths must stay < 107 chars
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import tests/
    ray.init(num_cpus=2, object_store_memory=200 * 1024 * 1024, _temp_dir=temp_dir,
             include_dashboard=False, log_to_driver=False)
    return temp_dir


def files_containing(root: Path, secrets: tuple[str, ...]) -> list[str]:
    """Every file under `root` whose bytes contain one of the secrets."""
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path}: {s}" for s in secrets if s.encode() in data]
    return hits


def gated_trainable(config: dict[str, Any]) -> None:
    """Like cheap_trainable, but "good" pauses before epoch 3 until the test opens the gate
    (`<gate>/reached` tells the test it is there; the test writes `<gate>/release`)."""
    gate = Path(config["gate"])
    for epoch in range(1, EPOCHS + 1):
        if config["case"] == "good" and epoch == 3:
            (gate / "reached").write_text("epoch 3")
            while not (gate / "release").exists():
                time.sleep(0.1)
        quality = 0.9 if config["case"] == "good" else 0.1
        val = quality * epoch / EPOCHS
        tune.report({"epoch": epoch, "val_mAP50": val, "val_mAP": val / 2, "val_loss": 1 - val,
                     "train_loss": 1.1 - val, "lr": config["train"]["optim"]["lr"]})


def wait_for_file(path: Path, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.1)  # polling for an event, not a timed assertion


def write_metrics_concurrently(tracking_uri: str, experiment: str, parent_run_id: str, writer_index: int,
                               steps: int) -> str:
    """One of the concurrent writers: its own run under the parent, `steps` x 5 metrics, then flush."""
    from hpo.tracking.writer import MlflowWriter

    writer = MlflowWriter(tracking_uri, experiment)
    handle = f"writer:{writer_index}"
    writer.ensure_run(handle, lookup_tags={"writer": str(writer_index)},
                      tags={"mlflow.parentRunId": parent_run_id}, run_name=f"writer_{writer_index}")
    for step in range(steps):
        writer.log_metrics(handle, {k: step * 0.01 + writer_index for k in
                                    ("val_mAP50", "val_mAP", "val_loss", "train_loss", "lr")}, step=step)
    writer.terminate(handle, "FINISHED")
    assert writer.close(timeout=240), writer.last_error
    return writer.runs[handle].run_id
