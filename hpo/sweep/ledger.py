"""The trial ledger: one JSON line per event in `<sweep dir>/ledger.jsonl`, appended and flushed as
it happens, so a dead driver loses nothing that was recorded. Folding the lines gives every trial's
config, state, score, best epoch and checkpoint (`TrialRecord`).

States: PENDING -> RUNNING -> TERMINATED (finished or stopped early by the scheduler) | ERROR | STALE.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

LEDGER_NAME = "ledger.jsonl"
FINAL_STATES = ("TERMINATED", "ERROR", "STALE", "ABANDONED")
# ABANDONED: started by a driver that died before Tune saved the trial; its config is suggested again
_FINAL_EVENTS = {"complete": "TERMINATED", "error": "ERROR", "stale": "STALE", "abandoned": "ABANDONED"}


def metric_mode(metric: str) -> str:
    """TAO's direction rule: names containing 'loss' are minimised, everything else maximised."""
    try:
        from hpo.algorithms.scoring import metric_mode as shared  # the one place the rule is stated

        return shared(metric)
    except ImportError:
        return "min" if "loss" in metric.lower() else "max"


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

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row.pop("history")
        return row


def update_score(record: TrialRecord, mode: str) -> None:
    """A trial's score is its best epoch's value (ties: the later epoch, as TAO); that epoch's
    checkpoint, or failing that the latest one before it, is the trial's checkpoint."""
    best: Optional[dict[str, Any]] = None
    for point in record.history:
        value = point.get("value")
        if value is None or not math.isfinite(value):
            continue
        if best is None or (value >= best["value"] if mode == "max" else value <= best["value"]):
            best = point
    if best is None:
        return
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
