"""automl.trial_resources: custom Ray resources pin trials (and the promotion task) to a node type."""
from __future__ import annotations

import pytest

from gdino.config.automl import AutoMLConfig
from gdino.errors import SweepError
from hpo.sweep.resources import TrialResources, check_trial_fits, max_concurrent_trials, plan_trial_resources

PINNED = AutoMLConfig(trial_resources={"gdino_trial": 1})


def test_train_workers_and_the_function_trial_ask_for_the_custom_resource() -> None:
    train = plan_trial_resources({}, AutoMLConfig(cpu_workers=2, trial_resources={"gdino_trial": 1}),
                                 {"CPU": 4.0, "gdino_trial": 2.0})
    assert train.worker_resources() == {"CPU": 0.9, "gdino_trial": 1.0}
    assert train.driver_resources() == {"CPU": 0.01}          # the Tune driver may run anywhere
    assert train.custom_total() == {"gdino_trial": 2.0}       # two workers, one each
    function = plan_trial_resources({}, PINNED, {"CPU": 2.0, "gdino_trial": 1.0}, backend="function")
    assert function.driver_resources()["gdino_trial"] == 1.0  # training runs in the trial actor itself


def test_a_resource_no_node_offers_is_refused_before_launch() -> None:
    cluster = {"CPU": 8.0}
    with pytest.raises(SweepError, match="custom Ray resource 'gdino_trial'") as err:
        check_trial_fits(plan_trial_resources({}, PINNED, cluster), cluster)
    assert "ray start --resources" in err.value.hint


def test_concurrency_is_capped_by_the_custom_resource() -> None:
    cluster = {"CPU": 16.0, "gdino_trial": 2.0}
    res = plan_trial_resources({}, PINNED, cluster)
    assert max_concurrent_trials(res, cluster, None) == 2


def test_the_promotion_task_gets_one_trials_compute_and_one_gpu() -> None:
    gpu = TrialResources("train", 4, 8.0, 1.0, 0.01, custom={"gpu_node": 1.0})
    assert gpu.single_process_resources() == {"CPU": 32.0, "GPU": 1.0, "gpu_node": 1.0}
    cpu = TrialResources("function", 1, 0.9, 0.0, 0.9)
    assert cpu.single_process_resources() == {"CPU": 0.9}


def test_resources_saved_before_the_field_existed_still_load() -> None:
    saved = {"backend": "train", "num_workers": 1, "cpus_per_worker": 0.9, "gpus_per_worker": 0.0,
             "driver_cpus": 0.01}  # a sweep.json written by an older version, resumed by this one
    assert TrialResources(**saved).custom == {}
