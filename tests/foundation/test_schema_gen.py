"""`grounding_dino schema --write/--check` and the generated files."""
from __future__ import annotations

import json
import shutil

import pytest
import yaml

from cli.main import main
from gdino.schema_gen import build_schema, check_files, generated_files, write_files
from gdino.spec import load_spec

from .conftest import ACTIONS, REPO, TAO_DIR, requires_tao


def test_committed_files_are_current():
    assert main(["schema", "--check"]) == 0


def test_check_fails_with_a_diff_summary_when_a_file_differs(tmp_path, capsys):
    assert write_files(tmp_path)  # a fresh root gets every file
    assert check_files(tmp_path) == []
    schema = tmp_path / "schemas" / "train.schema.json"
    schema.write_text(schema.read_text().replace('"default": 0.0002', '"default": 0.5'))
    (tmp_path / "references" / "skill_info.yaml").unlink()
    assert main(["schema", "--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "schemas/train.schema.json: differs" in err and "0.5" in err
    assert "references/skill_info.yaml: missing" in err
    assert main(["schema", "--write", "--root", str(tmp_path)]) == 0
    assert main(["schema", "--check", "--root", str(tmp_path)]) == 0


def test_schema_text_uses_tao_conventions():
    text = generated_files()["schemas/train.schema.json"]
    assert '"maximum": Infinity' in text
    schema = json.loads(text)
    assert schema["x_tao_schema"]["action"] == "train" and schema["x_tao_schema"]["schema_version"] == 1
    optim = schema["properties"]["train"]["properties"]["optim"]["properties"]
    assert optim["lr"]["type"] == "float" and optim["lr_scheduler"]["type"] == "categorical"
    assert schema["properties"]["automl_disabled_parameters"][:3] == ["wandb", "model", "dataset"]  # TAO quirk
    assert schema["properties"]["dataset"]["properties"]["augmentation"]["properties"][
        "train_random_crop_min"]["parent_param"] == "TRUE"


def test_per_action_filtering():
    for action in ACTIONS:
        sections = set(build_schema(action)["properties"])
        assert {"train", "quantize", action} <= sections
        assert not ({"evaluate", "inference", "export", "gen_trt_engine"} - {action}) & sections


@requires_tao
def test_manifest_matches_taos_shape():
    ours = json.loads(generated_files()["schemas/manifest.json"])
    tao = json.loads((TAO_DIR / "manifest.json").read_text())
    assert set(tao) == set(ours)
    assert set(tao["actions"]) <= set(ours["actions"])
    for action, entry in tao["actions"].items():
        assert set(entry) == set(ours["actions"][action])
        assert ours["actions"][action]["automl_default_parameters"] == entry["automl_default_parameters"]
        assert ours["actions"][action]["spec_template"] == entry["spec_template"]


@pytest.mark.parametrize("action", ACTIONS)
def test_templates_are_usable_as_is(action):
    path = REPO / "references" / f"spec_template_{action}.yaml"
    raw = yaml.safe_load(path.read_text())
    assert "wandb" not in raw
    assert "eval_class_ids" not in raw["dataset"]
    assert len(raw["dataset"]["train_data_sources"]) == 1
    assert raw["dataset"]["train_data_sources"][0]["json_file"] == "data/shapes/train/annotations_odvg.jsonl"
    assert raw["dataset"]["val_data_sources"]["json_file"] == "data/shapes/eval/annotations.json"
    cfg = load_spec(path)
    if action in ("train", "quantize"):
        load_spec(path, action=action)  # nothing left to fill in
    assert (action == "train") == ("automl" in raw)
    assert cfg.dataset.eval_class_ids is None


def test_skill_info_declares_automl_and_the_seed_keys():
    info = yaml.safe_load(generated_files()["references/skill_info.yaml"])
    assert info["automl_enabled"] is True
    assert set(info["actions"]) == set(ACTIONS)
    assert info["spec_shorthand_keys"]["learning_rate"] == "train.optim.lr"
    assert info["spec_params"]["train"]["train.resume_training_checkpoint_path"] == "resume_model"
    assert info["data_sources"]["train"]["dataset.train_data_sources[0].json_file"]["path"] == "annotations_odvg.jsonl"
    for action in ACTIONS:
        assert (REPO / info["spec_templates"][action]).is_file()
        assert (REPO / info["schemas"][action]).is_file()


@requires_tao
def test_our_skill_info_keeps_taos_spec_params_and_data_sources():
    ours = yaml.safe_load(generated_files()["references/skill_info.yaml"])
    tao = yaml.safe_load((TAO_DIR / "skill_info.yaml").read_text())
    assert ours["spec_shorthand_keys"] == tao["spec_shorthand_keys"]
    for action, params in tao["spec_params"].items():
        extra = {k: v for k, v in ours["spec_params"][action].items() if k not in params}
        assert {k: ours["spec_params"][action].get(k) for k in params} == params
        # the seed's table (tao-train-grounding-dino) also lists the deploy engines TAO's file leaves out
        assert extra == ({f"{action}.trt_engine": "parent_model"} if action in ("evaluate", "inference") else {})
    assert ours["data_sources"] == tao["data_sources"]


def test_write_does_not_touch_current_files(tmp_path):
    for sub in ("schemas", "references", "gdino/resources/schemas", "gdino/resources/references"):
        shutil.copytree(REPO / sub, tmp_path / sub)
    assert write_files(tmp_path) == []


def test_check_covers_the_packaged_copy(tmp_path, capsys):
    """An installed wheel reads gdino/resources; a stale packaged copy fails `--check` like a stale root copy."""
    assert write_files(tmp_path)
    packaged = tmp_path / "gdino" / "resources" / "references" / "spec_template_train.yaml"
    packaged.write_text(packaged.read_text() + "# edited by hand\n")
    assert main(["schema", "--check", "--root", str(tmp_path)]) == 1
    assert "gdino/resources/references/spec_template_train.yaml: differs" in capsys.readouterr().err
    assert write_files(tmp_path) == ["gdino/resources/references/spec_template_train.yaml"]
    assert check_files(tmp_path) == []
