"""What a sweep keeps on disk: a trial's checkpoints, their optimizer state, and the sweep's disk budget.

The rules (docs/ARCHITECTURE.md, "Checkpoints and disk"):

- a checkpoint reaches Tune complete or not at all: it is written under a temporary name and renamed
  (`publish_directory`), and nothing is pruned until Tune has acknowledged a newer one, i.e. until
  `ray.tune.report` returned (`TrialCheckpoints.acknowledged`): Tune may still be copying the older one;
- optimizer state only in a trial's latest checkpoint (the one a paused or failed trial resumes from);
  older kept checkpoints, and all of a trial's checkpoints once it finished its budget, keep weights only
  (`drop_optimizer_state`);
- `automl.keep_checkpoints` best checkpoints by the metric, plus the latest;
- after the sweep (and its promotion), finished trials keep weights only; with
  `automl.delete_intermediate_ckpt`, finished trials other than the best keep nothing and the best keeps
  only its chosen checkpoint; unfinished trials keep their latest (`tidy_after_sweep`);
- `automl.max_disk_gb` caps the sweep directory (`disk_usage_bytes`, checked by the sweep monitor).
"""
from __future__ import annotations

import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

log = logging.getLogger(__name__)

MODEL_FILE = "model.ckpt"  # what hpo.sweep.worker's report callback writes into a checkpoint dir


def publish_directory(source: str | Path, target: str | Path) -> Path:
    """Copy `source` to `target` atomically: a reader sees the whole directory or none of it."""
    target = Path(target)
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    shutil.copytree(source, staging)
    if target.exists():  # a resumed trial reporting the same epoch again: the newer copy wins
        shutil.rmtree(target)
    staging.rename(target)
    return target


SCORE_FILE = "gdino_score.json"  # the metric a published checkpoint was reported with


def write_score(checkpoint_dir: str | Path, score: Optional[float]) -> None:
    import json

    Path(checkpoint_dir, SCORE_FILE).write_text(json.dumps({"score": score}))


def read_score(checkpoint_dir: str | Path) -> Optional[float]:
    import json

    try:
        value = json.loads(Path(checkpoint_dir, SCORE_FILE).read_text()).get("score")
    except (OSError, ValueError):
        return None
    return float(value) if value is not None else None


def drop_optimizer_state(checkpoint_dir: str | Path) -> int:
    """Rewrite the checkpoint's model file without optimizer/scheduler state; the bytes saved (0 when it
    had none or is gone: Ray Train may have pruned it meanwhile)."""
    import torch

    from gdino.engine.callbacks import OPTIMIZER_KEYS  # (imports Lightning: only where a checkpoint changes)
    from gdino.model.checkpoints.reading import load_object

    file = Path(checkpoint_dir) / MODEL_FILE
    if not file.is_file():
        return 0
    before = file.stat().st_size
    state = load_object(file)  # weights-only, with the allow-list for our own Lightning checkpoints
    if not isinstance(state, dict) or not any(key in state for key in OPTIMIZER_KEYS):
        return 0
    for key in OPTIMIZER_KEYS:
        state.pop(key, None)
    staging = file.with_name(f".{file.name}.{uuid.uuid4().hex[:8]}.tmp")
    torch.save(state, str(staging))
    os.replace(staging, file)  # atomic: a concurrent reader sees the old or the new file
    return before - file.stat().st_size


@dataclass
class TrialCheckpoints:
    """One trial's checkpoints as its driver sees them, in the order Tune acknowledged them.

    `prune`: delete checkpoints beyond the best `keep` (the function backend owns its copies; Ray Train
    prunes its own)."""

    keep: int
    mode: str
    prune: bool
    scores: dict[str, float] = field(default_factory=dict)  # path -> score, in acknowledgement order

    def acknowledged(self, path: Optional[str], score: Optional[float]) -> None:
        """Tune has `path` (ray.tune.report returned): older checkpoints may now change or go."""
        if not path:
            return
        sign = 1.0 if self.mode == "max" else -1.0
        self.scores.pop(path, None)
        self.scores[path] = sign * float(score) if score is not None else float("-inf")
        older = [p for p in self.scores if p != path]
        if self.prune:
            ranked = sorted(self.scores, key=self.scores.__getitem__, reverse=True)
            for stale in ranked[self.keep:]:
                if stale != path:  # the latest stays: Tune restores a paused trial from it
                    shutil.rmtree(stale, ignore_errors=True)
                    self.scores.pop(stale)
        for other in older:
            if other in self.scores:
                drop_optimizer_state(other)

    def adopt(self, folder: str | Path) -> None:
        """Take over the checkpoints an earlier run of this trial published in `folder` (a paused trial
        resumes in a new process), oldest first, so that keep_checkpoints spans the pause."""
        for path in sorted(Path(folder).glob("epoch_*")):
            if path.is_dir() and not path.name.endswith(".tmp"):
                score = read_score(path)
                sign = 1.0 if self.mode == "max" else -1.0
                self.scores[str(path)] = sign * score if score is not None else float("-inf")

    def finished(self) -> None:
        """The trial trained its whole budget: nothing resumes it, so no checkpoint needs optimizer state."""
        for path in self.scores:
            drop_optimizer_state(path)


