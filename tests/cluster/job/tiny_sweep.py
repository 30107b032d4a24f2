"""The Ray Jobs test's entrypoint: import our package and run a 2-trial cheap Tune sweep on the cluster
the job runs in (RAY_ADDRESS is set by the job supervisor), tracked by MlflowSweepCallback in SQLite.
Prints SWEEP_OK and the summary. (The lead will replace it with `grounding_dino train -e ...`.)"""
from __future__ import annotations

import sys
from pathlib import Path

import ray
from ray import tune

import hpo  # noqa: F401 - the package must be importable on the cluster
from hpo.tracking.mlflow_callback import MlflowSweepCallback, default_tracking_uri
from hpo.tracking.report import summary_text


def trainable(config: dict) -> None:
    for epoch in (1, 2):
        tune.report({"epoch": epoch, "val_mAP50": config["quality"] * epoch / 2})


def main(results_dir: Path) -> None:
    ray.init()  # joins the job's cluster
    uri = default_tracking_uri(results_dir)
    tracker = MlflowSweepCallback(uri, "grounding_dino", "ray-job", {"algorithm": "grid"}, {}, [], False)
    results = tune.Tuner(
        trainable, param_space={"quality": tune.grid_search([0.3, 0.6])},
        tune_config=tune.TuneConfig(metric="val_mAP50", mode="max", max_concurrent_trials=1),
        run_config=tune.RunConfig(name="job", storage_path=str(results_dir / "ray"), callbacks=[tracker], verbose=0),
    ).fit()
    assert len(results) == 2 and not results.errors, results.errors
    table = tracker.trial_table()
    best = max(table, key=lambda t: t["score"])
    assert tracker.finish({"trial_id": best["trial_id"], "score": best["score"], "params": best["config"]}, "grid done")
    print(summary_text(table, stop_reason="grid done", tracking_uri=uri))
    print("SWEEP_OK", len(table))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
