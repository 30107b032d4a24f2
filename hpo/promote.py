"""Promotion of a finished sweep's best trial (issue 7 part 5, notes/tao.md §3.7):

    select    the best trial by the one ranking rule (hpo.algorithms.scoring, through the ledger); the
              baseline trial (the spec as written) is a candidate, so when it wins it is what gets promoted
    retest    the top three trials' checkpoints re-evaluated on dataset.test_data_sources (skipped, with a
              line, when the spec has no test data): <results_dir>/report/test_scores.json and a section of
              the report; the choice stays the validation rule's (choosing on the test data would leak it)
    stage     its best checkpoint, merged spec and recommendation_<trial_id>.yaml into a temp dir
    export    ONNX with TAO's interface (trt.export)
    evaluate  the ONNX file with ONNX Runtime on dataset.test_data_sources (else val_data_sources)
    engine    a TensorRT engine when TensorRT is available, else recorded as skipped with the reason
    publish   the temp dir renamed to <results_dir>/best_model (complete or absent, never half-written)
    register  MLflow: a promotion run, the ONNX logged as a model and registered under
              automl.registered_model_name, with version tags (sweep, trial, source run, evaluation)
    champion  alias `champion` moved only when the new version beats the current champion on the same
              evaluation data (the old one keeps `previous`)

The deployed artifact (the ONNX file) is what gets evaluated: the champion's ONNX can then be re-evaluated
with the same backend on today's data when the champion was scored on other data. Every step that fails
raises PromotionError naming the step; the champion alias is the last thing written, so a failure
anywhere leaves it where it was.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import yaml

from gdino.errors import DependencyMissing, GdinoError, SweepError

log = logging.getLogger(__name__)

BEST_MODEL_DIR = "best_model"
CHAMPION, PREVIOUS = "champion", "previous"
COMPARE_METRIC = "AP50"  # the champion comparison: the evaluation's AP50 on the same data
CHECKPOINT_NAMES = ("model.ckpt", "model.pth", "model.safetensors")
CHECKPOINT_SUFFIXES = (".ckpt", ".pth", ".pt", ".safetensors", ".bin")

T = TypeVar("T")


class PromotionError(SweepError):
    """A promotion step failed; `step` says which (select, stage, export, evaluate, engine, publish,
    register, champion). The champion alias is untouched."""

    def __init__(self, step: str, message: str, *, hint: Optional[str] = None) -> None:
        super().__init__(f"promotion failed at step '{step}': {message}", hint=hint)
        self.step = step


@dataclass
class ChampionDecision:
    moved: bool
    reason: str
    previous_version: Optional[str] = None
    previous_score: Optional[float] = None


@dataclass
class PromotionResult:
    sweep_dir: str
    sweep_id: str
    trial_id: str
    trial_score: float
    metric: str
    best_model_dir: str
    checkpoint: str
    onnx_file: str
    evaluation: dict[str, Any]
    evaluation_split: str
    dataset_hash: str
    engine_file: Optional[str] = None
    engine_skipped: Optional[str] = None
    registered_model: Optional[str] = None
    model_version: Optional[str] = None
    promotion_run_id: Optional[str] = None
    source_run_id: Optional[str] = None
    champion: Optional[ChampionDecision] = None
    steps: list[str] = field(default_factory=list)
    step_seconds: dict[str, float] = field(default_factory=dict)
    trial_is_baseline: bool = False  # the spec as written won the sweep
    test_scores: list[dict[str, Any]] = field(default_factory=list)  # the top trials on the test data

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        ap50 = self.evaluation.get(COMPARE_METRIC)
        lines = [f"promoted trial {self.trial_id} of sweep {self.sweep_id} ({self.metric}={self.trial_score:.4f})",
                 f"  best model: {self.best_model_dir}",
                 f"  ONNX: {self.onnx_file}",
                 f"  evaluation on {self.evaluation_split}: {COMPARE_METRIC}="
                 + (f"{ap50:.4f}" if isinstance(ap50, (int, float)) else "-"),
                 f"  TensorRT engine: {self.engine_file or 'skipped: ' + str(self.engine_skipped)}"]
        if self.trial_is_baseline:
            lines.insert(1, "  this is the baseline trial: the spec as written beat every sampled configuration")
        for row in self.test_scores:
            lines.append(f"  top trial {row['trial_id']}{' (baseline)' if row.get('baseline') else ''}: "
                         f"val {self.metric}={_fmt_score(row.get('val'))}, "
                         f"test AP50={_fmt_score(row.get('test_AP50'))}")
        if self.registered_model:
            lines.append(f"  MLflow: {self.registered_model} version {self.model_version} "
                         f"(run {self.promotion_run_id})")
        if self.champion:
            lines.append(f"  champion: {'moved' if self.champion.moved else 'kept'} ({self.champion.reason})")
        return "\n".join(lines)

    to_text = summary  # `grounding_dino automl promote` prints results through to_text


# ------------------------------------------------------------------------------------------ entry
def _put_back_secrets(setup: Any) -> None:
    """sweep.json holds a redacted spec (hpo.secrets): put back, in memory, the secrets the environment has
    (during a sweep: the env vars it set; later: $TAO_ENCRYPTION_KEY, $MLFLOW_TRACKING_URI, ...)."""
    from hpo.secrets import with_available_secrets

    paths = list(getattr(setup, "secret_paths", None) or [])
    if paths:
        setup.base_spec = with_available_secrets(setup.base_spec, paths)
        if setup.mlflow is not None:
            setup.mlflow = with_available_secrets({"mlflow": setup.mlflow}, paths)["mlflow"]


def promote_sweep(sweep_dir: str | Path, *, tracking: bool = True) -> PromotionResult:
    """Promote the best trial of the sweep in `sweep_dir` (see the module docstring for the steps)."""
    from hpo.sweep.engine import SweepSetup

    step = _Steps()
    setup = SweepSetup.load(sweep_dir)
    _put_back_secrets(setup)
    sweep_id = Path(setup.sweep_dir).name
    trial = step("select", lambda: _best_trial(setup))
    results_dir = Path(setup.base_spec.get("results_dir") or setup.sweep_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    test_scores = step("retest", lambda: retest_top_trials(setup, results_dir))
    staging = Path(tempfile.mkdtemp(prefix=f".{BEST_MODEL_DIR}-", dir=results_dir))
    try:
        spec, staged_checkpoint = step("stage", lambda: _stage(setup, trial, staging))
        cfg = step("stage", lambda: _load_cfg(spec))
        onnx_file = step("export", lambda: _export(cfg, staging, trial.checkpoint))
        split, source = _evaluation_source(spec)
        evaluation = step("evaluate", lambda: _evaluate_onnx(cfg, onnx_file, source, staging / "evaluate"))
        dataset_hash = step("evaluate", lambda: dataset_identity(source))
        engine_file, engine_skipped = step("engine", lambda: _build_engine(cfg, onnx_file))
        best_dir = step("publish", lambda: _publish(staging, results_dir / BEST_MODEL_DIR))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    rebase = lambda p: str(best_dir / Path(p).relative_to(staging)) if p else None  # noqa: E731
    result = PromotionResult(
        sweep_dir=setup.sweep_dir, sweep_id=sweep_id, trial_id=trial.trial_id, trial_score=float(trial.score),
        metric=setup.metric, best_model_dir=str(best_dir), checkpoint=rebase(staged_checkpoint),
        onnx_file=rebase(onnx_file), evaluation=evaluation, evaluation_split=split,
        dataset_hash=dataset_hash, engine_file=rebase(engine_file), engine_skipped=engine_skipped,
        steps=["select", "retest", "stage", "export", "evaluate", "engine", "publish"],
        trial_is_baseline=bool(getattr(trial, "baseline", False)), test_scores=test_scores)
    (best_dir / "promotion.json").write_text(json.dumps(result.to_dict(), indent=1, default=str))
    if tracking:
        _register(setup, result, cfg, source, step)
    result.step_seconds = dict(step.seconds)
    (best_dir / "promotion.json").write_text(json.dumps(result.to_dict(), indent=1, default=str))
    log.debug("%s", result.summary())  # callers print it (CLI, SweepResult.to_text): once
    return result


class _Steps:
    """Runs the steps of one promotion: a failure becomes a PromotionError naming its step (user errors keep
    their hint), and each step's wall time is kept for the result."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str, action: Callable[[], T]) -> T:
        began = time.perf_counter()
        try:
            return action()
        except PromotionError:
            raise
        except GdinoError as err:
            raise PromotionError(name, _redacted(err.message), hint=err.hint) from err
        except Exception as err:  # noqa: BLE001 - whatever broke, the user must learn which step it was
            raise PromotionError(name, f"{type(err).__name__}: {_redacted(str(err))}") from err
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - began, 3)


