"""`grounding_dino train`: bad data sources stop the command before any Ray start or training."""
from __future__ import annotations

import pytest
import yaml

from cli.main import main


def _spec(tmp_path, policy: str) -> str:
    spec = {
        "automl_policy": policy,
        "results_dir": str(tmp_path / "results"),
        "dataset": {
            "train_data_sources": [{"image_dir": str(tmp_path / "missing.tar.gz"),
                                    "json_file": str(tmp_path / "missing.jsonl"),
                                    "label_map": str(tmp_path / "missing_labelmap.json")}],
            "val_data_sources": {"image_dir": str(tmp_path / "eval"), "json_file": str(tmp_path / "eval.json")},
        },
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def test_missing_dataset_fails_before_plain_training(tmp_path, capsys):
    code = main(["train", "-e", _spec(tmp_path, "off"), "--jobs_root", str(tmp_path / "jobs")])
    err = capsys.readouterr().err
    assert code == 2
    assert "problem(s) in the data sources" in err and "missing_labelmap.json" in err
    assert not list((tmp_path / "results").glob("*.pth"))


def test_missing_dataset_fails_before_a_sweep_starts(tmp_path, capsys):
    code = main(["train", "-e", _spec(tmp_path, "auto"), "--jobs_root", str(tmp_path / "jobs")])
    err = capsys.readouterr().err
    assert code == 2 and "missing_labelmap.json" in err
    assert not (tmp_path / "results" / "automl").exists()  # no sweep dir, no Ray instance


def test_the_command_line_has_no_test_trainable_flag(tmp_path, capsys):
    """Test trainables are named through the Python API (cli.train.run(args, train_fn=...)), not a flag."""
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "-e", _spec(tmp_path, "auto"), "--train-fn", "hpo.testing:quadratic_train_fn"])
    assert exit_info.value.code == 2 and "unrecognized arguments: --train-fn" in capsys.readouterr().err
