"""One real Tune sweep per algorithm on a private local Ray cluster, with a cheap function trainable
that checkpoints every epoch (so pausing and exploiting schedulers really resume from checkpoints)."""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from algorithms_testlib import ALL, METRIC, MULTI_FIDELITY, build, quality

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

KNOBS = {"max_epochs": 4, "reduction_factor": 2, "max_recommendations": 4, "population_size": 3,
         "eval_interval": 2, "batch_size": 2}


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    saved = {"RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE")}
    os.environ["RAY_AUTH_MODE"] = "disabled"  # no shared ~/.ray/auth_token with other local clusters
    temp_dir = tempfile.mkdtemp(prefix="ray-alg-", dir="/tmp")  # short: Ray's socket paths have a limit
    import sys

    import algorithms_testlib
    from ray import cloudpickle

    # Ray workers cannot import test modules: ship this module's trainable (and its helpers) by value
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cloudpickle.register_pickle_by_value(algorithms_testlib)
    ray.init(num_cpus=2, include_dashboard=True, _temp_dir=temp_dir, object_store_memory=150 * 1024 ** 2,
             log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def cheap_trainable(config: dict, epochs: int) -> None:
    """The synthetic learning curve of algorithms_testlib; resumes from its Tune checkpoint."""
    from ray import tune

    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            start = json.loads(Path(folder, "state.json").read_text())["epoch"]
    for epoch in range(start + 1, epochs + 1):
        value = quality(config) * (1.0 - math.exp(-epoch / 4.0))
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "state.json").write_text(json.dumps({"epoch": epoch, "resumed_from": start}))
            tune.report({"epoch": epoch, METRIC: value, "resumed_from": start},
                        checkpoint=tune.Checkpoint.from_directory(folder))


@pytest.mark.parametrize("name", ALL)
def test_real_tune_sweep(name, ray_cluster, tmp_path):
    from ray import tune

    alg = build(name, seed=3, **KNOBS)
    tuner = tune.Tuner(
        tune.with_parameters(cheap_trainable, epochs=alg.trial_epochs),
        tune_config=tune.TuneConfig(search_alg=alg.searcher, scheduler=alg.scheduler,
                                    num_samples=alg.num_samples, max_concurrent_trials=alg.tune_max_concurrent(2),
                                    reuse_actors=True),
        run_config=tune.RunConfig(name=name, storage_path=str(tmp_path), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=0)))
    grid = tuner.fit()
    assert grid.num_errors == 0
    assert len(grid) == alg.num_samples
    for result in grid:
        config = {k: v for k, v in result.config.items() if not k.startswith("__")}
        alg.space.validate(config)
        epochs = result.metrics_dataframe["epoch"]
        assert epochs.max() <= alg.trial_epochs
        if name in MULTI_FIDELITY:
            assert "train.num_epochs" not in config
    if alg.pauses and name != "pbt":  # promoted trials continued from their checkpoints
        resumed = [r for r in grid if r.metrics_dataframe["resumed_from"].max() > 0]
        assert resumed
    if name in ("hyperband", "bohb", "dehb", "hyperband_es"):
        assert max(r.metrics_dataframe["epoch"].max() for r in grid) == alg.trial_epochs
