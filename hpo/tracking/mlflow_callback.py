"""The sweep's MLflow layout, written from the Tune driver by a `ray.tune.Callback`.

    experiment  <mlflow.experiment_name>
    └─ parent run "sweep_<sweep_id>"   tags sweep_id, gdino.run_type=sweep, stop_reason, best_* (the one
       │   ranking rule, hpo.algorithms.scoring), baseline_trial_id, best_is_baseline, warning; metrics
       │   baseline_val_mAP50 (zero-shot score of a pretrained start), baseline_trial_<metric>
       │   params: algorithm + budget settings; artifacts: spec/resolved_spec.yaml,
       │   search_space.json, report/ (finish); metrics best_<metric> stepped by finished trials
       └─ child run "trial_<trial_id>"  tags mlflow.parentRunId, sweep_id, trial_id, state, budget, rung,
             baseline=true on the spec-as-written trial
             params: sampled hyperparameters (dotted names); metrics per epoch: val_mAP50, val_mAP,
             val_loss, train_loss, lr (+ system/* samples); status FINISHED | KILLED | FAILED (tag error)

Ray's MLflowLoggerCallback is flat and keeps its run ids only in memory, so we write our own: runs are
found again by their tags, which makes a resumed sweep (Tuner.restore, a new driver process) reuse
them. All writes go through `MlflowWriter`: a stopped server delays them, never the sweep.

Use (the sweep engine):

    tracker = MlflowSweepCallback(cfg.mlflow.tracking_uri or default_tracking_uri(results_dir),
                                  cfg.mlflow.experiment_name, sweep_id, sweep_params, resolved_spec,
                                  space_table, cfg.mlflow.system_metrics, metric, mode,
                                  max_epochs=R, rung_milestones=[...])
    progress = SweepProgressCallback(metric, mode, max_epochs=R, total_trials=n)
    results = Tuner(..., run_config=RunConfig(callbacks=[tracker, progress])).fit()
    report = build_report(tracker.trial_table(), results_dir / "report", metric=metric, mode=mode)
    tracker.finish(best, stop_reason, report_dir=report.directory)   # waits until MLflow has it all
    print(summary_text(tracker.trial_table(), metric=metric, mode=mode, report=report, ...))

After `Tuner.restore` the tracker inside the tuner is an unpickled copy whose trial table Tune
restored from its experiment checkpoint (`get_state`/`set_state`): take it from the restored
tuner's run config, or build a new tracker with the same sweep_id (it finds the same runs).
"""
from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import yaml
from ray.tune import Callback

from gdino.redact import install_log_redaction, redact, redact_text
from hpo.algorithms.scoring import BASELINE_KEY, TrialSummary, best_trial, finite
from hpo.tracking.system_metrics import SystemSampler
from hpo.tracking.writer import MlflowWriter

log = logging.getLogger(__name__)

EPOCH_METRICS = ("val_mAP50", "val_mAP", "val_loss", "train_loss", "lr")
SWEEP_HANDLE = "sweep"
FINISHED, KILLED, FAILED, RUNNING = "FINISHED", "KILLED", "FAILED", "RUNNING"


def default_tracking_uri(results_dir: str | Path) -> str:
    """`sqlite:////abs/path/mlflow.db` (four slashes before an absolute path), creating the folder."""
    directory = Path(results_dir).expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory / 'mlflow.db'}"


