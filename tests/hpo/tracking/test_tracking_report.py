"""The sweep report from a trial table: files, a self-contained page, importance that sums to 1."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from hpo.tracking.report import build_report, normalize_trials, ranked, summary_text


def synthetic_trials(n: int = 24, seed: int = 0) -> list[dict]:
    """val_mAP50 depends strongly on lr (peak at 1e-3), weakly on batch size, not on `noise_param`."""
    rng = np.random.default_rng(seed)
    trials = []
    for i in range(n):
        lr = float(10 ** rng.uniform(-5, -1))
        batch = int(rng.choice([2, 4, 8]))
        optimizer = str(rng.choice(["AdamW", "SGD"]))
        quality = float(np.exp(-(np.log10(lr) + 3) ** 2)) * (0.9 + 0.01 * batch)
        epochs = 6 if i % 3 == 0 else 2
        history = [{"epoch": e, "val_mAP50": quality * e / 6, "val_loss": 1 - quality * e / 6}
                   for e in range(1, epochs + 1)]
        trials.append({"trial_id": f"t{i:02d}", "config": {"train.optim.lr": lr, "dataset.batch_size": batch,
                                                            "train.optim.optimizer": optimizer,
                                                            "noise_param": float(rng.uniform())},
                       "history": history, "state": "FINISHED" if epochs == 6 else "KILLED",
                       "score": history[-1]["val_mAP50"]})
    trials.append({"trial_id": "t99", "config": {"train.optim.lr": 1e-3, "dataset.batch_size": 2,
                                                  "train.optim.optimizer": "SGD", "noise_param": 0.5},
                   "history": [], "state": "FAILED", "score": None})
    return trials


def test_report_files_and_self_contained_page(tmp_path: Path) -> None:
    report = build_report(synthetic_trials(), tmp_path / "report", metric="val_mAP50", mode="max",
                          space_table=[{"parameter": "train.optim.lr", "range": "[1e-5, 0.1]"}],
                          stop_reason="max_recommendations")
    for name in ("leaderboard.png", "learning_curves.png", "parallel_coordinates.png", "importance.png",
                 "importance.json", "report.html"):
        assert (tmp_path / "report" / name).stat().st_size > 0, name
    page = report.html.read_text()
    assert page.count("data:image/png;base64,") == 4
    assert not re.search(r"""(src|href)=['"](?!data:)""", page)  # nothing loaded from elsewhere
    assert "t99" in page and "FAILED" in page and "[1e-5, 0.1]" in page


def test_importance_sums_to_one_and_finds_the_real_driver(tmp_path: Path) -> None:
    report = build_report(synthetic_trials(), tmp_path, metric="val_mAP50", mode="max")
    assert report.importance_method.split(";")[0] in {"fANOVA", "MDI"}
    assert "at epoch 2, 24 trials" in report.importance_method  # all trials reached epoch 2
    assert set(report.importance) == {"train.optim.lr", "dataset.batch_size", "train.optim.optimizer",
                                      "noise_param"}
    assert sum(report.importance.values()) == pytest.approx(1.0, abs=1e-6)
    assert max(report.importance, key=report.importance.get) == "train.optim.lr"


def test_too_few_trials_give_no_importance_but_a_report(tmp_path: Path) -> None:
    report = build_report(synthetic_trials()[:2], tmp_path, metric="val_mAP50", mode="max")
    assert report.importance == {} and report.html.is_file()


def test_ranking_respects_mode_and_dataframe_input() -> None:
    import pandas as pd

    frame = pd.DataFrame([{"trial_id": "a", "lr": 0.1, "state": "FINISHED", "score": 0.2},
                          {"trial_id": "b", "lr": 0.01, "state": "FINISHED", "score": 0.1},
                          {"trial_id": "c", "lr": 0.001, "state": "FAILED", "score": None}])
    trials = normalize_trials(frame)
    assert trials[0].params == {"lr": 0.1}
    assert [t.trial_id for t in ranked(trials, "max")] == ["a", "b", "c"]
    assert [t.trial_id for t in ranked(trials, "min")] == ["b", "a", "c"]


def test_summary_names_best_trial_params_and_where_to_look(tmp_path: Path) -> None:
    trials = synthetic_trials()
    best = max((t for t in trials if t["score"] is not None), key=lambda t: t["score"])
    report = build_report(trials, tmp_path, metric="val_mAP50", mode="max")
    text = summary_text(trials, metric="val_mAP50", mode="max", stop_reason="time budget",
                        results_dir=tmp_path, tracking_uri="https://u:secretpw@mlflow.example", report=report)
    assert f"best trial {best['trial_id']}" in text and "stopped because time budget" in text
    assert "train.optim.lr" in text and str(report.html) in text
    assert "secretpw" not in text and "https://***@mlflow.example" in text