# ------------------------------------------------------------------------------------------ after the sweep
def tidy_after_sweep(sweep_dir: str | Path, metric: str, mode: str, multi_fidelity: bool,
                     delete_intermediate: bool) -> int:
    """After the sweep and its promotion. Finished trials never resume: their checkpoints lose optimizer
    state (a trial a scheduler stopped never returned from training, so nothing did it yet) and Tune's
    copies of them go. With `automl.delete_intermediate_ckpt`, finished trials other than the best keep no
    checkpoint and the best keeps only the one the ledger chose (the promoted one). Unfinished trials (a
    sweep stopped by a budget, to be resumed) keep their latest checkpoint, with its optimizer state.
    Returns the bytes freed."""
    from hpo.sweep.ledger import Ledger, best_record

    records = Ledger(sweep_dir, metric, mode).trials()
    best = best_record(records, mode, multi_fidelity)
    before = directory_bytes(sweep_dir)
    for rec in records.values():
        paths = _existing_checkpoints(p.get("checkpoint") for p in rec.history)
        if rec.state != "TERMINATED":
            doomed = paths[:-1]  # resumable: the latest stays as it is
        elif not delete_intermediate:
            doomed = []
        elif best is not None and rec.trial_id == best.trial_id:
            doomed = [p for p in paths if p != rec.checkpoint]
        else:
            doomed = paths
        for path in doomed:
            shutil.rmtree(path, ignore_errors=True)
        if rec.state == "TERMINATED":
            for path in paths:
                if path not in doomed:
                    drop_optimizer_state(path)
            for tune_copy in Path(sweep_dir).glob(f"tune/*/*{rec.trial_id}*/checkpoint_*"):
                shutil.rmtree(tune_copy, ignore_errors=True)  # only for un-pausing, which is over
    freed = max(0, before - directory_bytes(sweep_dir))
    if freed:
        log.info("freed %.1f MB of checkpoints of finished trials%s", freed / 1e6,
                 " (automl.delete_intermediate_ckpt)" if delete_intermediate else "")
    return freed


def tidy_sweep(setup: Any, result: Any) -> None:
    """`tidy_after_sweep` for a SweepSetup and its SweepResult, unless the sweep was interrupted (then every
    trial may resume, and nothing changes)."""
    if result.state not in ("finished", "stopped"):
        return
    try:
        tidy_after_sweep(setup.sweep_dir, setup.metric, setup.mode, bool(setup.multi_fidelity),
                         bool((setup.automl or {}).get("delete_intermediate_ckpt", True)))
    except OSError as err:  # the sweep and its promotion are done: a tidy-up problem only costs disk
        log.warning("could not tidy the checkpoints of %s: %s", setup.sweep_dir, err)


def _existing_checkpoints(paths: Iterable[Optional[str]]) -> list[str]:
    seen: list[str] = []
    for path in paths:
        if path and path not in seen and Path(path).is_dir():
            seen.append(path)
    return seen


# ------------------------------------------------------------------------------------------ disk budget
def directory_bytes(path: str | Path) -> int:
    """Bytes of the files under `path` (hard links once), 0 when it is gone."""
    total, seen = 0, set()
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:  # pruned while we walked
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def disk_budget_exceeded(sweep_dir: str | Path, max_disk_gb: Optional[float],
                         headroom: float = 0.0) -> Optional[str]:
    """A stop message when the sweep directory holds more than `max_disk_gb` (minus `headroom` GB, the
    room one more checkpoint needs), else None."""
    if max_disk_gb is None:
        return None
    used = directory_bytes(sweep_dir) / 1e9
    limit = float(max_disk_gb) - headroom
    if used < limit:
        return None
    return (f"the sweep directory {sweep_dir} holds {used:.2f} GB, at the automl.max_disk_gb limit "
            f"({max_disk_gb:g} GB{f', less {headroom:.2f} GB for the next checkpoint' if headroom else ''})")
