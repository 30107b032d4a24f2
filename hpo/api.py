"""The Python API of the AutoML service.

    from hpo import launch_sweep, resume_sweep, sweep_status
    result = launch_sweep("spec.yaml", ["automl.algorithm=asha", "automl.max_recommendations=8"])
    result.best_config, result.best_score, result.best_checkpoint, result.trials, result.stop_reason
    resume_sweep(result.sweep_dir)      # after the driver died: no trial runs twice, none is lost
    sweep_status(result.sweep_dir)      # reads the sweep dir only; no Ray needed

Ray: `ray_address` (or automl.ray_address, or RAY_ADDRESS) joins a cluster; without one a private
local instance is started (all CPUs, dashboard on, temp dir under the sweep dir) and shut down after.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from gdino.config.automl import EPOCH_FIDELITY_ALGORITHMS
from gdino.errors import DependencyMissing, SweepError
from hpo.sweep.engine import SweepPlan, SweepResult, SweepSetup, collect_result

log = logging.getLogger(__name__)

__all__ = ["launch_sweep", "resume_sweep", "sweep_status", "SweepResult", "SweepPlan"]

PAUSING_ALGORITHMS = frozenset({"hyperband", "bohb", "pbt", "dehb", "hyperband_es"})
GDINO_TRAIN_FN = "hpo.sweep.worker:gdino_train_fn"


def launch_sweep(spec_or_path: Any, overrides: Optional[Sequence[str]] = None,
                 ray_address: Optional[str] = None, *, sweep_dir: Optional[str | Path] = None,
                 backend: str = "train", train_fn: str = GDINO_TRAIN_FN,
                 train_fn_options: Optional[Mapping[str, Any]] = None, plan: Optional[SweepPlan] = None,
                 tracking: bool = True, progress: bool = True, promote: bool = True,
                 num_cpus: Optional[int] = None, object_store_memory: Optional[int] = None) -> SweepResult:
    """Run a sweep of the spec (a path, a dict or an ExperimentConfig) to its first budget.

    backend "train" runs each trial as a Ray Train run (the real path); "function" trains inside the
    Tune actor (cheap; for small single-device trials). `train_fn` ("module:function") and `plan`
    replace the Grounding DINO training and the spec's algorithm (tests, benchmarks).

    When the sweep finished and `automl.promote` is on (and `promote`), its best trial is promoted
    (hpo.promote); the outcome is in `result.promotion` / `result.promotion_error` (a failed promotion
    never loses the sweep's results)."""
    from hpo.sweep.cluster import ray_cluster
    from hpo.sweep.engine import run_sweep

    if backend not in ("train", "function"):
        raise SweepError(f"unknown backend {backend!r}", hint="use 'train' or 'function'")
    cfg, spec_dict = _load_spec(spec_or_path, overrides or ())
    spec_dict = absolute_paths(spec_dict, Path.cwd())
    automl = cfg.automl
    metric = automl.metric
    mode = _metric_mode(metric)
    directory = Path(sweep_dir) if sweep_dir else _default_sweep_dir(spec_dict, automl)
    directory.mkdir(parents=True, exist_ok=True)
    space = None
    if plan is None:
        plan, space = _plan_from_algorithm(cfg, automl, metric, mode)
    setup = SweepSetup(sweep_dir=str(directory.resolve()), base_spec=spec_dict,
                       automl=automl.model_dump(mode="json"), metric=metric, mode=mode,
                       algorithm=automl.algorithm, backend=backend, train_fn=train_fn,
                       train_fn_options=dict(train_fn_options or {}),
                       trial_epochs=int(automl.max_epochs) * int(automl.epoch_multiplier),
                       mlflow=_mlflow_dict(cfg))
    address = ray_address or automl.ray_address or os.environ.get("RAY_ADDRESS") or None
    log.info("sweep %s: algorithm %s, metric %s (%s)", setup.sweep_dir, automl.algorithm, metric, mode)
    with ray_cluster(address, directory, num_cpus=num_cpus, object_store_memory=object_store_memory) as cluster:
        tracker = _make_tracker(setup, space, plan) if tracking else None
        result = run_sweep(setup, plan, cluster, tracker=tracker, progress=progress)
    if promote and automl.promote:
        promote_result(result, tracking=tracking)
    return result


def resume_sweep(sweep_dir: str | Path, ray_address: Optional[str] = None, *,
                 num_cpus: Optional[int] = None, object_store_memory: Optional[int] = None) -> SweepResult:
    """Continue a sweep whose driver died: Tune restores searcher, scheduler and trials; finished trials
    stay finished, unfinished ones continue from their checkpoints, the ledger carries on."""
    from hpo.sweep.cluster import ray_cluster
    from hpo.sweep.engine import restore_sweep

    setup = SweepSetup.load(sweep_dir)
    address = ray_address or setup.automl.get("ray_address") or os.environ.get("RAY_ADDRESS") or None
    with ray_cluster(address, Path(setup.sweep_dir), num_cpus=num_cpus,
                     object_store_memory=object_store_memory) as cluster:
        return restore_sweep(setup.sweep_dir, cluster)


def sweep_status(sweep_dir: str | Path) -> SweepResult:
    """The trial table, best trial and state of a sweep, from its directory alone. A sweep whose driver
    is gone without having finished reads as "interrupted" (resume it)."""
    from hpo.sweep.monitor import read_status

    setup = SweepSetup.load(sweep_dir)
    result = collect_result(setup)
    status = read_status(setup.sweep_dir)
    if result.state in ("running", "stopping") and not _alive(status.get("driver_pid")):
        result.state = "interrupted"
    return result


# ------------------------------------------------------------------------------------------ helpers
def _alive(pid: Any) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError):
        return False
    return True


