"""Reading TAO's real schemas and ours unchanged: Infinity, TAO type names, anyOf, "???", the quirk."""
from __future__ import annotations

import math

import pytest

from gdino.errors import SchemaError
from hpo.schema_reader import default_schema_path, read_schema


def test_reads_taos_real_train_schema(tao_schema_path):
    doc = read_schema(tao_schema_path)
    assert doc.network_arch == "grounding_dino"
    assert len(doc.default_parameters) == 13 and "train.optim.lr" in doc.default_parameters
    lr = doc.leaf("train.optim.lr")
    assert (lr.value_type, lr.minimum, lr.maximum, lr.default) == ("float", 0.0, math.inf, 2e-4)
    assert doc.leaf("model.enc_layers").has_maximum is False
    crop = doc.leaf("dataset.augmentation.train_random_crop_max")
    assert crop.math_cond == "> depends_on" and crop.depends_on == "dataset.augmentation.train_random_crop_min"
    assert doc.leaf("dataset.augmentation.train_random_crop_min").parent_param is True
    assert doc.leaf("model.backbone").value_type == "categorical"
    assert doc.leaf("train.optim.lr_steps").value_type == "list" and not doc.leaf("train.optim.lr_steps").searchable
    # the non-dict `properties.automl_disabled_parameters` quirk is skipped, not a leaf
    assert "automl_disabled_parameters" not in doc.leaves
    assert doc.is_disabled("model.hidden_dim") and not doc.is_disabled("train.optim.lr")
    assert not any(leaf.problems for leaf in doc.leaves.values())


@pytest.mark.parametrize("action", ["evaluate", "export", "gen_trt_engine", "inference", "quantize"])
def test_reads_taos_other_schemas_with_missing_values(tao_schema_path, action):
    doc = read_schema(tao_schema_path.parent / f"{action}.schema.json")
    assert doc.leaves
    if action in ("evaluate", "export", "gen_trt_engine", "inference"):
        assert any(leaf.missing_default for leaf in doc.leaves.values())  # "???"


def test_json_schema_spellings_anyof_and_type_lists():
    doc = read_schema({"properties": {
        "a": {"type": "object", "properties": {
            "n": {"type": "number", "minimum": "0", "maximum": "inf", "default": 1.5},
            "i": {"type": "integer", "enum": [1, 2, 4]},
            "b": {"type": "boolean"},
            "s": {"type": "string", "enum": ["x", "y"]},
            "u": {"anyOf": [{"type": "null"}, {"type": "int", "minimum": 1}], "default": 3},
            "t": {"type": ["null", "float"], "maximum": 2},
            "o": {"type": "ordered", "enum": ["lo", "hi"]},
            "v": {"type": "float", "valid_min": 0, "valid_max": 1, "valid_options": "0.1, 0.5"},
        }},
    }})
    kinds = {name: leaf.value_type for name, leaf in doc.leaves.items()}
    assert kinds == {"a.n": "float", "a.i": "ordered_int", "a.b": "bool", "a.s": "categorical", "a.u": "int",
                     "a.t": "float", "a.o": "categorical", "a.v": "categorical"}
    assert doc.leaf("a.n").maximum == math.inf and doc.leaf("a.u").minimum == 1 and doc.leaf("a.u").default == 3


def test_defaults_come_from_the_parent_default_object():
    doc = read_schema({"properties": {"m": {"type": "collection", "default": {"k": 7},
                                            "properties": {"k": {"type": "int"}}}}})
    assert doc.leaf("m.k").default == 7 and doc.leaf("m.k").has_default


def test_bad_metadata_is_recorded_not_raised_until_used():
    doc = read_schema({"properties": {"a": {"type": "collection", "properties": {
        "x": {"type": "float", "minimum": "low", "option_weights": "heavy", "math_cond": 3}}}}})
    problems = doc.leaf("a.x").problems
    assert len(problems) == 3 and any("minimum" in p for p in problems)


@pytest.mark.parametrize("source", [[], 3, "[1, 2]", '{"type": "object"}', '{"properties": []}', "{bad json"])
def test_unusable_schemas_are_schema_errors(source):
    with pytest.raises(SchemaError):
        read_schema(source)


def test_deep_nesting_is_refused():
    node: dict = {"type": "int"}
    for _ in range(40):
        node = {"type": "collection", "properties": {"k": node}}
    with pytest.raises(SchemaError, match="deeper"):
        read_schema({"properties": {"root": node}})


def test_top_level_lists_must_be_names():
    with pytest.raises(SchemaError, match="automl_default_parameters"):
        read_schema({"properties": {}, "automl_default_parameters": "train.optim.lr"})


@pytest.mark.skipif(not default_schema_path().is_file(), reason="schemas/train.schema.json not generated")
def test_reads_our_generated_schema_with_search_metadata():
    doc = read_schema(default_schema_path())
    lr = doc.leaf("train.optim.lr")
    assert lr.x_log_scale is True and 0 < lr.x_search_min < lr.default < lr.x_search_max
    assert set(doc.default_parameters) >= {"train.optim.lr", "model.num_select"}