# ------------------------------------------------------------------------------------------ select / stage
def _best_trial(setup: Any) -> Any:
    from hpo.sweep.ledger import Ledger, best_record  # the one ranking rule (hpo.algorithms.scoring)

    records = Ledger(setup.sweep_dir, setup.metric, setup.mode).trials()
    best = best_record(records, setup.mode, setup.multi_fidelity)
    if best is None:
        raise PromotionError("select", f"no trial of {setup.sweep_dir} finished with a {setup.metric} score",
                             hint="run or resume the sweep until at least one trial finishes")
    if not best.checkpoint:
        raise PromotionError("select", f"the best trial {best.trial_id} saved no checkpoint",
                             hint="check automl.keep_checkpoints and the trial's logs")
    return best


def checkpoint_file(path: str | Path) -> Path:
    """The weights file of a ledger checkpoint (a Train/Tune checkpoint dir, or a file)."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        for name in CHECKPOINT_NAMES:
            if (path / name).is_file():
                return path / name
        found = sorted(p for p in path.iterdir() if p.suffix in CHECKPOINT_SUFFIXES)
        if found:
            return found[0]
    raise PromotionError("stage", f"checkpoint {path} is missing or holds no weights file",
                         hint="the trial's checkpoints may have been deleted; promote after re-running it")


RETEST_TOP = 3
TEST_SCORES = "test_scores.json"


def _fmt_score(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def held_out_source(spec: dict[str, Any]) -> Optional[dict[str, Any]]:
    """dataset.test_data_sources when the spec has test data with annotations, else None."""
    source = (spec.get("dataset") or {}).get("test_data_sources")
    if isinstance(source, list):
        source = source[0] if source else None
    if isinstance(source, dict) and source.get("json_file") not in (None, "", "???"):
        return {"json_file": str(source["json_file"]), "image_dir": str(source.get("image_dir") or "")}
    return None


def retest_top_trials(setup: Any, results_dir: Path, top: int = RETEST_TOP,
                      evaluate: Optional[Callable[[dict[str, Any]], dict[str, Any]]] = None) -> list[dict[str, Any]]:
    """The top `top` trials by the ranking rule, each checkpoint evaluated on the test data (PyTorch):
    [{trial_id, baseline, val, test_AP50, test_AP}] in rank order, written to
    <results_dir>/report/test_scores.json and added to the report. [] (and a printed line) without
    test data. `evaluate`: the evaluation (default gdino.engine.evaluate; tests may pass another)."""
    from hpo.sweep.ledger import Ledger, ranked_records

    source = held_out_source(setup.base_spec)
    if source is None:
        print("retest: skipped, the spec has no dataset.test_data_sources (the promoted trial is evaluated on "
              "the validation data)", flush=True)
        return []
    records = Ledger(setup.sweep_dir, setup.metric, setup.mode).trials()
    leaders = [r for r in ranked_records(records, setup.mode, setup.multi_fidelity)
               if r.summary().candidate and r.checkpoint][:top]
    rows = []
    for rank, record in enumerate(leaders, 1):
        spec = _trial_spec(setup, record)
        spec.pop("automl", None)
        spec.setdefault("dataset", {})["test_data_sources"] = dict(source)
        out = results_dir / "report" / "retest" / record.trial_id
        row = {"rank": rank, "trial_id": record.trial_id, "baseline": record.baseline, "val": record.score,
               "test_AP50": None, "test_AP": None}
        # the retest informs, it does not decide: one trial's checkpoint pruned or unreadable must not cost
        # the promotion (the promoted trial's own checkpoint is checked by the steps that follow)
        try:
            weights = checkpoint_file(record.checkpoint)
            spec["evaluate"] = {**(spec.get("evaluate") or {}), "checkpoint": str(weights), "results_dir": str(out)}
            spec["results_dir"] = str(out)
            metrics = (evaluate or _evaluate_checkpoint)(spec)
            row.update(test_AP50=_number(metrics.get("AP50")), test_AP=_number(metrics.get("AP")))
        except PromotionError as err:
            row["error"] = err.message
        except Exception as err:  # noqa: BLE001 - named in the row, the report and the printed line
            row["error"] = _redacted(f"{type(err).__name__}: {getattr(err, 'message', err)}")[:300]
        rows.append(row)
        print(f"retest: #{rank} trial {record.trial_id}: val {setup.metric}={_fmt_score(record.score)}, "
              f"test AP50={_fmt_score(row['test_AP50'])}" + (f" ({row['error']})" if "error" in row else ""),
              flush=True)
    report_dir = results_dir / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / TEST_SCORES).write_text(json.dumps(rows, indent=1))
    from hpo.tracking.report import add_test_scores

    add_test_scores(report_dir, rows, setup.metric)
    return rows


def _number(value: Any) -> Optional[float]:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _evaluate_checkpoint(spec: dict[str, Any]) -> dict[str, Any]:
    from gdino.engine.evaluate import evaluate
    from gdino.spec import load_spec

    return evaluate(load_spec(spec))


def _trial_spec(setup: Any, trial: Any) -> dict[str, Any]:
    """The trial's merged spec (written by the trial driver), else base spec + the trial's config."""
    path = Path(setup.sweep_dir, "trials", trial.trial_id, "spec.yaml")
    if path.is_file():
        return yaml.safe_load(path.read_text()) or {}
    from hpo.space import apply_config

    searched = {k: v for k, v in (trial.config or {}).items() if not k.startswith("__")}  # the sweep's own keys
    return apply_config(json.loads(json.dumps(setup.base_spec)), searched)


def _stage(setup: Any, trial: Any, staging: Path) -> tuple[dict[str, Any], Path]:
    source = checkpoint_file(trial.checkpoint)
    if source.suffix == ".ckpt":  # a trial's Lightning checkpoint -> its TAO-style .pth, written once, here
        from gdino.engine.callbacks import write_model_file

        target = write_model_file(source, staging / "model.pth")
    else:  # another training function's own format, as it is
        target = staging / f"model{source.suffix}"
        shutil.copy2(source, target)
    spec = _trial_spec(setup, trial)
    spec["results_dir"] = str(Path(setup.base_spec.get("results_dir") or setup.sweep_dir) / BEST_MODEL_DIR)
    (staging / "spec.yaml").write_text(yaml.safe_dump(_redacted_spec(spec), sort_keys=False))
    recommendation = {"trial_id": trial.trial_id, "metric": setup.metric, "score": trial.score,
                      "best_epoch": trial.best_epoch, "baseline": bool(getattr(trial, "baseline", False)),
                      "config": {k: v for k, v in (trial.config or {}).items() if not k.startswith("__")}}
    (staging / f"recommendation_{trial.trial_id}.yaml").write_text(yaml.safe_dump(recommendation, sort_keys=False))
    # the in-memory spec keeps secrets (the model may need an encryption_key); only the files are redacted
    spec.setdefault("export", {})["checkpoint"] = str(target)
    return spec, target


def _load_cfg(spec: dict[str, Any]) -> Any:
    from gdino.spec import load_spec

    spec = {k: v for k, v in spec.items() if k not in ("automl",)}
    return load_spec(spec)


# ------------------------------------------------------------------------------------------ export / evaluate / engine
def _export(cfg: Any, staging: Path, trial_checkpoint: str) -> Path:
    from trt.export import export_onnx

    cfg.export.onnx_file = str(staging / "model.onnx")
    try:
        return Path(export_onnx(cfg, overwrite=True))
    except GdinoError as err:  # name the trial's checkpoint, not the staged copy that is about to vanish
        raise PromotionError("export", f"{_redacted(err.message)} (the best trial's checkpoint: {trial_checkpoint})",
                             hint=err.hint) from err


def _evaluation_source(spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """TAO: test data when configured, else the validation data the sweep scored trials on."""
    dataset = spec.get("dataset") or {}
    for split, key in (("test", "test_data_sources"), ("val", "val_data_sources")):
        source = dataset.get(key)
        if isinstance(source, list):
            source = source[0] if source else None
        if isinstance(source, dict) and source.get("json_file") not in (None, "", "???"):
            return split, {"json_file": str(source["json_file"]), "image_dir": str(source.get("image_dir") or "")}
    raise PromotionError("evaluate", "no evaluation data: neither dataset.test_data_sources nor "
                         "dataset.val_data_sources has a json_file",
                         hint="set dataset.test_data_sources (image_dir, json_file) in the sweep's spec")


def evaluate_onnx(cfg: Any, onnx_file: str | Path, source: dict[str, Any], results_dir: Path) -> dict[str, Any]:
    """COCO metrics of `onnx_file` under ONNX Runtime on `source` (also used to re-score a champion)."""
    from trt import actions

    spec = cfg.model_dump(mode="json") if hasattr(cfg, "model_dump") else json.loads(json.dumps(cfg))
    spec["dataset"]["test_data_sources"] = dict(source)
    spec["evaluate"] = {**(spec.get("evaluate") or {}), "checkpoint": str(onnx_file), "trt_engine": "",
                        "results_dir": str(results_dir), "input_height": None, "input_width": None}
    from gdino.config import ExperimentConfig  # trt reads the validated config (cli layering, issue 13)

    metrics = actions.evaluate(ExperimentConfig.model_validate(spec))
    return {k: v for k, v in metrics.items() if k not in ("model",)}


def _evaluate_onnx(cfg: Any, onnx_file: Path, source: dict[str, Any], results_dir: Path) -> dict[str, Any]:
    metrics = evaluate_onnx(cfg, onnx_file, source, results_dir)
    if COMPARE_METRIC not in metrics:
        raise PromotionError("evaluate", f"the evaluation returned no {COMPARE_METRIC}")
    return metrics


def dataset_identity(source: dict[str, Any]) -> str:
    """sha256 of the annotations and the images (archive bytes, or a folder's names and sizes): two
    evaluations compare only when this matches."""
    digest = hashlib.sha256()
    digest.update(Path(source["json_file"]).read_bytes())
    images = Path(source.get("image_dir") or "")
    if images.is_file():
        with open(images, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    elif images.is_dir():
        for path in sorted(p for p in images.rglob("*") if p.is_file()):
            digest.update(f"{path.relative_to(images)}:{path.stat().st_size}\n".encode())
    return digest.hexdigest()


def _build_engine(cfg: Any, onnx_file: Path) -> tuple[Optional[Path], Optional[str]]:
    """(engine file, None), or (None, why it was skipped) when TensorRT or a GPU is missing here."""
    from trt.engine import build_engine, settings_from_config

    cfg.gen_trt_engine.onnx_file = str(onnx_file)
    cfg.gen_trt_engine.trt_engine = str(onnx_file.with_suffix(".engine"))
    settings = settings_from_config(cfg)
    try:
        return build_engine(settings), None
    except DependencyMissing as err:
        reason = err.message + (f" ({err.hint})" if err.hint else "")
        log.info("TensorRT engine skipped: %s", reason)
        return None, reason


def _publish(staging: Path, best_dir: Path) -> Path:
    """Swap the staged dir in by rename: best_model/ is the old one or the new one, never a mix."""
    old = None
    if best_dir.exists():
        old = best_dir.with_name(f".{best_dir.name}.old-{staging.name}")
        best_dir.rename(old)
    try:
        staging.rename(best_dir)
    except OSError:
        if old is not None:
            old.rename(best_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return best_dir


# ------------------------------------------------------------------------------------------ MLflow
def _register(setup: Any, result: PromotionResult, cfg: Any, source: dict[str, Any], step: _Steps) -> None:
    import mlflow
    from mlflow import MlflowClient

    uri, experiment = _tracking_target(setup)
    name = str((setup.automl or {}).get("registered_model_name") or "grounding_dino")
    caller_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)  # mlflow.start_run / log_model work on the global store: restored below
    try:
        client = MlflowClient(tracking_uri=uri)
        experiment_id = step("register", lambda: _experiment_id(client, experiment, uri))
        parent_id = step("register", lambda: _find_run(client, experiment_id, {"sweep_id": result.sweep_id,
                                                                               "gdino.run_type": "sweep"}))
        result.source_run_id = step("register", lambda: _find_run(client, experiment_id, {
            "sweep_id": result.sweep_id, "trial_id": result.trial_id, "gdino.run_type": "trial"}))
        version = step("register", lambda: _registered_before(client, name, result)
                       or _log_and_register(client, experiment_id, name, result, parent_id))
        result.registered_model, result.model_version = name, str(version.version)
        result.steps.append("register")
        result.champion = step("champion", lambda: _move_champion(client, name, result, cfg, source))
        result.steps.append("champion")
    finally:
        mlflow.set_tracking_uri(caller_uri)


def _tracking_target(setup: Any) -> tuple[str, str]:
    """The sweep's MLflow store (the rule hpo.api uses for the sweep's own runs)."""
    from hpo.tracking.mlflow_callback import default_tracking_uri

    section = setup.mlflow or {}
    uri = section.get("tracking_uri") or default_tracking_uri(setup.base_spec.get("results_dir") or setup.sweep_dir)
    return uri, str(section.get("experiment_name") or "grounding_dino")


def _experiment_id(client: Any, experiment: str, uri: str) -> str:
    from hpo.tracking.mlflow_callback import artifact_location_for

    found = client.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(experiment, artifact_location=artifact_location_for(uri))


def _find_run(client: Any, experiment_id: str, tags: dict[str, str]) -> Optional[str]:
    query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
    runs = client.search_runs([experiment_id], filter_string=query, max_results=1)
    return runs[0].info.run_id if runs else None


def _registered_before(client: Any, name: str, result: PromotionResult) -> Optional[Any]:
    """The version an earlier promotion of this trial registered for the same evaluation data (promoting
    a sweep twice, e.g. by hand after the automatic promotion, must not add a duplicate version)."""
    query = (f"name='{name}' and tags.sweep_id='{result.sweep_id}' and tags.trial_id='{result.trial_id}' "
             f"and tags.eval_dataset_hash='{result.dataset_hash}'")
    found = client.search_model_versions(query, max_results=1, order_by=["version_number DESC"])
    if not found:
        return None
    result.promotion_run_id = (found[0].tags or {}).get("promotion_run_id") or found[0].run_id
    log.info("trial %s of sweep %s is already registered as %s version %s", result.trial_id, result.sweep_id,
             name, found[0].version)
    return found[0]


def _version_tags(result: PromotionResult) -> dict[str, str]:
    tags = {"sweep_id": result.sweep_id, "trial_id": result.trial_id, "source_run_id": result.source_run_id or "",
            "promotion_run_id": result.promotion_run_id or "", "eval_metric": COMPARE_METRIC,
            f"eval_{COMPARE_METRIC}": repr(float(result.evaluation[COMPARE_METRIC])),
            "eval_split": result.evaluation_split, "eval_dataset_hash": result.dataset_hash,
            "trial_metric": result.metric, "trial_score": repr(result.trial_score),
            "tensorrt_engine": "built" if result.engine_file else "skipped",
            "baseline": str(result.trial_is_baseline).lower()}  # the spec as written won the sweep
    return {k: _redacted(v) for k, v in tags.items()}


def _log_and_register(client: Any, experiment_id: str, name: str, result: PromotionResult,
                      parent_id: Optional[str]) -> Any:
    import mlflow
    import onnx

    run_tags = {"gdino.run_type": "promotion", "sweep_id": result.sweep_id, "trial_id": result.trial_id,
                "source_run_id": result.source_run_id or ""}
    if parent_id:
        run_tags["mlflow.parentRunId"] = parent_id
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"promote_{result.trial_id}", tags=run_tags) as run:
        result.promotion_run_id = run.info.run_id
        mlflow.log_metrics({f"eval_{k}": float(v) for k, v in result.evaluation.items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool)})
        mlflow.log_params({"eval_split": result.evaluation_split, "eval_dataset_hash": result.dataset_hash,
                           "tensorrt_engine": result.engine_file or _redacted(str(result.engine_skipped))[:400]})
        best_dir = Path(result.best_model_dir)
        for artifact in ("spec.yaml", f"recommendation_{result.trial_id}.yaml", "promotion.json"):
            if (best_dir / artifact).is_file():
                mlflow.log_artifact(str(best_dir / artifact), "best_model")
        # one file, not weights in a side file, below protobuf's 2 GB limit: then MLflow's copy is
        # byte-identical to ours and the two can share their bytes (_share_onnx)
        one_file = Path(result.onnx_file).stat().st_size < ONNX_SINGLE_FILE_LIMIT
        info = mlflow.onnx.log_model(onnx.load(result.onnx_file), name="model", registered_model_name=name,
                                     save_as_external_data=not one_file)
    if one_file:
        _share_onnx(Path(result.onnx_file), info.artifact_path)
    version = info.registered_model_version
    if version is None:
        raise RuntimeError(f"MLflow registered no version of {name}")
    for key, value in _version_tags(result).items():
        client.set_model_version_tag(name, str(version), key, value)
    return client.get_model_version(name, str(version))


ONNX_SINGLE_FILE_LIMIT = 2_000_000_000  # protobuf's message limit (onnx saves larger models as external data)


def _share_onnx(ours: Path, artifact_uri: str) -> None:
    """Replace best_model's ONNX by a hard link to MLflow's byte-identical copy of it (a local artifact
    store on the same file system), so the promoted model is stored once. Anything else: both stay."""
    from urllib.parse import unquote, urlparse

    uri = urlparse(str(artifact_uri))
    theirs = Path(unquote(uri.path)) / "model.onnx"
    if uri.scheme not in ("", "file") or not theirs.is_file() or theirs.stat().st_size != ours.stat().st_size:
        return
    if _sha256(theirs) != _sha256(ours):
        return
    staging = ours.with_name(f".{ours.name}.link")
    try:
        staging.unlink(missing_ok=True)
        staging.hardlink_to(theirs)
        staging.replace(ours)  # atomic: best_model/model.onnx is always a whole model
    except OSError as err:  # another file system, no hard links: two copies, as before
        staging.unlink(missing_ok=True)
        log.debug("best_model's ONNX stays a copy of MLflow's: %s", err)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _current_champion(client: Any, name: str) -> Optional[Any]:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:  # no alias yet
        return None


def _champion_score(client: Any, name: str, champion: Any, result: PromotionResult, cfg: Any,
                    source: dict[str, Any]) -> tuple[Optional[float], str]:
    """The champion's AP50 on the data the new version was evaluated on: its tag when it was scored on
    the same data, else a fresh ONNX Runtime evaluation of its ONNX file. (score, how it was obtained)."""
    tags = champion.tags or {}
    if tags.get("eval_dataset_hash") == result.dataset_hash and tags.get(f"eval_{COMPARE_METRIC}"):
        return float(tags[f"eval_{COMPARE_METRIC}"]), "same evaluation data"
    with tempfile.TemporaryDirectory(prefix="gdino-champion-") as tmp:
        import mlflow

        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{champion.version}",
                                                         dst_path=tmp))
        onnx_files = sorted(local.rglob("*.onnx"))
        if not onnx_files:
            raise PromotionError("champion", f"champion version {champion.version} of {name} holds no ONNX file, "
                                 "and it was evaluated on other data", hint="set the alias by hand if intended")
        metrics = evaluate_onnx(cfg, onnx_files[0], source, Path(tmp, "evaluate"))
    return float(metrics[COMPARE_METRIC]), "champion re-evaluated with ONNX Runtime on the current data"


def _move_champion(client: Any, name: str, result: PromotionResult, cfg: Any,
                   source: dict[str, Any]) -> ChampionDecision:
    new_score = float(result.evaluation[COMPARE_METRIC])
    champion = _current_champion(client, name)
    if champion is None:
        client.set_registered_model_alias(name, CHAMPION, result.model_version)
        return ChampionDecision(True, f"first champion of {name} ({COMPARE_METRIC}={new_score:.4f})")
    if str(champion.version) == str(result.model_version):
        return ChampionDecision(False, "already the champion", champion.version)
    old_score, basis = _champion_score(client, name, champion, result, cfg, source)
    if not new_score > old_score:
        return ChampionDecision(False, f"{COMPARE_METRIC} {new_score:.4f} does not beat the champion's "
                                f"{old_score:.4f} (version {champion.version}, {basis})", champion.version, old_score)
    # champion first: if setting `previous` failed, the registry still names the better model
    client.set_registered_model_alias(name, CHAMPION, result.model_version)
    client.set_registered_model_alias(name, PREVIOUS, champion.version)
    return ChampionDecision(True, f"{COMPARE_METRIC} {new_score:.4f} beats {old_score:.4f} of version "
                            f"{champion.version} ({basis})", champion.version, old_score)


# ------------------------------------------------------------------------------------------ secrets
def _redacted(text: str) -> str:
    from gdino.redact import redact_text

    return redact_text(str(text))


def _redacted_spec(spec: dict[str, Any]) -> dict[str, Any]:
    from gdino.redact import redact

    return redact(spec)
