"""The sweep engine's pure pieces, without a cluster: resources and concurrency, the resume choice,
error signatures, the ledger fold and trial score, best-trial eligibility, budgets, trial specs."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from gdino.config.automl import AutoMLConfig
from gdino.errors import SweepError
from hpo.sweep.driver import build_trial_spec
from hpo.sweep.engine import best_record
from hpo.sweep.ledger import Ledger, TrialRecord
from hpo.sweep.monitor import Budgets, BudgetStopper, SweepMonitor, error_signature
from hpo.sweep.resources import check_trial_fits, max_concurrent_trials, plan_trial_resources
from hpo.sweep.worker import CHECKPOINT_META, choose_resume_dir


# ------------------------------------------------------------------ resources (hang 2) and concurrency
def test_cpu_trial_on_two_cpus_runs_two_at_a_time():
    res = plan_trial_resources({"train": {"num_gpus": 1}}, AutoMLConfig(), {"CPU": 2.0})
    assert (res.backend, res.num_workers, res.use_gpu) == ("train", 1, False)
    check_trial_fits(res, {"CPU": 2.0})
    assert max_concurrent_trials(res, {"CPU": 2.0}, None) == 2
    assert max_concurrent_trials(res, {"CPU": 2.0}, 1) == 1


def test_trial_asking_more_cpus_than_the_cluster_has_is_refused():
    res = plan_trial_resources({}, AutoMLConfig(cpu_workers=2, cpus_per_worker=1.0), {"CPU": 2.0})
    with pytest.raises(SweepError, match="needs 2.01 CPUs"):
        check_trial_fits(res, {"CPU": 2.0})


def test_gpu_trials_are_capped_by_gpus():
    cluster = {"CPU": 16.0, "GPU": 4.0}
    res = plan_trial_resources({"train": {"num_gpus": 2, "num_nodes": 1}}, AutoMLConfig(), cluster)
    assert (res.num_workers, res.gpus, res.accelerator_count) == (2, 2.0, 2.0)
    assert max_concurrent_trials(res, cluster, None) == 2
    with pytest.raises(SweepError, match="GPUs"):
        check_trial_fits(plan_trial_resources({"train": {"num_gpus": 8}}, AutoMLConfig(), cluster), cluster)


# ------------------------------------------------------------------ which checkpoint a trial resumes
def _ckpt(tmp: Path, name: str, epoch: int, trial: str) -> str:
    d = tmp / name
    d.mkdir()
    (d / CHECKPOINT_META).write_text(json.dumps({"epoch": epoch, "trial_id": trial}))
    return str(d)


def test_resume_prefers_pbt_donor_then_newest(tmp_path):
    own = _ckpt(tmp_path, "own", 5, "t1")
    donor = _ckpt(tmp_path, "donor", 3, "t2")
    older_tune = _ckpt(tmp_path, "tune", 4, "t1")
    same_epoch = _ckpt(tmp_path, "tune5", 5, "t1")
    assert choose_resume_dir(own, donor, "t1") == donor          # exploit copies the donor's weights
    assert choose_resume_dir(own, older_tune, "t1") == own       # a worker retry is newer than Tune's
    assert choose_resume_dir(own, same_epoch, "t1") == same_epoch
    assert choose_resume_dir(None, None, "t1") is None


# ------------------------------------------------------------------ errors, ledger, score, best trial
def test_error_signature_sees_through_ray_wrapping():
    text = ("Traceback (most recent call last):\n  File x\nray.exceptions.RayTaskError(RuntimeError): boom\n"
            "Traceback...\nRuntimeError: boom\n\nray.train.TrainingFailedError: Training failed\n")
    assert error_signature(text) == "RuntimeError: boom"


def test_ledger_fold_scores_best_epoch_with_later_ties(tmp_path):
    ledger = Ledger(tmp_path, "val_mAP50", "max")
    ledger.append("start", "a", config={"lr": 0.1})
    for epoch, value in [(1, 0.2), (2, 0.5), (3, 0.5), (4, 0.4)]:
        ledger.append("result", "a", epoch=epoch, value=value, checkpoint=f"c{epoch}", time_total_s=epoch)
    ledger.append("complete", "a")
    ledger.append("start", "b", config={"lr": 0.2})
    (tmp_path / "ledger.jsonl").open("a").write('{"truncated')  # a line cut by a killed driver
    rec = ledger.trials()
    assert (rec["a"].state, rec["a"].score, rec["a"].best_epoch, rec["a"].checkpoint) == ("TERMINATED", 0.5, 3, "c3")
    assert (rec["a"].last_epoch, rec["a"].wall_s, rec["b"].state) == (4, 4.0, "RUNNING")


def test_loss_metrics_are_minimised(tmp_path):
    ledger = Ledger(tmp_path, "val_loss", "min")
    for epoch, value in [(1, 0.9), (2, 0.3), (3, 0.6)]:
        ledger.append("result", "a", epoch=epoch, value=value)
    assert ledger.trials()["a"].best_epoch == 2


def test_best_trial_is_at_the_largest_budget_for_multi_fidelity():
    short = TrialRecord("short", state="TERMINATED", score=0.9, last_epoch=3)
    long_ = TrialRecord("long", state="TERMINATED", score=0.7, last_epoch=9)
    failed = TrialRecord("failed", state="ERROR", score=0.99, last_epoch=9)
    records = {r.trial_id: r for r in (short, long_, failed)}
    assert best_record(records, "max", multi_fidelity=True).trial_id == "long"
    assert best_record(records, "max", multi_fidelity=False).trial_id == "short"


# ------------------------------------------------------------------ budgets (callback driven directly)
def _trial(tid: str) -> SimpleNamespace:
    return SimpleNamespace(trial_id=tid, config={"lr": 0.1}, error_file=None, error_msg="")


def _monitor(tmp_path: Path, **budgets) -> SweepMonitor:
    m = SweepMonitor(str(tmp_path), "val_mAP50", "max", Budgets(**budgets), accelerators_per_trial=2.0)
    m.setup()
    return m


def test_target_metric_stops_the_sweep(tmp_path):
    m = _monitor(tmp_path, target_metric=0.8)
    m.on_trial_start(0, [], _trial("a"))
    m.on_trial_result(0, [], _trial("a"), {"val_mAP50": 0.5, "epoch": 1, "time_total_s": 1})
    assert not BudgetStopper(m).stop_all()
    m.on_trial_result(0, [], _trial("a"), {"val_mAP50": 0.85, "epoch": 2, "time_total_s": 2})
    assert BudgetStopper(m).stop_all() and m.stop_reason == "target_metric"
    assert json.loads((tmp_path / "status.json").read_text())["stop_reason"] == "target_metric"


def test_gpu_hours_charge_accelerators_times_wall_time(tmp_path):
    m = _monitor(tmp_path, gpu_hours=1.0)
    m.on_trial_start(0, [], _trial("a"))
    m.on_trial_result(0, [], _trial("a"), {"val_mAP50": 0.1, "epoch": 1, "time_total_s": 1799})
    assert m.stop_reason is None  # 2 accelerators x 1799 s < 1 h
    m.on_trial_result(0, [], _trial("a"), {"val_mAP50": 0.1, "epoch": 2, "time_total_s": 1800})
    assert m.stop_reason == "gpu_hours"


def test_no_improvement_counts_finished_trials(tmp_path):
    m = _monitor(tmp_path, no_improvement_trials=2)
    for tid, value in [("a", 0.5), ("b", 0.4), ("c", 0.45)]:
        m.on_trial_start(0, [], _trial(tid))
        m.on_trial_result(0, [], _trial(tid), {"val_mAP50": value, "epoch": 1, "time_total_s": 1})
        m.on_trial_complete(0, [], _trial(tid))
    assert m.stop_reason == "no_improvement"


def test_fail_fast_needs_the_same_error_in_all_first_k(tmp_path):
    m = _monitor(tmp_path, fail_fast_trials=2)
    for tid, msg in [("a", "ValueError: x"), ("b", "ValueError: y")]:
        m.on_trial_start(0, [], _trial(tid))
        m.on_trial_error(0, [], SimpleNamespace(trial_id=tid, error_file=None, error_msg=msg))
    assert m.stop_reason is None
    (tmp_path / "same").mkdir()
    m2 = _monitor(tmp_path / "same", fail_fast_trials=2)
    for tid in ("a", "b"):
        m2.on_trial_start(0, [], _trial(tid))
        m2.on_trial_error(0, [], SimpleNamespace(trial_id=tid, error_file=None, error_msg="OSError: disk"))
    assert m2.stop_reason == "fail_fast" and "OSError: disk" in m2.stop_detail


# ------------------------------------------------------------------ the trial's spec
def test_trial_spec_gets_config_budget_and_results_dir():
    base = {"results_dir": "/r", "train": {"num_epochs": 20, "checkpoint_interval": 5, "validation_interval": 10,
                                          "optim": {"lr": 1e-4, "lr_steps": [10, 15]}}}
    spec = build_trial_spec(base, {"train.optim.lr": 3e-4}, 4, "/r/automl/s/trials/t1")
    assert spec["train"]["optim"]["lr"] == 3e-4 and spec["train"]["num_epochs"] == 4
    assert spec["train"]["optim"]["lr_steps"] == [2, 3]
    assert (spec["train"]["checkpoint_interval"], spec["train"]["validation_interval"]) == (4, 4)
    assert spec["results_dir"] == "/r/automl/s/trials/t1" and base["train"]["optim"]["lr"] == 1e-4


# ------------------------------------------------------------------ cluster checks (hangs 1 and 3)
def test_missing_dashboard_packages_fail_with_a_fix(monkeypatch):
    import importlib.util

    from gdino.errors import DependencyMissing
    from hpo.sweep import cluster

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "aiohttp" else real(name, *a))
    with pytest.raises(DependencyMissing, match=r"ray\[default,tune,train\]"):
        cluster.require_ray_default()


def test_private_ray_temp_dir_stays_short_enough_for_unix_sockets(tmp_path):
    import shutil
    import tempfile

    from hpo.sweep.cluster import private_temp_dir

    base = Path(tempfile.mkdtemp(prefix="gs-"))
    deep = private_temp_dir(tmp_path / ("x" * 80))
    try:
        assert private_temp_dir(base) == str(base.resolve() / "ray")  # short: under the sweep dir
        assert len(deep) <= 60 and Path(deep).is_dir()                 # long: a fresh short dir instead
    finally:
        shutil.rmtree(base)
        shutil.rmtree(deep)


def test_searched_epochs_take_effect_unless_epochs_are_the_fidelity():
    from hpo.sweep.driver import EPOCHS_KEY, TrialContext, trial_epoch_budget
    from hpo.sweep.resources import TrialResources

    ctx = TrialContext(sweep_dir="/s", base_spec={}, metric="val_mAP50", mode="max", trial_epochs=27,
                       resources=TrialResources(**plan_trial_resources({}, AutoMLConfig(), {"CPU": 2.0}).to_dict()))
    assert trial_epoch_budget({"train.num_epochs": 6}, ctx) == 6                     # e.g. bayesian, random
    assert trial_epoch_budget({"train.num_epochs": 6, EPOCHS_KEY: 9}, ctx) == 9      # the algorithm's own budget
    ctx.multi_fidelity = True
    assert trial_epoch_budget({"train.num_epochs": 6}, ctx) == 27                    # asha, hyperband, ...
    base = {"train": {"num_epochs": 20, "optim": {"lr_steps": [10]}}}
    spec = build_trial_spec(base, {"train.num_epochs": 6}, 6, "/r")
    assert spec["train"]["num_epochs"] == 6 and spec["train"]["optim"]["lr_steps"] == [3]  # rescaled from 20


# ------------------------------------------------------------------ the plan an algorithm gives the engine
def _plan(algorithm: str, **automl):
    from gdino.spec import load_spec
    from hpo.api import _plan_from_algorithm

    cfg = load_spec({"automl": {"algorithm": algorithm, "hyperparameters": ["train.optim.lr"], **automl}})
    return _plan_from_algorithm(cfg, cfg.automl, "val_mAP50", "max")[0]


@pytest.mark.parametrize("algorithm", ["hyperband", "bohb", "dehb", "hyperband_es", "pbt"])
def test_pausing_algorithms_leave_tune_uncapped_and_cap_running_trials_themselves(algorithm):
    plan = _plan(algorithm, max_epochs=9, eval_interval=3)  # pbt: an interval below max_epochs
    assert plan.pauses and plan.tune_max_concurrent(2) is None  # Tune counts PAUSED trials as live
    assert plan.searcher.cap is plan.scheduler.cap and plan.scheduler.cap.limit == 2


@pytest.mark.parametrize("algorithm", ["asha", "random", "bayesian"])
def test_other_algorithms_keep_tunes_cap(algorithm):
    assert _plan(algorithm, max_epochs=9).tune_max_concurrent(2) == 2


def test_epoch_multiplier_is_applied_once():
    plan = _plan("asha", max_epochs=9, reduction_factor=3, epoch_multiplier=2)
    assert plan.trial_epochs == 18 and plan.rung_milestones == [2, 6, 18]
    assert _plan("random", max_epochs=9, epoch_multiplier=2).trial_epochs == 18


# ------------------------------------------------------------------ promotion at the end of a sweep
def _result(tmp_path, best: str | None = "t1"):
    from hpo.sweep.engine import SweepResult

    return SweepResult(sweep_dir=str(tmp_path), metric="val_mAP50", mode="max", state="finished",
                       stop_reason="trials", stop_detail=None, best_trial_id=best, best_config={},
                       best_score=0.5, best_epoch=1, best_checkpoint=None, trials=[])


def _fake_promote_module(monkeypatch, promote_sweep):
    import sys
    import types

    module = types.ModuleType("hpo.promote")
    module.promote_sweep = promote_sweep
    monkeypatch.setitem(sys.modules, "hpo.promote", module)


def test_promotion_summary_lands_on_the_result(monkeypatch, tmp_path):
    from hpo.api import promote_result

    seen = []
    _fake_promote_module(monkeypatch, lambda d, **kw: seen.append(d) or SimpleNamespace(summary=lambda: "champion v1"))
    result = promote_result(_result(tmp_path))
    assert seen == [str(tmp_path)] and result.promotion == "champion v1" and result.promotion_error is None
    assert "promoted: champion v1" in result.to_text()


def test_failed_promotion_keeps_the_sweep_result_and_names_the_step(monkeypatch, tmp_path):
    from hpo.api import promote_result

    def fail(sweep_dir, **kwargs):
        err = RuntimeError("onnx export broke")
        err.step = "export"
        raise err

    _fake_promote_module(monkeypatch, fail)
    result = promote_result(_result(tmp_path))
    assert result.best_trial_id == "t1" and result.promotion is None
    assert result.promotion_error == "promotion failed at export: RuntimeError: onnx export broke"


def test_relative_spec_paths_become_absolute_for_trials_running_elsewhere(tmp_path):
    from hpo.api import absolute_paths

    spec = {"results_dir": "results/q", "model": {"text_encoder_type": "sentence-transformers/x"},
            "dataset": {"train_data_sources": [{"image_dir": "data/t.tar.gz", "json_file": "/abs/a.jsonl",
                                                "label_map": "data/lm.json"}],
                        "infer_data_sources": {"image_dir": ["data/infer"], "captions": ["red circle"]}},
            "train": {"pretrained_model_path": "s3://bucket/m.pth", "num_epochs": 3}}
    out = absolute_paths(spec, tmp_path)
    source = out["dataset"]["train_data_sources"][0]
    assert source == {"image_dir": f"{tmp_path}/data/t.tar.gz", "json_file": "/abs/a.jsonl",
                      "label_map": f"{tmp_path}/data/lm.json"}
    assert out["dataset"]["infer_data_sources"] == {"image_dir": [f"{tmp_path}/data/infer"], "captions": ["red circle"]}
    assert out["results_dir"] == f"{tmp_path}/results/q" and out["train"]["pretrained_model_path"] == "s3://bucket/m.pth"
    assert out["model"]["text_encoder_type"] == "sentence-transformers/x" and spec["results_dir"] == "results/q"
