"""Job chaining: the seed's spec-param table fills empty fields from the parent job's results."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml

from cli import jobs
from gdino.errors import SpecError


def _spec(tmp_path: Path, data: dict) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _finished_parent(root: Path, action: str, files: list[str]) -> jobs.Job:
    store = jobs.JobStore(root)
    job = jobs.Job(job_id=f"parent-{action}", action=action, results_dir=str(root / f"parent-{action}"))
    for i, name in enumerate(files):
        f = Path(job.results_dir) / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")
        os.utime(f, (time.time() + i, time.time() + i))  # later files are newer
    store.save(job)
    return job


def test_evaluate_takes_parent_checkpoint_and_best_model_wins(tmp_path):
    _finished_parent(tmp_path, "train", ["best_model/model_best.pth", "model_epoch_002.pth"])
    spec = _spec(tmp_path, {"evaluate": {"checkpoint": "???"}})
    job, overrides = jobs.start_job("evaluate", spec, [], parent_job_id="parent-train", jobs_root=str(tmp_path))
    ckpt = dict(o.split("=", 1) for o in overrides)["evaluate.checkpoint"]
    assert ckpt.endswith("best_model/model_best.pth")
    assert job.inferred["evaluate.checkpoint"] == "parent_model"
    assert "evaluate.trt_engine" not in dict(o.split("=", 1) for o in overrides)  # parent built no engine


def test_user_values_win_over_inference(tmp_path):
    _finished_parent(tmp_path, "train", ["model.pth"])
    spec = _spec(tmp_path, {"export": {"checkpoint": "mine.pth"}})
    _, overrides = jobs.start_job("export", spec, ["export.onnx_file=out.onnx"], parent_job_id="parent-train",
                                  jobs_root=str(tmp_path))
    keys = [o.split("=", 1)[0] for o in overrides]
    assert "export.checkpoint" not in keys and "export.onnx_file" not in keys


def test_export_then_engine_chain(tmp_path):
    _finished_parent(tmp_path, "train", ["model.pth"])
    export_job, overrides = jobs.start_job("export", None, [], parent_job_id="parent-train", jobs_root=str(tmp_path))
    values = dict(o.split("=", 1) for o in overrides)
    assert values["export.onnx_file"] == str(Path(export_job.results_dir) / jobs.ONNX_NAME)
    assert values["results_dir"] == export_job.results_dir
    Path(values["export.onnx_file"]).write_bytes(b"onnx")
    jobs.finish_job(export_job, 0, str(tmp_path))
    engine_job, overrides = jobs.start_job("gen_trt_engine", None, [], parent_job_id=export_job.job_id,
                                           jobs_root=str(tmp_path))
    values = dict(o.split("=", 1) for o in overrides)
    assert values["gen_trt_engine.onnx_file"] == str(Path(export_job.results_dir) / jobs.ONNX_NAME)
    assert values["gen_trt_engine.trt_engine"].endswith(jobs.ENGINE_NAME)
    record = json.loads(jobs.JobStore(tmp_path).record_path(export_job.job_id).read_text())
    assert record["status"] == "done" and record["exit_code"] == 0


def test_train_resumes_own_checkpoint_before_parent_ptm(tmp_path):
    _finished_parent(tmp_path, "train", ["model.pth"])
    job, overrides = jobs.start_job("train", None, [], job_id="child", parent_job_id="parent-train",
                                    jobs_root=str(tmp_path))
    values = dict(o.split("=", 1) for o in overrides)
    assert values["train.pretrained_model_path"].endswith("parent-train/model.pth")
    assert "train.resume_training_checkpoint_path" not in values
    (Path(job.results_dir) / "model_epoch_001.pth").write_bytes(b"x")
    _, overrides = jobs.start_job("train", None, [], job_id="child", parent_job_id="parent-train",
                                  jobs_root=str(tmp_path))
    values = dict(o.split("=", 1) for o in overrides)
    assert values["train.resume_training_checkpoint_path"].endswith("child/model_epoch_001.pth")
    assert "train.pretrained_model_path" not in values


def test_train_does_not_resume_a_sweeps_trial_checkpoint_or_a_promoted_model(tmp_path):
    """A second sweep (or training) into the same results_dir starts fresh: the first sweep's trial
    checkpoints and its promoted model are not a training to resume."""
    results = tmp_path / "results"
    trial_ckpt = results / "automl" / "sweep_asha_1" / "train" / "trial_a" / "checkpoint_1" / "model.ckpt"
    trial_ckpt.parent.mkdir(parents=True)
    trial_ckpt.write_bytes(b"weights only")
    (results / "best_model").mkdir()
    (results / "best_model" / "model.pth").write_bytes(b"promoted")
    _, overrides = jobs.start_job("train", None, [f"results_dir={results}"], jobs_root=str(tmp_path / "jobs"))
    assert not [o for o in overrides if o.startswith("train.resume_training_checkpoint_path=")]
    (results / "model_epoch_002_step_8.pth").write_bytes(b"plain training")
    _, overrides = jobs.start_job("train", None, [f"results_dir={results}"], jobs_root=str(tmp_path / "jobs"))
    assert f"train.resume_training_checkpoint_path={results / 'model_epoch_002_step_8.pth'}" in overrides


def test_missing_parent_and_empty_parent_are_typed_errors(tmp_path):
    with pytest.raises(SpecError, match="no job"):
        jobs.start_job("evaluate", None, [], parent_job_id="nope", jobs_root=str(tmp_path))
    with pytest.raises(SpecError, match="invalid job id"):
        jobs.start_job("evaluate", None, [], parent_job_id="../etc", jobs_root=str(tmp_path))
    _finished_parent(tmp_path, "train", [])
    with pytest.raises(SpecError, match="holds no checkpoint"):
        jobs.start_job("evaluate", None, [], parent_job_id="parent-train", jobs_root=str(tmp_path))


def test_encryption_key_from_environment_is_not_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("TAO_ENCRYPTION_KEY", "s3cr3t-key-value")
    job, overrides = jobs.start_job("export", None, [], jobs_root=str(tmp_path))
    assert "encryption_key=s3cr3t-key-value" in overrides
    assert "s3cr3t" not in jobs.JobStore(tmp_path).record_path(job.job_id).read_text()
