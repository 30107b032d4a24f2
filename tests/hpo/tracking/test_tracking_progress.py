"""The live progress table: rendering and ETA (the callback in a real Tune sweep runs beside the MLflow
callback in test_tracking_mlflow_sweep.py::test_sweep_layout_in_sqlite)."""
from __future__ import annotations

import pytest

from hpo.tracking.progress import ProgressRow, estimate_eta_s, format_duration, key_params, render_table


def rows() -> list[ProgressRow]:
    return [ProgressRow("a", {"train.optim.lr": 0.1, "seed": 1}, "RUNNING", epoch=2, value=0.5, best=0.5,
                        started_at=0.0, last_report_at=20.0),
            ProgressRow("b", {"train.optim.lr": 0.01, "seed": 1}, "DONE", epoch=4, value=0.7, best=0.7,
                        started_at=0.0, last_report_at=40.0, ended_at=40.0)]


def test_table_shows_state_epoch_metric_params_and_eta() -> None:
    table = render_table(rows(), metric="val_mAP50", params=key_params(rows()), eta_s=125, now=50.0)
    header, columns, first, second = table.splitlines()
    assert "2 trials" in header and "1 running" in header and "ETA 2m05s" in header
    assert columns.split()[:4] == ["trial", "state", "epoch", "val_mAP50"] and "lr" in columns
    assert first.split()[:4] == ["a", "RUNNING", "2", "0.5"]  # running trials first
    assert second.split()[:2] == ["b", "DONE"]
    assert key_params(rows()) == ["train.optim.lr"]  # `seed` is the same everywhere


def test_eta_from_pace_and_trials_left() -> None:
    # a: 10 s/epoch, 2 of 4 epochs left -> 20 s; 2 more trials of 40 s each at concurrency 1 -> 80 s
    assert estimate_eta_s(rows(), max_epochs=4, total_trials=4, now=50.0) == pytest.approx(100.0)
    assert estimate_eta_s(rows(), max_epochs=None, total_trials=None, now=50.0) is None  # no epoch cap: unknown
    assert estimate_eta_s(rows()[1:], max_epochs=4, total_trials=1, now=50.0) == 0.0  # all done
    assert format_duration(None) == "?" and format_duration(3725) == "1h02m"
