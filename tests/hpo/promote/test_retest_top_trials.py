"""Before promotion the top three trials (by the one ranking rule) are re-evaluated on the test data and the
report shows both scores (issue 11 part 6 d). The evaluation itself is gdino's (tests/hpo/sweep/
test_baseline_tiny_gdino.py runs it for real); here a recorder stands in for it to check which trials,
in which order, with which spec, and what a missing checkpoint does."""
from __future__ import annotations

from pathlib import Path

from hpo.algorithms.scoring import BASELINE_KEY


def _sweep(tmp_path: Path, test_data: bool = True):
    from hpo.sweep.engine import SweepSetup
    from hpo.sweep.ledger import Ledger

    dataset = {"test_data_sources": {"image_dir": "/data/test", "json_file": "/data/test.json"}} if test_data else {}
    setup = SweepSetup(sweep_dir=str(tmp_path / "sweep"), base_spec={"dataset": dataset, "train": {"num_epochs": 4}},
                       automl={}, multi_fidelity=True)
    Path(setup.sweep_dir).mkdir()
    ledger = Ledger(setup.sweep_dir, "val_mAP50", "max")
    for tid, epochs, score, keep in (("base", 4, 0.5, True), ("early", 1, 0.9, True), ("best", 4, 0.7, True),
                                     ("third", 4, 0.4, False), ("fourth", 4, 0.3, True)):
        ckpt = tmp_path / "ckpt" / tid
        if keep:
            ckpt.mkdir(parents=True)
            (ckpt / "model.ckpt").write_bytes(b"weights")
        ledger.append("start", tid, config={"train.optim.lr": 1e-3, **({BASELINE_KEY: True} if tid == "base" else {})})
        ledger.append("result", tid, epoch=epochs, value=score, checkpoint=str(ckpt))
        ledger.append("complete", tid)
    return setup


def test_the_top_three_are_retested_in_rank_order_with_both_scores(tmp_path, capsys):
    from hpo.promote import retest_top_trials

    seen = []

    def evaluate(spec):
        seen.append(spec)
        return {"AP50": 0.1 * len(seen), "AP": 0.05}

    rows = retest_top_trials(_sweep(tmp_path), tmp_path / "results", evaluate=evaluate)
    assert [r["trial_id"] for r in rows] == ["best", "base", "third"]  # full budget first; "early" is not top
    assert rows[1]["baseline"] and rows[0]["val"] == 0.7 and rows[0]["test_AP50"] == 0.1
    assert "checkpoint" in rows[2]["error"] and rows[2]["test_AP50"] is None  # pruned: said, not fatal
    assert all(s["dataset"]["test_data_sources"]["json_file"] == "/data/test.json" for s in seen)
    assert seen[0]["evaluate"]["checkpoint"].endswith("best/model.ckpt") and "automl" not in seen[0]
    page = (tmp_path / "results" / "report" / "report.html").read_text()
    assert "validation and test" in page and "base (baseline)" in page
    assert (tmp_path / "results" / "report" / "test_scores.json").is_file()
    assert "retest: #1 trial best: val val_mAP50=0.7000, test AP50=0.1000" in capsys.readouterr().out


def test_without_test_data_the_retest_is_skipped_with_a_line(tmp_path, capsys):
    from hpo.promote import retest_top_trials

    assert retest_top_trials(_sweep(tmp_path, test_data=False), tmp_path / "results", evaluate=None) == []
    assert "retest: skipped, the spec has no dataset.test_data_sources" in capsys.readouterr().out
