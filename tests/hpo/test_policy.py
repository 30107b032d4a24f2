"""The Train Action Policy (seed): explicit automl_policy, request phrases, skill_info, packaged artifacts."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from gdino.config import ExperimentConfig
from gdino.errors import SpecErrors
from gdino.spec import load_spec
from hpo.policy import decide_policy, policy_from_request

TAO_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "tao" / "grounding_dino"
AUTO = ExperimentConfig()


def _cfg(**values) -> ExperimentConfig:
    return load_spec(values)  # through the spec loader, as the CLI builds it


def _package(root: Path, *, enabled="true", schema: str | None = '{"properties": {}}',
             template: str | None = "train: {}\n") -> Path:
    (root / "references").mkdir(parents=True, exist_ok=True)
    (root / "schemas").mkdir(parents=True, exist_ok=True)
    if enabled is not None:
        (root / "references" / "skill_info.yaml").write_text(f"name: x\nautoml_enabled: {enabled}\n")
    if schema is not None:
        (root / "schemas" / "train.schema.json").write_text(schema)
    if template is not None:
        (root / "references" / "spec_template_train.yaml").write_text(template)
    return root


@pytest.mark.parametrize("request_text", [
    "turn off AutoML", "please disable AutoML for this one", "no HPO", "just plain training please",
    "Turn off auto-ML", "DISABLE AUTOML",
])
def test_off_phrases(request_text):
    assert policy_from_request(request_text)[0] == "off"


@pytest.mark.parametrize("request_text", [None, "", "train on my dataset", "use automl", "no hpot",
                                          "hpo please"])
def test_anything_else_is_auto(request_text):
    assert policy_from_request(request_text)[0] == "auto"


def test_auto_with_everything_packaged_runs_automl(tmp_path):
    decision = decide_policy(AUTO, root=_package(tmp_path))
    assert decision.mode == "auto" and decision.automl_runnable and decision.use_automl


@pytest.mark.parametrize("values, request_text", [
    ({"automl_policy": "off"}, None),
    ({"automl_policy": False}, None),  # YAML reads a bare `off` as False
    ({}, "turn off AutoML"),
    ({"automl_policy": "auto"}, "no HPO"),
])
def test_off_means_plain_training(tmp_path, values, request_text):
    decision = decide_policy(_cfg(**values), request_text, root=_package(tmp_path))
    assert decision.mode == "off" and not decision.use_automl
    assert "plain training" in decision.reason


def test_skill_info_disabled_means_plain_training(tmp_path):
    decision = decide_policy(AUTO, root=_package(tmp_path, enabled="false"))
    assert decision.mode == "auto" and not decision.automl_runnable
    assert "automl_enabled: false" in decision.reason


@pytest.mark.parametrize("kwargs, missing", [
    ({"schema": None}, "train.schema.json is missing"),
    ({"template": None}, "spec_template_train.yaml is missing"),
    ({"schema": "{not json"}, "does not parse"),
    ({"template": "a: [unclosed"}, "does not parse"),
    ({"schema": "[1, 2]"}, "properties"),
])
def test_enabled_but_not_runnable_says_how_to_fix(tmp_path, kwargs, missing):
    decision = decide_policy(AUTO, root=_package(tmp_path, **kwargs))
    assert decision.mode == "auto" and not decision.automl_runnable
    assert "AutoML is enabled but not runnable" in decision.reason
    assert missing in decision.reason and "grounding_dino schema --write" in decision.reason


def test_missing_skill_info(tmp_path):
    decision = decide_policy(AUTO, root=_package(tmp_path, enabled=None))
    assert not decision.automl_runnable and "skill_info.yaml is missing" in decision.reason


@pytest.mark.parametrize("action", ["evaluate", "inference", "export", "gen_trt_engine", "quantize"])
def test_non_train_actions_never_use_automl(tmp_path, action):
    decision = decide_policy(AUTO, root=_package(tmp_path), action=action)
    assert not decision.use_automl and action in decision.reason


def test_bad_explicit_value_is_a_spec_error():
    with pytest.raises(SpecErrors) as err:
        _cfg(automl_policy="sometimes")
    assert [e.key for e in err.value.errors] == ["automl_policy"]


def test_the_packaged_resources_decide_automl():
    """No root: the skill_info, schema and template packaged in gdino/resources (importlib.resources)."""
    decision = decide_policy(AUTO)
    assert decision.use_automl, decision.reason


def test_the_policy_never_changes_model_metadata(tmp_path):
    root = _package(tmp_path)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    for cfg, req in ((AUTO, None), (_cfg(automl_policy="off"), None), (AUTO, "turn off AutoML")):
        decide_policy(cfg, req, root=root)
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files} == before
    assert sorted(p for p in root.rglob("*") if p.is_file()) == files


def test_the_real_tao_skill_package_is_runnable(tmp_path):
    ref = TAO_DIR
    root = _package(tmp_path, enabled=None, schema=(ref / "train.schema.json").read_text(),
                    template=(ref / "spec_template_train.yaml").read_text())
    (root / "references" / "skill_info.yaml").write_text((ref / "skill_info.yaml").read_text())
    assert decide_policy(AUTO, root=root).use_automl
    json.loads((root / "schemas" / "train.schema.json").read_text())
