"""Job chaining as TAO's skill describes it: every action runs as a job with an id and a results dir,
and `parent_job_id` fills the spec fields that name a model file from the parent's results.

Which fields, and how, is the seed's spec-param table ("Spec Param / Parent Model Inference"), kept once
as data in `gdino.actions` (`SpecAction.inferred`, `COMMON_INFERRED`). Inference only fills fields the
user left empty (`""`, `"???"`, None): a value given in the spec or on the command line always wins.
The result is a list of `key=value` overrides placed *before* the user's own, so the normal spec loader
validates everything.
"""
from __future__ import annotations

import json
import os
import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from gdino.actions import ModelFile, spec_action
from gdino.errors import SpecError

DEFAULT_JOBS_ROOT = "results/jobs"
ONNX_NAME = "grounding_dino.onnx"
ENGINE_NAME = "grounding_dino.engine"
CHECKPOINT_SUFFIXES = (".pth", ".ckpt", ".pt")

_EMPTY = (None, "", "???")


@dataclass
class Job:
    job_id: str
    action: str
    results_dir: str
    parent_job_id: Optional[str] = None
    status: str = "running"  # running | done | failed
    created_at: float = field(default_factory=time.time)
    finished_at: Optional[float] = None
    exit_code: Optional[int] = None
    inferred: dict[str, str] = field(default_factory=dict)  # field -> how it was filled (never the value of a secret)