PATH_KEY_SUFFIXES = ("_dir", "_file", "_path", "label_map", "checkpoint")
PATH_SECTIONS = ("dataset", "model", "train", "evaluate", "inference", "export", "gen_trt_engine", "quantize")


def absolute_paths(spec_dict: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative file paths of the spec made absolute against `base` (the caller's working directory):
    trials run in Ray workers whose working directory is their own, on any node."""
    def fix(key: str, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: fix(k, v) for k, v in value.items()}
        if isinstance(value, list):
            return [fix(key, v) for v in value]
        if isinstance(value, str) and value and key.endswith(PATH_KEY_SUFFIXES) and _is_relative_path(value):
            return str(base / value)
        return value

    out = dict(spec_dict)
    for section in PATH_SECTIONS:
        if isinstance(out.get(section), dict):
            out[section] = fix(section, out[section])
    if isinstance(out.get("results_dir"), str) and _is_relative_path(out["results_dir"]):
        out["results_dir"] = str(base / out["results_dir"])
    return out


def _is_relative_path(value: str) -> bool:
    return "://" not in value and not value.startswith(("/", "~", "$"))


def _metric_mode(metric: str) -> str:
    from hpo.sweep.ledger import metric_mode

    return metric_mode(metric)


def _load_spec(spec_or_path: Any, overrides: Sequence[str]) -> tuple[Any, dict[str, Any]]:
    """(config with `.automl`, the nested spec dict trials start from)."""
    if hasattr(spec_or_path, "model_dump") and hasattr(spec_or_path, "automl"):
        cfg = spec_or_path
        if overrides:
            from gdino.spec import load_spec

            cfg = load_spec(cfg.model_dump(mode="json"), list(overrides))
    else:
        from gdino.spec import load_spec

        source = str(spec_or_path) if isinstance(spec_or_path, Path) else spec_or_path
        cfg = load_spec(source, list(overrides))
    return cfg, cfg.model_dump(mode="json")


def _default_sweep_dir(spec_dict: Mapping[str, Any], automl: Any) -> Path:
    root = Path(automl.storage_path) if automl.storage_path else \
        Path(spec_dict.get("results_dir") or "results") / "automl"
    return root / time.strftime(f"sweep_{automl.algorithm}_%Y%m%d-%H%M%S")


def _mlflow_dict(cfg: Any) -> Optional[dict[str, Any]]:
    section = getattr(cfg, "mlflow", None)
    return section.model_dump(mode="json") if section is not None else None


def _plan_from_algorithm(cfg: Any, automl: Any, metric: str, mode: str) -> tuple[SweepPlan, Any]:
    """The spec's algorithm (hpo.algorithms) over the spec's search space (hpo.space)."""
    try:
        from hpo.algorithms import make_algorithm
    except ImportError as err:
        raise DependencyMissing("the hpo.algorithms package is not available in this installation",
                                hint="reinstall gdino-automl") from err
    from hpo.space import build_search_space

    name = automl.algorithm
    space = build_search_space(cfg, epochs_are_fidelity=name in EPOCH_FIDELITY_ALGORITHMS)
    alg = make_algorithm(name, space, automl, metric, mode, automl.seed)
    epochs = _first_attr(alg, ("trial_epochs", "max_trial_epochs", "max_epochs"), None)
    plan = SweepPlan(algorithm=alg, rung_milestones=list(_first_attr(alg, ("budgets",), []) or []),
                     searcher=_first_attr(alg, ("searcher", "search_alg"), None),
                     scheduler=_first_attr(alg, ("scheduler",), None),
                     num_samples=int(_first_attr(alg, ("num_samples",), automl.max_recommendations)),
                     param_space=dict(_first_attr(alg, ("param_space",), {}) or {}),
                     trial_epochs=int(epochs) if epochs else None,  # already x epoch_multiplier
                     pauses=bool(_first_attr(alg, ("pauses", "needs_checkpoints", "uses_checkpoints"),
                                             name in PAUSING_ALGORITHMS)),
                     multi_fidelity=bool(_first_attr(alg, ("multi_fidelity",), name in EPOCH_FIDELITY_ALGORITHMS)))
    return plan, space


def _first_attr(obj: Any, names: Sequence[str], default: Any) -> Any:
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return default


def promote_result(result: SweepResult, *, tracking: bool = True) -> SweepResult:
    """Promote the sweep's best trial with hpo.promote (imported here: it pulls in trt and onnx).
    Failures are recorded on the result, not raised: the sweep's own results stay valid."""
    if result.best_trial_id is None:
        log.warning("no trial finished with a score: nothing to promote")
        return result
    from hpo.promote import promote_sweep

    try:
        outcome = promote_sweep(result.sweep_dir, tracking=tracking)
    except Exception as err:  # the sweep's results stay where they are; resume promotion by hand
        step = getattr(err, "step", None)
        result.promotion_error = f"promotion failed{f' at {step}' if step else ''}: {type(err).__name__}: {err}"
        log.error("%s (the sweep's results are intact in %s)", result.promotion_error, result.sweep_dir)
        return result
    summary = getattr(outcome, "summary", None)
    result.promotion = summary() if callable(summary) else str(outcome)
    return result


def _make_tracker(setup: SweepSetup, space: Any, plan: SweepPlan) -> Any:
    """The MLflow parent/child runs (hpo.tracking), when that package is installed."""
    try:
        from hpo.tracking.mlflow_callback import MlflowSweepCallback, default_tracking_uri
    except ImportError:
        log.warning("hpo.tracking is not available: the sweep is not tracked in MLflow")
        return None
    mlflow_cfg = setup.mlflow or {}
    uri = mlflow_cfg.get("tracking_uri") or default_tracking_uri(
        setup.base_spec.get("results_dir") or setup.sweep_dir)
    sweep_params = {k: v for k, v in setup.automl.items() if k not in ("range_override",)}
    return MlflowSweepCallback(
        uri, mlflow_cfg.get("experiment_name", "grounding_dino"), Path(setup.sweep_dir).name, sweep_params,
        setup.base_spec, space.table() if space is not None else [],
        system_metrics=bool(mlflow_cfg.get("system_metrics", True)), metric=setup.metric, mode=setup.mode,
        max_epochs=int(plan.trial_epochs or setup.trial_epochs),
        rung_milestones=plan.rung_milestones if plan.multi_fidelity else ())
