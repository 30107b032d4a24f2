"""The end-of-sweep report against the baselines (issue 11 part 6 d), on a real SQLite MLflow store: the
baseline trial is tagged on its run and named on the parent run, the zero-shot score of a pretrained
start is a metric of the parent run, and a zero-shot score above every trial is a warning there (tag) and
in the printed summary; the report shows each trial against both baselines."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from hpo.algorithms.scoring import BASELINE_KEY


def _trial(tid: str, config: dict, done: bool = True) -> SimpleNamespace:
    return SimpleNamespace(trial_id=tid, config=config, last_result={"done": done}, error_file=None)


def test_zero_shot_above_every_trial_is_a_warning_on_the_parent_run(tmp_path: Path, capsys) -> None:
    from mlflow import MlflowClient

    from hpo.sweep.baseline import ZERO_SHOT, ZERO_SHOT_METRIC, zero_shot_warning
    from hpo.sweep.engine import SweepResult, SweepSetup, report_sweep
    from hpo.tracking.mlflow_callback import MlflowSweepCallback

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowSweepCallback(uri, "zs", "sweep1", {}, {}, [], False, max_epochs=2)
    tracker.log_baseline_score(ZERO_SHOT_METRIC, 0.9)
    rows = []
    for tid, config, scores in (("t0", {"train.optim.lr": 1e-3, BASELINE_KEY: True}, (0.4, 0.5)),
                                ("t1", {"train.optim.lr": 1e-4}, (0.3, 0.6))):
        trial = _trial(tid, config)
        tracker.on_trial_start(0, [], trial)
        for epoch, value in enumerate(scores, 1):
            tracker.on_trial_result(0, [], trial, {"epoch": epoch, "val_mAP50": value})
        tracker.on_trial_complete(0, [], trial)
        rows.append({"trial_id": tid, "state": "TERMINATED", "score": max(scores), "baseline": tid == "t0"})
    setup = SweepSetup(sweep_dir=str(tmp_path / "sweep"), base_spec={"results_dir": str(tmp_path / "results")},
                       automl={}, baselines={ZERO_SHOT: 0.9})
    result = SweepResult(str(tmp_path / "sweep"), "val_mAP50", "max", "finished", "trials", "done", "t1",
                         {"train.optim.lr": 1e-4}, 0.6, 2, None, rows, baseline_trial_id="t0", baseline_score=0.5)
    assert zero_shot_warning(0.9, [0.5, 0.6], "max") and zero_shot_warning(0.55, [0.5, 0.6], "max") is None

    report_sweep(setup, result, tracker)
    out = capsys.readouterr().out

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("zs")
    parent = client.search_runs([experiment.experiment_id], filter_string="tags.`gdino.run_type` = 'sweep'")[0]
    assert parent.data.metrics[ZERO_SHOT_METRIC] == 0.9
    assert parent.data.tags["zero_shot_beats_every_trial"] == "true" and "zero-shot" in parent.data.tags["warning"]
    assert parent.data.tags["best_trial_id"] == "t1" and parent.data.tags["baseline_trial_id"] == "t0"
    assert parent.data.metrics["baseline_trial_val_mAP50"] == 0.5
    child = client.search_runs([experiment.experiment_id], filter_string="tags.trial_id = 't0'")[0]
    assert child.data.tags["baseline"] == "true" and "__baseline__" not in child.data.params
    assert "WARNING: the zero-shot baseline (val_mAP50=0.9) beats every trial" in out
    assert "vs baseline (zero-shot, 0.9): -0.3000" in out and "vs baseline (spec as written, 0.5): +0.1000" in out
    page = (tmp_path / "results" / "report" / "report.html").read_text()
    assert "vs zero-shot" in page and "vs spec as written" in page and "t0 (baseline)" in page


def test_test_scores_section_is_added_once(tmp_path: Path) -> None:
    from hpo.tracking.report import add_test_scores

    (tmp_path / "report.html").write_text("<html><body><h1>x</h1></body></html>")
    rows = [{"rank": 1, "trial_id": "a", "baseline": True, "val": 0.61, "test_AP50": 0.55, "test_AP": 0.3}]
    add_test_scores(tmp_path, rows)
    add_test_scores(tmp_path, rows + [{"rank": 2, "trial_id": "b", "val": 0.5, "error": "checkpoint pruned"}])
    page = (tmp_path / "report.html").read_text()
    assert page.count("validation and test") == 1 and "a (baseline)" in page and "0.55" in page
    assert "checkpoint pruned" in page and page.index("validation and test") < page.index("</body>")
