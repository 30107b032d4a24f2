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
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

from gdino.config import ExperimentConfig
from gdino.config.automl import EPOCH_FIDELITY_ALGORITHMS, AutoMLConfig
from gdino.errors import SweepError
from hpo.sweep.checkpoints import tidy_sweep
from hpo.sweep.engine import SweepPlan, SweepResult, SweepSetup, collect_result

if TYPE_CHECKING:
    from hpo.space import SearchSpace
    from hpo.tracking.mlflow_callback import MlflowSweepCallback

log = logging.getLogger(__name__)

__all__ = ["launch_sweep", "resume_sweep", "sweep_status", "SweepResult", "SweepPlan"]

GDINO_TRAIN_FN = "hpo.sweep.worker:gdino_train_fn"


def launch_sweep(spec_or_path: ExperimentConfig | Mapping[str, Any] | str | Path,
                 overrides: Optional[Sequence[str]] = None, ray_address: Optional[str] = None, *,
                 sweep_dir: Optional[str | Path] = None,
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
        if automl.baseline_trial:  # the spec as written is the first trial (hpo.sweep.baseline)
            from hpo.sweep.baseline import add_baseline_trial

            add_baseline_trial(plan, space)
        from hpo.sweep.baseline import announce_pretrained_drops

        announce_pretrained_drops(space)
    setup = SweepSetup(sweep_dir=str(directory.resolve()), base_spec=spec_dict,
                       automl=automl.model_dump(mode="json"), metric=metric, mode=mode,
                       algorithm=automl.algorithm, backend=backend, train_fn=train_fn,
                       train_fn_options=dict(train_fn_options or {}),
                       trial_epochs=int(automl.max_epochs) * int(automl.epoch_multiplier),
                       mlflow=_mlflow_dict(cfg))
    secrets = _redact_setup(setup)  # only the redacted spec is ever written; secrets travel in memory
    address = ray_address or automl.ray_address or os.environ.get("RAY_ADDRESS") or None
    log.info("sweep %s: algorithm %s, metric %s (%s)", setup.sweep_dir, automl.algorithm, metric, mode)
    with ray_cluster(address, directory, num_cpus=num_cpus, object_store_memory=object_store_memory,
                     secret_env=_secret_env(secrets)) as cluster:
        tracker = _make_tracker(setup, space, plan, secrets) if tracking else None
        result = run_sweep(setup, plan, cluster, tracker=tracker, progress=progress, secrets=secrets)
        if promote and automl.promote:  # inside: promotion runs as a Ray task where trials ran
            promote_result(result, tracking=tracking)
    tidy_sweep(setup, result)  # after promotion, which reads the best trials' checkpoints
    return result


def resume_sweep(sweep_dir: str | Path, ray_address: Optional[str] = None, *,
                 num_cpus: Optional[int] = None, object_store_memory: Optional[int] = None,
                 promote: bool = True, tracking: bool = True, spec: Any = None) -> SweepResult:
    """Continue a sweep whose driver died: Tune restores searcher, scheduler and trials; finished trials
    stay finished, unfinished ones continue from their checkpoints, the ledger carries on.

    Secrets are not stored with the sweep (hpo.secrets): they come from `spec` (the sweep's spec given
    again: a path or dict) or the environment ($TAO_ENCRYPTION_KEY, $MLFLOW_TRACKING_URI, ...); a
    missing one raises hpo.secrets.SecretMissing before anything starts."""
    from hpo.secrets import require_secrets, split_secrets
    from hpo.sweep.cluster import ray_cluster
    from hpo.sweep.engine import restore_sweep

    setup = SweepSetup.load(sweep_dir)
    given = split_secrets(_load_spec(spec, ())[1])[1] if spec is not None else None
    secrets = require_secrets(list(setup.secret_paths), setup.sweep_dir, spec_secrets=given)
    address = ray_address or setup.automl.get("ray_address") or os.environ.get("RAY_ADDRESS") or None
    with ray_cluster(address, Path(setup.sweep_dir), num_cpus=num_cpus,
                     object_store_memory=object_store_memory, secret_env=_secret_env(secrets)) as cluster:
        result = restore_sweep(setup.sweep_dir, cluster, secrets=secrets)
        if promote and setup.automl.get("promote", True) and result.state == "finished":
            promote_result(result, tracking=tracking)
    tidy_sweep(setup, result)
    return result


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


def _load_spec(spec_or_path: ExperimentConfig | Mapping[str, Any] | str | Path,
               overrides: Sequence[str]) -> tuple[ExperimentConfig, dict[str, Any]]:
    """(the validated config, the nested spec dict trials start from; workers rebuild the config from it
    with ExperimentConfig.model_validate)."""
    from gdino.spec import load_spec

    if isinstance(spec_or_path, ExperimentConfig):
        cfg = load_spec(spec_or_path.model_dump(mode="json"), list(overrides)) if overrides else spec_or_path
    else:
        source = str(spec_or_path) if isinstance(spec_or_path, Path) else dict(spec_or_path) \
            if isinstance(spec_or_path, Mapping) else spec_or_path
        cfg = load_spec(source, list(overrides))
    return cfg, cfg.model_dump(mode="json")


def _default_sweep_dir(spec_dict: Mapping[str, Any], automl: AutoMLConfig) -> Path:
    root = Path(automl.storage_path) if automl.storage_path else \
        Path(spec_dict.get("results_dir") or "results") / "automl"
    return root / time.strftime(f"sweep_{automl.algorithm}_%Y%m%d-%H%M%S")


def _mlflow_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    return cfg.mlflow.model_dump(mode="json")


def _plan_from_algorithm(cfg: ExperimentConfig, automl: AutoMLConfig, metric: str,
                         mode: str) -> tuple[SweepPlan, SearchSpace]:
    """The spec's algorithm (hpo.algorithms) over the spec's search space (hpo.space)."""
    from hpo.algorithms import make_algorithm
    from hpo.space import build_search_space

    name = automl.algorithm
    space = build_search_space(cfg, epochs_are_fidelity=name in EPOCH_FIDELITY_ALGORITHMS)
    alg = make_algorithm(name, space, automl, metric, mode, automl.seed)
    plan = SweepPlan(algorithm=alg, rung_milestones=list(alg.budgets), searcher=alg.searcher,
                     scheduler=alg.scheduler, num_samples=int(alg.num_samples), param_space=dict(alg.param_space),
                     trial_epochs=int(alg.trial_epochs),  # already x epoch_multiplier
                     pauses=alg.pauses, multi_fidelity=alg.multi_fidelity)
    return plan, space


def promote_result(result: SweepResult, *, tracking: bool = True) -> SweepResult:
    """Promote the sweep's best trial with hpo.promote (imported here: it pulls in trt and onnx).
    Failures are recorded on the result, not raised: the sweep's own results stay valid."""
    if result.best_trial_id is None:
        log.warning("no trial finished with a score: nothing to promote")
        return result
    try:
        outcome = _promote_where_trials_ran(result.sweep_dir, tracking)
    except Exception as err:  # the sweep's results stay where they are; resume promotion by hand
        step = getattr(err, "step", None)
        result.promotion_error = f"promotion failed{f' at {step}' if step else ''}: {type(err).__name__}: {err}"
        log.error("%s (the sweep's results are intact in %s)", result.promotion_error, result.sweep_dir)
        return result
    summary = getattr(outcome, "summary", None)
    result.promotion = summary() if callable(summary) else str(outcome)
    return result


PROMOTION_TASK_RECORD = "promotion_task.json"


def _promote_where_trials_ran(sweep_dir: str, tracking: bool) -> Any:
    """hpo.promote.promote_sweep as a Ray task with one trial's resources (its CPUs, a GPU when trials
    use GPUs, its custom resources), so evaluation, export and the TensorRT build run on the kind of
    node the trials ran on, not in the driver on the head node. Without Ray it runs here.
    Where it ran is written to <sweep dir>/promotion_task.json."""
    import json

    import ray

    from hpo.promote import promote_sweep
    from hpo.sweep.resources import TrialResources

    if not ray.is_initialized():
        return promote_sweep(sweep_dir, tracking=tracking)
    setup = SweepSetup.load(sweep_dir)
    if not setup.resources:
        return promote_sweep(sweep_dir, tracking=tracking)
    wanted = TrialResources(**setup.resources).single_process_resources()
    options: dict[str, Any] = {"num_cpus": wanted.pop("CPU"), "num_gpus": wanted.pop("GPU", 0),
                               "resources": wanted,
                               "max_retries": 0}  # a failed promotion is reported, not silently repeated

    # the sweep's secrets (redacted in sweep.json) travel to the task in memory, as its argument
    from hpo.secrets import env_name

    secret_env = {env_name(p): os.environ[env_name(p)] for p in (setup.secret_paths or [])
                  if env_name(p) in os.environ}

    def promote_task(secrets: dict[str, str]) -> tuple[Any, dict[str, Any], Optional[tuple[str, str, Optional[str]]]]:
        import socket

        saved = {name: os.environ.get(name) for name in secrets}
        os.environ.update(secrets)  # read by promote_sweep's _put_back_secrets; removed again below

        context = ray.get_runtime_context()
        where = {"node_id": context.get_node_id(), "hostname": socket.gethostname(),
                 "resources": {k: v for k, v in {**options["resources"], "CPU": options["num_cpus"],
                                                 "GPU": options["num_gpus"]}.items() if v}}
        try:
            return promote_sweep(sweep_dir, tracking=tracking), where, None
        except Exception as err:  # noqa: BLE001 - returned as data: typed errors do not all unpickle
            return None, where, (type(err).__name__, str(err), getattr(err, "step", None))
        finally:  # a pooled worker process must not keep them for the next task
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    log.info("promotion runs as a Ray task with %s", options)
    outcome, where, error = ray.get(ray.remote(promote_task).options(**options).remote(secret_env))
    Path(sweep_dir, PROMOTION_TASK_RECORD).write_text(json.dumps(where, indent=2))
    log.info("promotion ran on node %s (%s)", where["node_id"][:12], where["hostname"])
    if error is not None:
        from hpo.promote import PromotionError

        name, message, step = error
        raise PromotionError(step or "unknown", f"{name}: {message}")
    return outcome


def _redact_setup(setup: SweepSetup) -> dict[str, str]:
    """Mask every secret (hpo.secrets) in the setup's spec, automl and mlflow sections, record their
    paths in `setup.secret_paths`, and return {path: value} (kept in memory only)."""
    from hpo.secrets import split_secrets

    redacted, secrets = split_secrets({"spec": setup.base_spec, "automl": setup.automl,
                                       "mlflow": setup.mlflow or {}})
    setup.base_spec, setup.automl = redacted["spec"], redacted["automl"]
    setup.mlflow = redacted["mlflow"] if setup.mlflow is not None else None
    # paths relative to the spec's root (automl.* and mlflow.* are spec sections too)
    by_path = {path.split(".", 1)[1] if path.startswith("spec.") else path: value
               for path, value in secrets.items()}
    setup.secret_paths = sorted(by_path)
    return by_path


def _secret_env(secrets: Mapping[str, str]) -> dict[str, str]:
    from hpo.secrets import secret_env

    return secret_env(secrets)


def _make_tracker(setup: SweepSetup, space: SearchSpace | None, plan: SweepPlan,
                  secrets: Optional[Mapping[str, str]] = None) -> MlflowSweepCallback:
    """The MLflow parent/child runs (hpo.tracking) of the sweep."""
    from hpo.tracking.mlflow_callback import MlflowSweepCallback, default_tracking_uri
    from hpo.tracking.writer import spill_path_for

    mlflow_cfg = setup.mlflow or {}
    uri = (secrets or {}).get("mlflow.tracking_uri") or mlflow_cfg.get("tracking_uri") or default_tracking_uri(
        setup.base_spec.get("results_dir") or setup.sweep_dir)
    sweep_params = {k: v for k, v in setup.automl.items() if k not in ("range_override",)}
    return MlflowSweepCallback(
        uri, mlflow_cfg.get("experiment_name", "grounding_dino"), Path(setup.sweep_dir).name, sweep_params,
        setup.base_spec, space.table() if space is not None else [],
        system_metrics=bool(mlflow_cfg.get("system_metrics", True)), metric=setup.metric, mode=setup.mode,
        max_epochs=int(plan.trial_epochs or setup.trial_epochs),
        rung_milestones=plan.rung_milestones if plan.multi_fidelity else (), multi_fidelity=plan.multi_fidelity,
        spill_path=str(spill_path_for(setup.sweep_dir)))  # buffered writes survive a killed driver
