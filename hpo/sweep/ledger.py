"""The trial ledger: one JSON line per event in `<sweep dir>/ledger.jsonl`, appended and flushed as
it happens, so a dead driver loses nothing that was recorded. Folding the lines gives every trial's
config, state, score, best epoch and checkpoint (`TrialRecord`).

States: PENDING -> RUNNING -> TERMINATED (finished or stopped early by the scheduler) | ERROR | STALE.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from hpo.algorithms.scoring import BASELINE_KEY, TrialSummary, best_epoch, best_item, metric_mode, rank_items

__all__ = ["Ledger", "TrialRecord", "FINAL_STATES", "FAILED_STATES", "LEDGER_NAME", "metric_mode", "update_score"]

LEDGER_NAME = "ledger.jsonl"
FINAL_STATES = ("TERMINATED", "ERROR", "STALE", "ABANDONED")
# ABANDONED: started by a driver that died before Tune saved the trial; its config is suggested again
_FINAL_EVENTS = {"complete": "TERMINATED", "error": "ERROR", "stale": "STALE", "abandoned": "ABANDONED"}


FAILED_STATES = ("ERROR", "STALE")


@dataclass
class TrialRecord:
    trial_id: str
    config: dict[str, Any] = field(default_factory=dict)
    state: str = "PENDING"
    score: Optional[float] = None
    best_epoch: Optional[int] = None
    checkpoint: Optional[str] = None
    last_epoch: int = 0
    starts: int = 0
    error: Optional[str] = None
    wall_s: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)  # {epoch, value, checkpoint}
    baseline: bool = False  # the spec as written (automl.baseline_trial)

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row.pop("history")
        return row

    def summary(self) -> TrialSummary:
        """What the one ranking rule (hpo.algorithms.scoring) reads of this record."""
        return TrialSummary(self.trial_id, self.score, self.last_epoch, finished=self.state == "TERMINATED",
                            failed=self.state in FAILED_STATES, baseline=self.baseline)


def ranked_records(records: dict[str, TrialRecord], mode: str, multi_fidelity: bool) -> list[TrialRecord]:
    """The records best first by the one ranking rule (hpo.algorithms.scoring.ranked)."""
    return rank_items(records.values(), TrialRecord.summary, mode, multi_fidelity)


def best_record(records: dict[str, TrialRecord], mode: str, multi_fidelity: bool) -> Optional[TrialRecord]:
    """The best trial by the one ranking rule (hpo.algorithms.scoring), None when none is a candidate."""
    return best_item(records.values(), TrialRecord.summary, mode, multi_fidelity)


def update_score(record: TrialRecord, mode: str) -> None:
    """A trial's score is its best epoch's value (ties: the later epoch, as TAO); that epoch's
    checkpoint, or failing that the latest one before it, is the trial's checkpoint."""
    found = best_epoch([(p.get("epoch", 0), p.get("value")) for p in record.history], mode)
    if found is None:
        return
    # the last point of that epoch with that value (a resumed trial may report an epoch twice)
    best = [p for p in record.history if p.get("epoch", 0) == found[0] and p.get("value") == found[1]][-1]
    record.score, record.best_epoch = best["value"], best["epoch"]
    with_ckpt = [p for p in record.history if p.get("checkpoint") and p["epoch"] <= best["epoch"]]
    record.checkpoint = (best.get("checkpoint") or (with_ckpt[-1]["checkpoint"] if with_ckpt else None))


class Ledger:
    def __init__(self, sweep_dir: str | Path, metric: str, mode: str) -> None:
        self.path = Path(sweep_dir) / LEDGER_NAME
        self.metric, self.mode = metric, mode

    def append(self, event: str, trial_id: str, **data: Any) -> None:
        line = json.dumps({"ts": time.time(), "event": event, "trial_id": trial_id, **data}, default=str)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def events(self) -> Iterable[dict[str, Any]]:
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a killed driver
                continue
        return out

    def trials(self) -> dict[str, TrialRecord]:
        """Fold the events, in order, into one record per trial (insertion order = first seen)."""
        records: dict[str, TrialRecord] = {}
        for e in self.events():
            rec = records.setdefault(e["trial_id"], TrialRecord(e["trial_id"]))
            kind = e["event"]
            if kind == "start":
                rec.config, rec.state, rec.starts = e.get("config", rec.config), "RUNNING", rec.starts + 1
                # the baseline while every start ran the spec as written (a PBT exploit replaces the config;
                # a member that copied the baseline's config was another trial from its first start)
                marked = bool((rec.config or {}).get(BASELINE_KEY))
                rec.baseline = marked if rec.starts == 1 else rec.baseline and marked
            elif kind == "result":
                rec.history.append({"epoch": e.get("epoch", 0), "value": e.get("value"),
                                    "checkpoint": e.get("checkpoint")})
                rec.last_epoch = max(rec.last_epoch, int(e.get("epoch", 0) or 0))
                rec.wall_s = float(e.get("time_total_s", rec.wall_s) or rec.wall_s)
                update_score(rec, self.mode)
            elif kind in _FINAL_EVENTS:
                rec.state = _FINAL_EVENTS[kind]
                rec.error = e.get("error")
        return records
