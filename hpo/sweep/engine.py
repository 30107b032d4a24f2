"""The sweep engine: a Ray Tune Tuner over the trial driver, with budgets, ledger, resume.

    setup = SweepSetup(...)             # what the sweep is; saved as <sweep dir>/sweep.json
    plan = SweepPlan(searcher, scheduler, num_samples, ...)   # from hpo.algorithms (or a test)
    with ray_cluster(address, sweep_dir) as cluster:
        run_sweep(setup, plan, cluster) -> SweepResult
        restore_sweep(sweep_dir, cluster) -> SweepResult     # after the driver died

Layout of a sweep dir: sweep.json, ledger.jsonl, status.json, tune/ (Tune's experiment state:
searcher, scheduler, trials), train/trial_<id>/ (Train runs and their checkpoints), trials/<id>/
(each trial's spec.yaml and results_dir).
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from gdino.errors import SweepError
from hpo.sweep.cluster import RayCluster
from hpo.sweep.driver import TrialContext, run_trial
from hpo.sweep.heartbeat import HeartbeatDispatcher, hub_name
from hpo.sweep.ledger import FINAL_STATES, Ledger, best_record, ranked_records  # noqa: F401 (best_record: API)
from hpo.sweep.monitor import STATUS_NAME, Budgets, BudgetStopper, SweepMonitor, read_status
from hpo.sweep.resources import TrialResources, check_trial_fits, max_concurrent_trials, plan_trial_resources

log = logging.getLogger(__name__)
SETUP_NAME = "sweep.json"
TUNE_DIR = "tune"
EXPERIMENT = "experiment"


@dataclass
class SweepPlan:
    """What the algorithm gives Tune. `trial_epochs`: each trial's epoch budget (the largest rung for
    multi-fidelity algorithms); `pauses`: the scheduler pauses or exploits trials (needs Tune checkpoints)."""

    searcher: Any = None
    scheduler: Any = None
    num_samples: int = 1
    param_space: dict[str, Any] = field(default_factory=dict)
    trial_epochs: Optional[int] = None
    pauses: bool = False
    multi_fidelity: bool = False
    # the hpo.algorithms Algorithm behind searcher/scheduler (None for hand-built plans): it decides
    # what Tune's max_concurrent_trials may be (pausing algorithms cap running trials themselves)
    algorithm: Any = None
    rung_milestones: list[int] = field(default_factory=list)  # epochs where trials stop or pause

    def tune_max_concurrent(self, max_running: Optional[int]) -> Optional[int]:
        """Tune's max_concurrent_trials for a cap of `max_running` RUNNING trials. Tune counts paused
        trials as live, so a pausing scheduler under that cap deadlocks once a rung holds more paused
        trials than the cap: the algorithm then enforces the cap itself and Tune gets None."""
        hook = getattr(self.algorithm, "tune_max_concurrent", None)
        return hook(max_running) if hook is not None else max_running


@dataclass
class SweepSetup:
    sweep_dir: str
    base_spec: dict[str, Any]
    automl: dict[str, Any]
    metric: str = "val_mAP50"
    mode: str = "max"
    algorithm: str = "asha"
    backend: str = "train"
    train_fn: str = "hpo.sweep.worker:gdino_train_fn"
    train_fn_options: dict[str, Any] = field(default_factory=dict)
    trial_epochs: int = 27
    tune_checkpoints: bool = False
    multi_fidelity: bool = False
    resources: Optional[dict[str, Any]] = None
    max_concurrent: Optional[int] = None
    mlflow: Optional[dict[str, Any]] = None
    rung_milestones: list[int] = field(default_factory=list)
    # dotted paths of secrets masked in base_spec/mlflow (hpo.secrets): never stored, taken from the env
    secret_paths: list[str] = field(default_factory=list)
    # measured baselines (hpo.sweep.baseline), e.g. {"zero-shot": val_mAP50 of the pretrained checkpoint}
    baselines: dict[str, float] = field(default_factory=dict)

    def save(self) -> None:
        path = Path(self.sweep_dir) / SETUP_NAME
        path.write_text(json.dumps(asdict(self), indent=1, default=str))

    @classmethod
    def load(cls, sweep_dir: str | Path) -> "SweepSetup":
        path = Path(sweep_dir) / SETUP_NAME
        if not path.is_file():
            raise SweepError(f"{sweep_dir} is not a sweep directory (no {SETUP_NAME})",
                             hint="pass the directory printed when the sweep started")
        data = json.loads(path.read_text())
        data["sweep_dir"] = str(Path(sweep_dir).resolve())  # the dir may have been moved
        return cls(**data)

    @property
    def automl_config(self) -> Any:
        from gdino.config.automl import AutoMLConfig

        return AutoMLConfig.model_validate(self.automl)


@dataclass
class SweepResult:
    sweep_dir: str
    metric: str
    mode: str
    state: str  # running | finished | stopped | failed
    stop_reason: Optional[str]
    stop_detail: Optional[str]
    best_trial_id: Optional[str]
    best_config: Optional[dict[str, Any]]
    best_score: Optional[float]
    best_epoch: Optional[int]
    best_checkpoint: Optional[str]
    trials: list[dict[str, Any]]
    best_is_baseline: bool = False          # the spec as written won (automl.baseline_trial)
    baseline_trial_id: Optional[str] = None
    baseline_score: Optional[float] = None
    promotion: Optional[str] = None        # hpo.promote's summary, when the best trial was promoted
    promotion_error: Optional[str] = None  # which promotion step failed (the sweep itself succeeded)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_text(self) -> str:
        lines = [f"sweep {self.sweep_dir}: {self.state}"
                 + (f" (stop: {self.stop_reason}: {self.stop_detail})" if self.stop_reason else ""),
                 ""]
        names = [row["trial_id"] + (" (baseline)" if row.get("baseline") else "") for row in self.trials]
        width = max([len("trial"), *map(len, names)]) + 2
        lines[1] = f"{'trial':<{width}}{'state':<12}{'score':>10}{'epoch':>7}  config"
        for name, row in zip(names, self.trials):
            score = f"{row['score']:.4f}" if row.get("score") is not None else "-"
            config = ", ".join(f"{k}={v}" for k, v in (row.get("config") or {}).items() if not k.startswith("__"))
            lines.append(f"{name:<{width}}{row['state']:<12}{score:>10}{row.get('best_epoch') or '-':>7}  {config}")
        if self.best_trial_id:
            lines.append(f"best: trial {self.best_trial_id} {self.metric}={self.best_score:.4f} at epoch "
                         f"{self.best_epoch}; checkpoint {self.best_checkpoint}")
            if self.best_is_baseline:
                lines.append("the baseline (the spec as written) is the best trial: no sampled configuration beat it")
        if self.promotion:
            lines.append(f"promoted: {self.promotion}")
        if self.promotion_error:
            lines.append(self.promotion_error)
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------ trainable
def trial_context(setup: SweepSetup, secrets: Optional[dict[str, str]] = None) -> TrialContext:
    """`secrets`: the values behind setup.secret_paths (hpo.secrets), carried in memory (Ray's object
    store, via tune.with_parameters), never in a file."""
    automl = setup.automl_config
    return TrialContext(sweep_dir=setup.sweep_dir, base_spec=setup.base_spec, metric=setup.metric,
                        mode=setup.mode, trial_epochs=setup.trial_epochs,
                        resources=TrialResources(**setup.resources), train_fn=setup.train_fn,
                        train_fn_options=setup.train_fn_options, keep_checkpoints=automl.keep_checkpoints,
                        max_failures=automl.max_failures, stale_timeout_s=automl.stale_timeout_s,
                        tune_checkpoints=setup.tune_checkpoints, multi_fidelity=setup.multi_fidelity,
                        secret_paths=list(getattr(setup, "secret_paths", None) or []),
                        secret_values=dict(secrets or {}), heartbeat_hub=hub_name(setup.sweep_dir))


def make_trainable(setup: SweepSetup, secrets: Optional[dict[str, str]] = None) -> Any:
    from ray import tune

    resources = TrialResources(**setup.resources)
    return tune.with_resources(tune.with_parameters(run_trial, ctx=trial_context(setup, secrets)),
                               resources.driver_resources())


def _tune_path(sweep_dir: str | Path) -> Path:
    return Path(sweep_dir).resolve() / TUNE_DIR / EXPERIMENT


# ------------------------------------------------------------------------------------------ run
def prepare(setup: SweepSetup, plan: SweepPlan, cluster: RayCluster) -> None:
    """Resources, concurrency and the epoch budget, fixed before anything launches."""
    automl = setup.automl_config
    cluster_resources = cluster.resources()
    res = plan_trial_resources(setup.base_spec, automl, cluster_resources, backend=setup.backend)
    check_trial_fits(res, cluster_resources)  # hang 2
    setup.resources = res.to_dict()
    setup.max_concurrent = max_concurrent_trials(res, cluster_resources, automl.max_concurrent)
    if plan.trial_epochs:
        setup.trial_epochs = int(plan.trial_epochs)
    setup.tune_checkpoints = bool(plan.pauses)
    setup.multi_fidelity = bool(plan.multi_fidelity)
    setup.rung_milestones = [int(m) for m in plan.rung_milestones]
    if setup.multi_fidelity:
        align_validation(setup.base_spec, setup.rung_milestones)
    _say(epoch_budget_line(setup, plan))


def _say(line: str) -> None:
    """A line the user must see (the plan's budget, a changed setting): printed and logged."""
    print(line, flush=True)
    log.info(line)


def epoch_budget_line(setup: SweepSetup, plan: SweepPlan) -> str:
    """'epochs per trial: ... (why)': a spec's train.num_epochs is never replaced without a word."""
    spec_epochs = (setup.base_spec.get("train") or {}).get("num_epochs")
    if plan.algorithm is not None:
        from hpo.algorithms.budget import epoch_plan_line

        return epoch_plan_line(plan.algorithm, spec_epochs)
    why = "set by the sweep plan"
    if spec_epochs is not None and int(spec_epochs) != setup.trial_epochs:
        why += f"; train.num_epochs={spec_epochs} from the spec is replaced"
    return f"epochs per trial: {setup.trial_epochs} ({why})"


def align_validation(base_spec: dict[str, Any], milestones: list[int]) -> None:
    """Every rung budget (and PBT perturbation epoch) gets a validation, hence a report at exactly that
    epoch: otherwise rungs compare results past their budget and the KDE/DE models never see a budget.
    Lowers train.validation_interval to the largest value that divides every milestone, and says so."""
    from hpo.algorithms.budget import aligned_validation_interval

    if not milestones:
        return
    train = base_spec.setdefault("train", {})
    current = int(train.get("validation_interval") or 1)
    aligned = aligned_validation_interval(current, milestones)
    if aligned != current:
        train["validation_interval"] = aligned
        _say(f"train.validation_interval={current} -> {aligned}: every rung budget "
             f"({', '.join(str(m) for m in milestones)}) needs a validation")


def _owns_metric(obj: Any) -> bool:
    return obj is not None and (getattr(obj, "_metric", None) or getattr(obj, "metric", None)) is not None


def run_sweep(setup: SweepSetup, plan: SweepPlan, cluster: RayCluster,
              callbacks: Optional[list[Any]] = None, tracker: Any = None,
              progress: bool = True, secrets: Optional[dict[str, str]] = None) -> SweepResult:
    """Run the sweep to its first budget. `tracker`: an hpo.tracking MlflowSweepCallback (finished, with
    the report, at the end); `progress`: print the live trial table; `secrets`: hpo.secrets values the
    redacted setup lacks (in memory only)."""
    from ray import tune

    Path(setup.sweep_dir).mkdir(parents=True, exist_ok=True)
    prepare(setup, plan, cluster)
    setup.save()
    automl = setup.automl_config
    res = TrialResources(**setup.resources)
    monitor = SweepMonitor(setup.sweep_dir, setup.metric, setup.mode, Budgets.from_automl(automl),
                           res.accelerator_count,
                           full_budget=setup.trial_epochs if setup.multi_fidelity else None)
    monitor.write_status(state="running", max_concurrent=setup.max_concurrent, driver_pid=os.getpid())
    measure_baselines(setup, tracker)
    # searchers/schedulers built with their own metric refuse a second one from TuneConfig
    give_metric = not (_owns_metric(plan.searcher) or _owns_metric(plan.scheduler))
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")  # resume loses at most ~1 s of searcher state
    tuner = tune.Tuner(
        make_trainable(setup, secrets),
        param_space=dict(plan.param_space or {}),
        tune_config=tune.TuneConfig(
            metric=setup.metric if give_metric else None, mode=setup.mode if give_metric else None,
            search_alg=plan.searcher, scheduler=plan.scheduler, num_samples=plan.num_samples,
            max_concurrent_trials=plan.tune_max_concurrent(setup.max_concurrent), reuse_actors=False),
        run_config=tune.RunConfig(
            name=EXPERIMENT, storage_path=str(Path(setup.sweep_dir).resolve() / TUNE_DIR),
            # a trial whose driver died (its node gone) is retried, and resumes from its last checkpoint
            # (Tune's, or its Train run's: same name and storage); worker failures Train retries itself
            failure_config=tune.FailureConfig(max_failures=automl.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=_tune_checkpoints_to_keep(plan))
            if setup.tune_checkpoints else None,
            stop=BudgetStopper(monitor),
            callbacks=[monitor, *_with_heartbeats(setup, _observers(setup, plan.num_samples, tracker, progress)),
                       *(callbacks or [])],
            verbose=0))
    return _finish(setup, tuner, tracker)


def _tune_checkpoints_to_keep(plan: SweepPlan) -> Optional[int]:
    """Pausing schedulers only un-pause from a trial's latest checkpoint: keep 1. PBT hands a donor's
    checkpoint to the exploited trial, whose checkpoint manager then owns (and later deletes) that
    path; with few kept, the donor's own manager fails on the deleted dir (FileNotFoundError in Ray's
    register_checkpoint, which stopped a PBT sweep here): PBT keeps every Tune checkpoint."""
    from ray.tune.schedulers import PopulationBasedTraining

    return None if isinstance(plan.scheduler, PopulationBasedTraining) else 1


def _observers(setup: SweepSetup, total_trials: int, tracker: Any, progress: bool) -> list[Any]:
    observers = [tracker] if tracker is not None else []
    if progress:
        from hpo.tracking.progress import SweepProgressCallback

        observers.append(SweepProgressCallback(setup.metric, setup.mode, max_epochs=setup.trial_epochs,
                                               total_trials=total_trials, multi_fidelity=setup.multi_fidelity,
                                               baselines=dict(setup.baselines)))
    return observers


def measure_baselines(setup: SweepSetup, tracker: Any = None) -> None:
    """The zero-shot score of the pretrained checkpoint the sweep starts from (hpo.sweep.baseline),
    measured once before any trial, as a Ray task with one trial's resources; kept in sweep.json and
    logged on the MLflow parent run as `baseline_val_mAP50`."""
    from hpo.sweep import baseline

    checkpoint = baseline.pretrained_checkpoint(setup.base_spec)
    if checkpoint is None or baseline.ZERO_SHOT in setup.baselines:
        return
    print(f"baseline: measuring the zero-shot {setup.metric} of {checkpoint} (a Ray task with one trial's "
          "resources)", flush=True)
    value = baseline.measure_zero_shot(setup.base_spec, setup.sweep_dir,
                                       TrialResources(**setup.resources).single_process_resources())
    setup.baselines[baseline.ZERO_SHOT] = value
    setup.save()
    print(f"baseline: zero-shot {setup.metric} = {value:.4f}", flush=True)
    if tracker is not None:
        tracker.log_baseline_score(baseline.ZERO_SHOT_METRIC, value)


def _with_heartbeats(setup: SweepSetup, observers: list[Any]) -> list[Any]:
    """The observers plus the dispatcher that feeds them the trials' heartbeats (hpo.sweep.heartbeat)."""
    return [*observers, HeartbeatDispatcher(setup.sweep_dir, observers)]


def restore_sweep(sweep_dir: str | Path, cluster: RayCluster,
                  secrets: Optional[dict[str, str]] = None) -> SweepResult:
    """`secrets`: hpo.secrets values (from the env or the spec given again) the redacted setup lacks."""
    from ray import tune

    setup = SweepSetup.load(sweep_dir)
    path = _tune_path(setup.sweep_dir)
    if not tune.Tuner.can_restore(str(path)):
        raise SweepError(f"{sweep_dir} holds no restorable Tune experiment (looked in {path})",
                         hint="the sweep died before its first checkpoint: launch it again")
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    _update_status(setup.sweep_dir, state="running", driver_pid=os.getpid(), resumed_at=time.time())
    tuner = tune.Tuner.restore(str(path), trainable=make_trainable(setup, secrets), resume_unfinished=True,
                               resume_errored=False, restart_errored=False)
    tracker = restored_tracker(tuner)
    if tracker is not None:
        reattach_tracker(tracker, setup, secrets or {})
    return _finish(setup, tuner, tracker)


def reattach_tracker(tracker: Any, setup: SweepSetup, secrets: dict[str, str]) -> None:
    """The unpickled tracker holds a redacted tracking URI and the spill path of the dir it was saved in:
    give it the real URI (a secret, in memory) and the spill file of this sweep dir (which may have moved)."""
    from hpo.tracking.writer import spill_path_for

    if secrets.get("mlflow.tracking_uri"):
        tracker.tracking_uri = secrets["mlflow.tracking_uri"]
    tracker.spill_path = str(spill_path_for(setup.sweep_dir))


def restored_tracker(tuner: Any) -> Any:
    """The MLflow tracker inside a restored Tuner: Tune unpickled it with its trial table (get_state /
    set_state), and it finds its runs again by their tags; None when the sweep was not tracked."""
    from hpo.tracking.mlflow_callback import MlflowSweepCallback

    local = getattr(tuner, "_local_tuner", None)  # Tuner has no public accessor in Ray 2.60
    if local is None:  # Ray Client mode: the tuner lives remotely; the sweep goes on untracked
        log.warning("the restored sweep's MLflow tracker is not reachable (Ray Client): no report at the end")
        return None
    run_config = local.get_run_config()
    return next((c for c in run_config.callbacks or () if isinstance(c, MlflowSweepCallback)), None)


def _finish(setup: SweepSetup, tuner: Any, tracker: Any = None) -> SweepResult:
    try:
        tuner.fit()
    except Exception as err:  # Tune's own errors (not trial errors, which are recorded per trial)
        if tracker is not None:
            tracker.finish(None, f"error: {err}", status="FAILED")
        raise SweepError(f"the sweep stopped with an error: {err}",
                         hint=f"resume it with `grounding_dino automl resume {setup.sweep_dir}`") from err
    status = read_status(setup.sweep_dir)
    records = Ledger(setup.sweep_dir, setup.metric, setup.mode).trials()
    unfinished = [rec for rec in records.values() if rec.state not in FINAL_STATES]
    for rec in unfinished:  # started, but never reached Tune's saved state (driver death, Ctrl-C)
        Ledger(setup.sweep_dir, setup.metric, setup.mode).append("abandoned", rec.trial_id)
    reason = status.get("stop_reason") or ("interrupted" if unfinished else "trials")
    detail = status.get("stop_detail") or (
        f"{len(unfinished)} trial(s) did not finish; resume with `grounding_dino automl resume {setup.sweep_dir}`"
        if unfinished else "every planned trial finished")
    _write_final_status(setup.sweep_dir, reason, detail)
    result = collect_result(setup)
    if tracker is not None:
        report_sweep(setup, result, tracker)
    if reason == "fail_fast":
        raise SweepError(f"sweep stopped: {detail}",
                         hint=f"fix the error (trial logs under {setup.sweep_dir}/tune) and launch again")
    return result


def report_sweep(setup: SweepSetup, result: SweepResult, tracker: Any) -> None:
    """The report (<results_dir>/report), the parent run's best trial + report (waits for MLflow), and
    the summary printed at the end. A report that cannot be drawn never fails the sweep."""
    from hpo.sweep.baseline import ZERO_SHOT, zero_shot_warning
    from hpo.tracking.report import build_report, summary_text

    results_dir = Path(setup.base_spec.get("results_dir") or setup.sweep_dir)
    reason = f"{result.stop_reason}: {result.stop_detail}" if result.stop_detail else str(result.stop_reason)
    report = None
    try:
        report = build_report(tracker.trial_table(), results_dir / "report", metric=setup.metric,
                              mode=setup.mode, space_table=getattr(tracker, "space_table", None),
                              stop_reason=reason, multi_fidelity=setup.multi_fidelity,
                              baselines=setup.baselines)
    except Exception:  # plotting problems (fonts, backends) must not lose the sweep
        log.exception("the sweep report could not be built")
    best = None
    if result.best_trial_id is not None:
        best = {"trial_id": result.best_trial_id, "score": result.best_score, "params": result.best_config,
                "metrics": {setup.metric: result.best_score, "epoch": result.best_epoch}}
    warning = zero_shot_warning(setup.baselines.get(ZERO_SHOT), [r.get("score") for r in result.trials],
                                setup.mode)
    if warning is not None:  # the summary below prints it too
        tracker.set_parent_tags({"warning": warning, "zero_shot_beats_every_trial": "true"})
    tracker.finish(best, reason, report_dir=report.directory if report is not None else None,
                   status="FAILED" if result.stop_reason == "fail_fast" else "FINISHED")
    print(summary_text(tracker.trial_table(), metric=setup.metric, mode=setup.mode, stop_reason=reason,
                       results_dir=results_dir, tracking_uri=tracker.tracking_uri, report=report,
                       multi_fidelity=setup.multi_fidelity, baselines=setup.baselines), flush=True)


def _write_final_status(sweep_dir: str, reason: str, detail: str) -> None:
    _update_status(sweep_dir, state="stopped" if reason != "trials" else "finished", stop_reason=reason,
                   stop_detail=detail)


def _update_status(sweep_dir: str, **values: Any) -> None:
    path = Path(sweep_dir) / STATUS_NAME
    status = read_status(sweep_dir)
    status.update(values)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(status, indent=1, default=str))
    tmp.replace(path)


# ------------------------------------------------------------------------------------------ results
def collect_result(setup: SweepSetup) -> SweepResult:
    status = read_status(setup.sweep_dir)
    records = Ledger(setup.sweep_dir, setup.metric, setup.mode).trials()
    best = best_record(records, setup.mode, setup.multi_fidelity)  # the one rule (hpo.algorithms.scoring)
    baseline = next((r for r in records.values() if r.baseline), None)
    return SweepResult(
        sweep_dir=setup.sweep_dir, metric=setup.metric, mode=setup.mode,
        state=str(status.get("state", "unknown")), stop_reason=status.get("stop_reason"),
        stop_detail=status.get("stop_detail"),
        best_trial_id=best.trial_id if best else None,
        # "__" keys (e.g. the baseline marker) are the sweep's own, never spec values
        best_config={k: v for k, v in best.config.items() if not k.startswith("__")} if best else None,
        best_score=best.score if best else None, best_epoch=best.best_epoch if best else None,
        best_checkpoint=best.checkpoint if best else None,
        trials=[r.to_row() for r in records.values()],
        best_is_baseline=bool(best is not None and best.baseline),
        baseline_trial_id=baseline.trial_id if baseline else None,
        baseline_score=baseline.score if baseline else None)