def artifact_location_for(tracking_uri: str) -> Optional[str]:
    """SQLite stores keep artifacts beside the database (MLflow's default is ./mlruns in the CWD);
    a server decides its own artifact store."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri[len("sqlite:///"):]).parent / "mlartifacts").as_uri()
    return None


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> dotted keys (`{"train": {"optim": {"lr": 1}}}` -> `{"train.optim.lr": 1}`)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


@dataclass
class TrialRecord:
    """One row of the trial table (the report's input); kept in Tune's experiment checkpoint."""

    trial_id: str
    config: dict[str, Any]
    state: str = RUNNING
    history: list[dict[str, float]] = field(default_factory=list)
    score: Optional[float] = None
    error: Optional[str] = None
    started_at: float = field(default_factory=time.time)
    ended_at: Optional[float] = None
    stopped_by_tune: bool = False  # the scheduler or a stopper ended it (`done` set on a result)
    baseline: bool = False  # the spec as written (automl.baseline_trial)
    segments: list[dict[str, Any]] = field(default_factory=list)  # PBT: configs after the first (one per exploit)

    @property
    def epoch(self) -> int:
        return int(self.history[-1].get("epoch", len(self.history))) if self.history else 0

    def summary(self) -> TrialSummary:
        """What the one ranking rule (hpo.algorithms.scoring) reads of this record."""
        return TrialSummary(self.trial_id, self.score, self.epoch, finished=self.state in (FINISHED, KILLED),
                            failed=self.state == FAILED, baseline=self.baseline)


class MlflowSweepCallback(Callback):
    """One parent run per sweep, one child per trial; see the module docstring for the layout."""

    def __init__(self, tracking_uri: str, experiment_name: str, sweep_id: str, sweep_params: Mapping[str, Any],
                 resolved_spec: Mapping[str, Any], space_table: Sequence[Mapping[str, Any]],
                 system_metrics: bool = True, metric: str = "val_mAP50", mode: str = "max", *,
                 max_epochs: Optional[int] = None, rung_milestones: Sequence[int] = (),
                 multi_fidelity: Optional[bool] = None,
                 system_metrics_interval_s: float = 10.0, flush_timeout_s: float = 600.0,
                 spill_path: Optional[str] = None) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.sweep_id = str(sweep_id)
        self.sweep_params = redact(flatten(dict(sweep_params)))
        self.resolved_spec = redact(dict(resolved_spec))
        self.space_table = redact([dict(r) for r in space_table])
        self.system_metrics = system_metrics
        self.metric, self.mode = metric, mode
        self.max_epochs = max_epochs  # a trial stopped by Tune before this many epochs is KILLED
        self.rung_milestones = sorted(int(m) for m in rung_milestones)
        # the ranking rule's budget criterion (default: rung milestones mean a multi-fidelity sweep)
        self.multi_fidelity = bool(self.rung_milestones) if multi_fidelity is None else bool(multi_fidelity)
        self.system_metrics_interval_s = system_metrics_interval_s
        self.flush_timeout_s = flush_timeout_s
        self.spill_path = spill_path  # the writer's spill file (the sweep dir's): nothing lost on a kill
        self.trials: dict[str, TrialRecord] = {}
        self._completed = 0
        self._init_runtime()

    # ---- runtime state: rebuilt after unpickling (Tuner.restore unpickles the callback)
    def _init_runtime(self) -> None:
        self._writer: Optional[MlflowWriter] = None
        self._sampler: Optional[SystemSampler] = None
        self._last_sample = 0.0
        self._system_step = 0
        self._started = False
        self._open_runs: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for key in ("_writer", "_sampler", "_last_sample", "_system_step", "_started", "_open_runs"):
            state.pop(key, None)
        # Tune pickles callbacks into the sweep dir: never a URI's credentials (engine.reattach_tracker
        # gives a restored tracker the real URI again, from the environment or the spec)
        state["tracking_uri"] = redact_text(self.tracking_uri)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_runtime()

    @property
    def writer(self) -> MlflowWriter:
        if self._writer is None:
            self._writer = MlflowWriter(self.tracking_uri, self.experiment_name,
                                        artifact_location=artifact_location_for(self.tracking_uri),
                                        spill_path=getattr(self, "spill_path", None))
            # system-metric steps continue after the last one an earlier driver wrote (or spilled)
            self._system_step = max(self._system_step, self._writer.max_spilled_step("system/") + 1)
        return self._writer

    # ---- the parent run
    def start(self) -> None:
        """Create (or find again) the parent run and log the sweep's settings; idempotent."""
        if self._started:
            return
        self._started = True
        install_log_redaction()  # our loggers' records (e.g. MLflow errors with URLs) are masked too
        lookup = {"sweep_id": self.sweep_id, "gdino.run_type": "sweep"}
        self.writer.ensure_run(SWEEP_HANDLE, lookup_tags=lookup, tags={"state": RUNNING},
                               run_name=f"sweep_{self.sweep_id}")
        self.writer.log_params(SWEEP_HANDLE, self.sweep_params)
        with tempfile.TemporaryDirectory(prefix="gdino-sweep-") as tmp:
            spec_file = Path(tmp, "resolved_spec.yaml")
            spec_file.write_text(redact_text(yaml.safe_dump(self.resolved_spec, sort_keys=False)))
            self.writer.log_artifact(SWEEP_HANDLE, spec_file, "spec")
            space_file = Path(tmp, "search_space.json")
            space_file.write_text(json.dumps(self.space_table, indent=2, default=str))
            self.writer.log_artifact(SWEEP_HANDLE, space_file)

    @property
    def parent_run_id(self) -> Optional[str]:
        """The parent run's id (waits for MLflow to answer; None if it is unreachable for 60 s)."""
        self.start()
        return self.writer.run_id(SWEEP_HANDLE, timeout=60)

    def setup(self, **info: Any) -> None:
        self.start()

    # ---- trial events (Tune driver loop)
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.start()
        trial_id = trial.trial_id
        record = self.trials.get(trial_id)
        if record is None:
            config = dict(trial.config)
            record = self.trials[trial_id] = TrialRecord(
                trial_id, redact(flatten({k: v for k, v in config.items() if not k.startswith("__")})),
                baseline=bool(config.get(BASELINE_KEY)))
        record.state, record.stopped_by_tune, record.error = RUNNING, False, None
        record.baseline = record.baseline and bool(dict(trial.config).get(BASELINE_KEY))  # not after a PBT exploit
        handle = _handle(trial_id)
        tags = {"state": RUNNING, **({"baseline": "true"} if record.baseline else {})}
        self.writer.ensure_run(handle, lookup_tags={"sweep_id": self.sweep_id, "trial_id": trial_id,
                                                    "gdino.run_type": "trial"},
                               tags=tags, run_name=f"trial_{trial_id}" + ("_baseline" if record.baseline else ""),
                               parent=SWEEP_HANDLE)
        self.writer.log_params(handle, _param_values(record.config))
        self._log_config_segment(record, trial)
        self._open_runs.add(trial_id)

    def _log_config_segment(self, record: TrialRecord, trial: Any) -> None:
        """PBT restarts an exploited trial with its donor's weights and an explored config. MLflow params
        are write-once, so each new config is logged as params `segment<k>.<name>` (k = 1, 2, ... after
        the first config) with `segment<k>.from_epoch`, and the tag `pbt_segments` counts them."""
        config = redact(flatten({k: v for k, v in dict(trial.config).items() if not k.startswith("__")}))
        current = record.segments[-1]["config"] if record.segments else record.config
        if config == current:
            return
        k = len(record.segments) + 1
        from_epoch = int((getattr(trial, "last_result", None) or {}).get("epoch", record.epoch) or 0)
        record.segments.append({"segment": k, "from_epoch": from_epoch, "config": config})
        handle = _handle(record.trial_id)
        params = {f"segment{k}.{name}": value for name, value in _param_values(config).items()}
        self.writer.log_params(handle, {**params, f"segment{k}.from_epoch": from_epoch})
        self.writer.set_tags(handle, {"pbt_segments": k + 1})

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if trial.trial_id not in self._open_runs:  # restored mid-run without a start event
            self.on_trial_start(iteration, trials, trial)
        record = self.trials[trial.trial_id]
        epoch = int(result.get("epoch", result.get("training_iteration", len(record.history) + 1)))
        values = {k: float(v) for k, v in result.items() if k in (*EPOCH_METRICS, self.metric) and _finite(v)}
        record.history.append({"epoch": epoch, **values})
        record.score = self._best(record.score, values.get(self.metric))
        if result.get("done"):
            record.stopped_by_tune = True
        handle = _handle(trial.trial_id)
        self.writer.log_metrics(handle, values, step=epoch)
        self.writer.set_tags(handle, {"budget": epoch, "rung": self._rung(epoch, result)})
        self._maybe_sample_system_metrics()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        record = self._record(trial)
        natural_end = bool(getattr(trial, "last_result", {}).get("done")) and not record.stopped_by_tune
        reached_budget = self.max_epochs is not None and record.epoch >= self.max_epochs
        self._end_trial(record, FINISHED if natural_end or reached_budget else KILLED)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        record = self._record(trial)
        record.error = redact_text(_error_text(trial))[-2000:]
        self._end_trial(record, FAILED)

    def on_trial_heartbeat(self, trial_id: str, beat: Mapping[str, Any]) -> None:
        """A running trial's liveness (hpo.sweep.heartbeat): its running loss and the ETA of its epoch as
        `live/*` metrics of its run, stepped by training step, so a long epoch is visible as it runs."""
        if trial_id not in self._open_runs or beat.get("step") is None:
            return
        metrics = {f"live/{k}": float(beat[k]) for k in ("loss", "eta_s", "epoch") if _finite(beat.get(k))}
        if beat.get("epoch_steps"):
            metrics["live/epoch_progress"] = float(beat.get("epoch_step") or 0) / float(beat["epoch_steps"])
        self.writer.log_metrics(_handle(trial_id), metrics, step=int(beat["step"]))

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._maybe_sample_system_metrics()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        # A short wait only: finish() waits for the rest (the server may be down right now).
        if self._writer is not None and not self.writer.flush(timeout=min(10.0, self.flush_timeout_s)):
            log.warning("MLflow is behind by %d writes; they are retried until finish()", self.writer.pending)

    # ---- end of sweep
    def finish(self, best: Optional[Mapping[str, Any]], stop_reason: str, *,
               report_dir: Optional[str | Path] = None, status: str = FINISHED) -> bool:
        """Best-trial tags/metrics and the report on the parent run, end it, and wait for MLflow.

        `best`: {"trial_id", "score", "params" (or "config"), "metrics"}. Returns True when every
        write reached the store within `flush_timeout_s`."""
        self.start()
        for trial_id in list(self._open_runs):  # e.g. trials left PAUSED when a budget ran out
            self._end_trial(self.trials[trial_id], KILLED)
        tags: dict[str, Any] = {"stop_reason": redact_text(stop_reason), "state": status,
                                "num_trials": len(self.trials)}
        metrics: dict[str, float] = {}
        if best:
            tags.update(_best_tags(best))
            metrics.update(_best_metrics(best, self.metric))
        baseline = next((r for r in self.trials.values() if r.baseline), None)
        if baseline is not None:
            tags["baseline_trial_id"] = baseline.trial_id
            tags["best_is_baseline"] = str(bool(best) and best.get("trial_id") == baseline.trial_id).lower()
            if finite(baseline.score) is not None:
                metrics[f"baseline_trial_{self.metric}"] = float(baseline.score)  # type: ignore[arg-type]
        self.writer.set_tags(SWEEP_HANDLE, tags)
        self.writer.log_metrics(SWEEP_HANDLE, metrics, step=self._completed)
        if report_dir is not None:
            self.log_report(report_dir)
        self.writer.terminate(SWEEP_HANDLE, status)
        complete = self.writer.close(timeout=self.flush_timeout_s)
        if not complete:
            log.error("MLflow store incomplete: %d writes could not be delivered (%s)",
                      self.writer.pending, self.writer.last_error)
        return complete

    def log_report(self, report_dir: str | Path) -> None:
        for path in sorted(Path(report_dir).iterdir()):
            if path.is_file():
                self.writer.log_artifact(SWEEP_HANDLE, path, "report")

    def trial_table(self) -> list[dict[str, Any]]:
        """The trials as plain dicts (trial_id, config, history, state, score, error), for the report."""
        return [asdict(r) for r in self.trials.values()]

    # ---- Tune experiment checkpoint: the trial table survives a driver restart
    def get_state(self) -> Optional[dict]:
        return {"trials": {k: asdict(v) for k, v in self.trials.items()}, "completed": self._completed,
                "system_step": self._system_step}

    def set_state(self, state: dict) -> None:
        self.trials = {k: TrialRecord(**v) for k, v in state.get("trials", {}).items()}
        self.__dict__.setdefault("multi_fidelity", bool(getattr(self, "rung_milestones", ())))
        self._completed = int(state.get("completed", 0))
        self._system_step = max(self._system_step, int(state.get("system_step", 0)))

    # ---- helpers
    def _record(self, trial: Any) -> TrialRecord:
        if trial.trial_id not in self.trials:  # ended before it ever started (e.g. failed to schedule)
            self.on_trial_start(0, [], trial)
        return self.trials[trial.trial_id]

    def _end_trial(self, record: TrialRecord, state: str) -> None:
        record.state, record.ended_at = state, time.time()
        handle = _handle(record.trial_id)
        tags: dict[str, Any] = {"state": state, "budget": record.epoch}
        if record.error:
            tags["error"] = record.error
        self.writer.set_tags(handle, tags)
        self.writer.terminate(handle, state)
        self._open_runs.discard(record.trial_id)
        self._completed += 1
        best = self._best_so_far()
        if best is not None:
            self.writer.log_metrics(SWEEP_HANDLE, {f"best_{self.metric}": best}, step=self._completed)

    def _best(self, current: Optional[float], value: Optional[float]) -> Optional[float]:
        """One trial's running best epoch value (its score; hpo.algorithms.scoring.trial_score)."""
        if finite(value) is None:
            return current
        if current is None:
            return value
        return max(current, value) if self.mode == "max" else min(current, value)

    def best_trial_so_far(self) -> Optional[TrialRecord]:
        """The best ended trial by the one ranking rule (hpo.algorithms.scoring)."""
        best = best_trial([r.summary() for r in self.trials.values()], self.mode, self.multi_fidelity)
        return self.trials[best.trial_id] if best is not None else None

    def _best_so_far(self) -> Optional[float]:
        best = self.best_trial_so_far()
        return best.score if best is not None else None

    def log_baseline_score(self, name: str, value: float, tags: Optional[Mapping[str, Any]] = None) -> None:
        """A baseline figure on the parent run (e.g. `baseline_val_mAP50`, the pretrained checkpoint's
        zero-shot score) and any tags that go with it."""
        self.start()
        self.writer.log_metrics(SWEEP_HANDLE, {name: float(value)}, step=0)
        if tags:
            self.writer.set_tags(SWEEP_HANDLE, dict(tags))

    def set_parent_tags(self, tags: Mapping[str, Any]) -> None:
        self.start()
        self.writer.set_tags(SWEEP_HANDLE, dict(tags))

    def _rung(self, epoch: int, result: Mapping[str, Any]) -> int:
        if "rung" in result:
            return int(result["rung"])
        return sum(1 for m in self.rung_milestones if epoch >= m)

    def _maybe_sample_system_metrics(self) -> None:
        if not self.system_metrics or not self._open_runs:
            return
        now = time.monotonic()
        if now - self._last_sample < self.system_metrics_interval_s:
            return
        if self._sampler is None:
            self._sampler = SystemSampler()
        self._last_sample = now
        sample = self._sampler.sample()
        for trial_id in self._open_runs:
            self.writer.log_metrics(_handle(trial_id), sample, step=self._system_step)
        self._system_step += 1


def _handle(trial_id: str) -> str:
    return f"trial:{trial_id}"


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _param_values(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in config.items()}


def _error_text(trial: Any) -> str:
    """The trial's error trace: Tune writes it to error.txt in the driver's trial folder."""
    error_file = getattr(trial, "error_file", None)
    try:
        if error_file and Path(error_file).is_file():
            return Path(error_file).read_text(errors="replace")
        return str(trial.get_error() or "trial failed")
    except Exception:  # noqa: BLE001 - the error file may live on unreachable remote storage
        return f"trial failed (error file: {error_file})"


def _best_tags(best: Mapping[str, Any]) -> dict[str, Any]:
    tags: dict[str, Any] = {"best_trial_id": best.get("trial_id", ""), "best_score": best.get("score", "")}
    params = best.get("params") or best.get("config") or {}
    tags.update({f"best.{k}": v for k, v in redact(flatten(dict(params))).items()})
    return tags


def _best_metrics(best: Mapping[str, Any], metric: str) -> dict[str, float]:
    metrics = {f"best_{k}": float(v) for k, v in (best.get("metrics") or {}).items() if _finite(v)}
    if _finite(best.get("score")):
        metrics["best_score"] = float(best["score"])
    return metrics
