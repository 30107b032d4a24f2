"""`grounding_dino automl space|resume|status|promote` through the real CLI entry point."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cli.main import main


@pytest.fixture()
def spec_file(tmp_path) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"train": {"num_epochs": 4}, "automl": {"algorithm": "random", "seed": 11}}))
    return path


def _space_json(capsys, *argv) -> dict:
    assert main(["automl", "space", *argv, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_sample_prints_exactly_the_trials_a_sweep_would_launch(capsys, spec_file, tao_schema_path):
    from gdino.spec import load_spec
    from hpo.space import build_search_space

    out = _space_json(capsys, "-e", str(spec_file), "--schema", str(tao_schema_path), "--sample", "3",
                      "--seed", "5")
    space = build_search_space(load_spec(str(spec_file)), schema=tao_schema_path)  # as hpo.api builds it
    assert [t["config"] for t in out["trials"]] == [space.sample_trial(5, i) for i in range(3)]
    assert out["seed"] == 5 and out["mode"] == "default"
    assert {row["parameter"] for row in out["parameters"]} == set(space.names)


def test_seed_defaults_to_the_spec_and_overrides_apply(capsys, spec_file, tao_schema_path):
    out = _space_json(capsys, "-e", str(spec_file), "automl.space_mode=tao", "--schema", str(tao_schema_path),
                      "--sample", "2")
    assert out["seed"] == 11 and out["mode"] == "tao" and len(out["parameters"]) == 13
    lr = next(r for r in out["parameters"] if r["parameter"] == "train.optim.lr")
    assert lr["range"] == "[0, 0.0002]"


def test_table_format(capsys, spec_file, tao_schema_path):
    assert main(["automl", "space", "-e", str(spec_file), "--schema", str(tao_schema_path), "--sample", "1"]) == 0
    text = capsys.readouterr().out
    assert "parameter" in text and "train.optim.lr" in text and "trial 0:" in text
    assert "not searched:" in text and "train.optim.momentum" in text


def test_space_on_our_schema(capsys, spec_file):
    out = _space_json(capsys, "-e", str(spec_file), "--sample", "2")
    lr = next(r for r in out["parameters"] if r["parameter"] == "train.optim.lr")
    assert lr["scale"] == "log"
    assert len(out["trials"]) == 2


def test_errors_are_typed_and_exit_2(capsys, spec_file, tao_schema_path, tmp_path):
    assert main(["automl", "space", "-e", str(spec_file), "--schema", str(tao_schema_path),
                 "automl.hyperparameters=[train.optim.lrr]"]) == 2
    assert "train.optim.lr" in capsys.readouterr().err  # did-you-mean
    assert main(["automl", "space", "-e", str(spec_file), "--schema", str(tmp_path / "none.json")]) == 2
    for command in ("resume", "status", "promote"):
        assert main(["automl", command, str(tmp_path / "no_sweep")]) == 2
        assert "does not exist" in capsys.readouterr().err


def test_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit) as done:
        main(["automl", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert all(c in out for c in ("space", "resume", "status", "promote"))


def test_params_removed_from_the_spec_file_are_listed(capsys, tmp_path, tao_schema_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"train": {"optim": {"lr": 1e-4, "lr_backbone": 1e-5}}}))
    out = _space_json(capsys, "-e", str(spec), "--schema", str(tao_schema_path))
    names = {row["parameter"] for row in out["parameters"]}
    assert "train.optim.lr" in names and "train.optim.weight_decay" not in names
    assert any(e["parameter"] == "train.optim.weight_decay" for e in out["not_searched"])