class JobStore:
    """Job records live in `<root>/<job_id>/job.json`; a job's results dir defaults to `<root>/<job_id>`."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root or os.environ.get("GDINO_JOBS_ROOT", DEFAULT_JOBS_ROOT)).resolve()

    def record_path(self, job_id: str) -> Path:
        return self.root / job_id / "job.json"

    def new_id(self) -> str:
        return uuid.uuid4().hex[:12]

    def save(self, job: Job) -> None:
        path = self.record_path(job.job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(job), indent=2))
        tmp.replace(path)  # atomic: a reader never sees half a record

    def get(self, job_id: str) -> Job:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", job_id or ""):
            raise SpecError(f"invalid job id {job_id!r}", key="parent_job_id",
                            hint="job ids are letters, digits, '.', '_' or '-'")
        path = self.record_path(job_id)
        if not path.is_file():
            raise SpecError(f"no job {job_id!r} under {self.root}", key="parent_job_id",
                            hint="pass the id printed by the parent action, and the same --jobs_root")
        return Job(**json.loads(path.read_text()))


def find_model_file(folder: str | os.PathLike[str], kind: ModelFile) -> Path:
    """The model file of `kind` in a job's results folder.

    AutoML parents keep their winner in `best_model/`, which is preferred; otherwise the newest file wins
    (TAO's trainer also resumes from the latest checkpoint)."""
    folder = Path(folder)
    suffixes = {"checkpoint": CHECKPOINT_SUFFIXES, "onnx": (".onnx",), "engine": (".engine", ".trt", ".plan"),
                "checkpoint_or_onnx": CHECKPOINT_SUFFIXES + (".onnx",)}[kind]
    candidates = [p for p in folder.rglob("*") if p.is_file() and p.suffix in suffixes]
    if not candidates:
        raise SpecError(f"the parent job's folder {folder} holds no {kind.replace('_', ' ')} file "
                        f"({', '.join(suffixes)})",
                        hint="run the parent action to completion first, or set the path in the spec")
    return max(candidates, key=lambda p: ("best_model" in p.parts, p.stat().st_mtime))


def _latest_checkpoint(folder: Path) -> Optional[Path]:
    """The newest training checkpoint plain training left in `folder` (TAO's `model_epoch_*.pth`), which
    TAO's resume_model resumes. Only those: a sweep's trial checkpoints (`model.ckpt`, weights only once
    the trial finished), a promoted `best_model/model.pth` or MLflow artifacts under the same results_dir
    are no training to resume (resuming a second sweep from the first one's trial failed every trial)."""
    if not folder.is_dir():
        return None
    found = [p for p in folder.rglob("model_epoch_*.pth") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _raw_value(spec: dict[str, Any], dotted: str) -> Any:
    """The value at `dotted` in the spec as written (None when absent): what the user left empty."""
    node: Any = spec
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _override_keys(overrides: list[str]) -> set[str]:
    return {o.split("=", 1)[0].strip() for o in overrides if "=" in o}


def infer_overrides(action: str, raw_spec: dict[str, Any], user_overrides: list[str], job: Job,
                    parent: Optional[Job]) -> list[str]:
    """`key=value` overrides for the fields this job's context determines (the seed's table)."""
    given = _override_keys(user_overrides)

    def empty(key: str) -> bool:
        return key not in given and _raw_value(raw_spec, key) in _EMPTY

    out: list[str] = []
    if empty("results_dir"):
        out.append(f"results_dir={job.results_dir}")
        job.inferred["results_dir"] = "output_dir"
    if empty("encryption_key") and os.environ.get("TAO_ENCRYPTION_KEY"):
        out.append(f"encryption_key={os.environ['TAO_ENCRYPTION_KEY']}")
        job.inferred["encryption_key"] = "key (from TAO_ENCRYPTION_KEY)"
    resolvers: dict[str, Callable[[ModelFile], Optional[str]]] = {
        "parent_model": lambda kind: str(find_model_file(parent.results_dir, kind)) if parent else None,
        "create_onnx_file": lambda kind: str(Path(job.results_dir) / ONNX_NAME),
        "create_engine_file": lambda kind: str(Path(job.results_dir) / ENGINE_NAME),
        "resume_model": lambda kind: _str_or_none(_latest_checkpoint(Path(job.results_dir))),
        "ptm_if_no_resume_model": lambda kind: (
            None if parent is None or _latest_checkpoint(Path(job.results_dir))
            else str(find_model_file(parent.results_dir, kind))),
    }
    for field_ in spec_action(action).inferred:
        key, how = field_.key, field_.how
        if not empty(key) or (field_.model_file is None and how in ("parent_model", "ptm_if_no_resume_model")):
            continue  # given by the user, or listed for TAO but not a file a parent job holds
        if field_.model_file == "engine":
            # an engine is only taken from a parent that built one; a checkpoint parent leaves it empty
            if parent is None or not any(Path(parent.results_dir).rglob("*.engine")):
                continue
        value = resolvers[how](field_.model_file or "checkpoint")
        if value is not None:
            out.append(f"{key}={value}")
            job.inferred[key] = how
    return out


def _str_or_none(path: Optional[Path]) -> Optional[str]:
    return str(path) if path else None


def load_raw_spec(path: Optional[str]) -> dict[str, Any]:
    """The spec as written (no defaults): inference must see which fields the user left empty."""
    if not path:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}  # the real loader reports the problem with its line number
    return data if isinstance(data, dict) else {}


def start_job(action: str, spec_path: Optional[str], overrides: list[str], *, job_id: Optional[str] = None,
              parent_job_id: Optional[str] = None, jobs_root: Optional[str] = None) -> tuple[Job, list[str]]:
    """Register a job and return it with the overrides to apply before the user's own."""
    store = JobStore(jobs_root)
    parent = store.get(parent_job_id) if parent_job_id else None
    raw = load_raw_spec(spec_path)
    job_id = job_id or store.new_id()
    explicit_dir = next((o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].strip() == "results_dir"),
                        None) or _raw_value(raw, "results_dir")
    results_dir = str(Path(explicit_dir).resolve()) if explicit_dir not in _EMPTY else str(store.root / job_id)
    job = Job(job_id=job_id, action=action, results_dir=results_dir, parent_job_id=parent_job_id)
    inferred = infer_overrides(action, raw, overrides, job, parent)
    Path(results_dir).mkdir(parents=True, exist_ok=True)
    store.save(job)
    return job, inferred


def finish_job(job: Job, exit_code: int, jobs_root: Optional[str] = None) -> None:
    job.exit_code = exit_code
    job.status = "done" if exit_code == 0 else "failed"
    job.finished_at = time.time()
    JobStore(jobs_root).save(job)
