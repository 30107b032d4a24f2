"""The one ranking rule (hpo.algorithms.scoring, issue 12 part 5): its order and ties, and every place
that shows or uses a best trial reading it the same way (ledger, live table, report and summary, MLflow
tracker, no_improvement)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from hpo.algorithms.scoring import BASELINE_KEY, TrialSummary, best_trial, is_baseline, ranked

# a multi-fidelity sweep of R=9: "early" peaked at a low rung; "base" is the spec as written
TRIALS = [  # (trial_id, epochs reached, score, state)
    ("base", 9, 0.60, "done"),
    ("early", 3, 0.95, "done"),
    ("full", 9, 0.70, "done"),
    ("tie", 9, 0.70, "done"),
    ("broken", 9, 0.99, "failed"),
    ("running", 9, 0.98, "running"),
]


def _summaries() -> list[TrialSummary]:
    return [TrialSummary(t, s, e, finished=st != "running", failed=st == "failed", baseline=t == "base")
            for t, e, s, st in TRIALS]


def test_largest_budget_first_then_score_then_the_earlier_trial():
    order = [t.trial_id for t in ranked(_summaries(), "max", multi_fidelity=True)]
    assert order == ["full", "tie", "base", "early", "broken", "running"]
    assert best_trial(_summaries(), "max", multi_fidelity=True).trial_id == "full"
    # single-fidelity: every trial ran its own budget, only the score counts
    assert [t.trial_id for t in ranked(_summaries(), "max", False)][:4] == ["early", "full", "tie", "base"]
    # minimised metrics, and the baseline winning a tie because it started first
    tied = [TrialSummary("base", 0.3, 9, baseline=True), TrialSummary("x", 0.3, 9), TrialSummary("y", 0.4, 9)]
    assert best_trial(tied, "min", True).trial_id == "base"
    assert best_trial([TrialSummary("f", 0.9, 9, failed=True)], "max", True) is None


def test_baseline_marker():
    assert is_baseline({BASELINE_KEY: True, "train.optim.lr": 1e-3})
    assert not is_baseline({"train.optim.lr": 1e-3}) and not is_baseline(None)


def _ledger(tmp_path: Path):
    from hpo.sweep.ledger import Ledger

    ledger = Ledger(tmp_path, "val_mAP50", "max")
    for tid, epochs, score, state in TRIALS:
        config = {"train.optim.lr": 1e-3, **({BASELINE_KEY: True} if tid == "base" else {})}
        ledger.append("start", tid, config=config)
        for epoch in range(1, epochs + 1):
            ledger.append("result", tid, epoch=epoch, value=score if epoch == epochs else score / 2)
        if state == "done":
            ledger.append("complete", tid)
        elif state == "failed":
            ledger.append("error", tid, error="RuntimeError: x")
    return ledger


def test_every_reader_of_the_trials_picks_the_same_best(tmp_path):
    from hpo.sweep.ledger import best_record, ranked_records
    from hpo.tracking.mlflow_callback import FAILED, FINISHED, RUNNING, MlflowSweepCallback
    from hpo.tracking.mlflow_callback import TrialRecord as RunRecord
    from hpo.tracking.progress import ProgressRow, leader, render_table
    from hpo.tracking.report import normalize_trials, summary_text
    from hpo.tracking.report import ranked as report_ranked

    records = _ledger(tmp_path).trials()
    assert records["base"].baseline and not records["full"].baseline
    assert best_record(records, "max", multi_fidelity=True).trial_id == "full"
    expected = ["full", "tie", "base", "early", "broken", "running"]
    assert [r.trial_id for r in ranked_records(records, "max", True)] == expected

    states = {"done": FINISHED, "failed": FAILED, "running": RUNNING}
    table = [{"trial_id": t, "config": {"train.optim.lr": 1e-3}, "state": states[st], "score": s,
              "history": [{"epoch": e, "val_mAP50": s}], "baseline": t == "base"} for t, e, s, st in TRIALS]
    assert [t.trial_id for t in report_ranked(normalize_trials(table), "max", True)] == expected
    text = summary_text(table, metric="val_mAP50", mode="max", multi_fidelity=True)
    assert "best trial full:" in text and "vs baseline (spec as written, 0.6): +0.1000" in text

    tracker = MlflowSweepCallback("sqlite:///unused.db", "e", "s", {}, {}, [], False, multi_fidelity=True)
    tracker.trials = {t: RunRecord(t, {}, states[st], [{"epoch": e, "val_mAP50": s}], s, baseline=t == "base")
                      for t, e, s, st in TRIALS}
    assert tracker.best_trial_so_far().trial_id == "full"

    pstates = {"done": "DONE", "failed": "FAILED", "running": "RUNNING"}
    rows = [ProgressRow(t, {"lr": 1e-3}, pstates[st], epoch=e, value=s, best=s, baseline=t == "base",
                        started_at=0.0) for t, e, s, st in TRIALS]
    assert leader(rows, "max", True).trial_id == "full"
    rendered = render_table(rows, metric="val_mAP50", params=[], eta_s=None, now=1.0, mode="max",
                            multi_fidelity=True, baselines={"zero-shot": 0.5})
    header, columns, *body = rendered.splitlines()
    assert "leader full" in header and "vs baseline" in columns and "vs zero-shot" in columns
    row = next(line for line in body if line.startswith("early"))
    assert "+0.3500" in row and "+0.4500" in row  # 0.95 against the baseline trial (0.6) and zero-shot (0.5)
    assert any(line.startswith("base (baseline)") for line in body)


def test_no_improvement_counts_only_full_budget_results(tmp_path):
    """Three trials Hyperband stopped at the first rung are no evidence that the sweep stalled."""
    from hpo.sweep.monitor import Budgets, SweepMonitor

    m = SweepMonitor(str(tmp_path), "val_mAP50", "max", Budgets(no_improvement_trials=2), 1.0, full_budget=9)
    m.setup()

    def run(tid: str, epochs: int, value: float) -> None:
        trial = SimpleNamespace(trial_id=tid, config={}, error_file=None, error_msg="")
        m.on_trial_start(0, [], trial)
        for epoch in range(1, epochs + 1):
            m.on_trial_result(0, [], trial, {"val_mAP50": value, "epoch": epoch, "time_total_s": 1})
        m.on_trial_complete(0, [], trial)

    run("full", 9, 0.8)
    for tid in ("r1", "r2", "r3"):  # stopped at the first rung, worse than "full"
        run(tid, 1, 0.3)
    assert m.stop_reason is None
    run("f2", 9, 0.7)
    run("f3", 9, 0.75)
    assert m.stop_reason == "no_improvement" and "2 full-budget results" in m.stop_detail
