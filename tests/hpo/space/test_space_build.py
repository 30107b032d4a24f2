"""Which parameters are searched, range overrides, default-mode ranges, conditions, typed errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gdino.errors import SchemaError, SpecError
from hpo.space import CategoricalDomain, FloatDomain, IntDomain, build_search_space

LR = "train.optim.lr"
MOMENTUM = "train.optim.momentum"
OPTIMIZER = "train.optim.optimizer"
STEP_SIZE = "train.optim.lr_step_size"
NUM_EPOCHS = "train.num_epochs"


def build(schema, **automl):
    return build_search_space({"automl": automl}, schema=schema)


# --- selection ------------------------------------------------------------------------------------
def test_default_mode_on_tao_schema_drops_no_effect_params(tao_schema_path):
    space = build(tao_schema_path)
    assert MOMENTUM not in space and STEP_SIZE not in space
    reasons = {e.name: e.reason for e in space.excluded}
    assert "optimizer" in reasons[MOMENTUM] and "lr_scheduler" in reasons[STEP_SIZE]
    assert len(space) == 11


def test_hyperparameters_list_replaces_the_defaults(tao_schema_path):
    space = build(tao_schema_path, hyperparameters=[LR, "model.backbone"])
    assert space.names == [LR, "model.backbone"]
    assert isinstance(space["model.backbone"].domain, CategoricalDomain)


def test_add_and_remove(tao_schema_path):
    space = build(tao_schema_path, add_hyperparameters=["dataset.batch_size"], remove_hyperparameters=[LR])
    assert "dataset.batch_size" in space and LR not in space


@pytest.mark.parametrize("key", ["hyperparameters", "add_hyperparameters", "remove_hyperparameters"])
def test_unknown_names_are_errors_with_a_suggestion(tao_schema_path, key):
    with pytest.raises(SpecError) as err:
        build(tao_schema_path, **{key: ["train.optim.lrr"]})
    assert err.value.key == f"automl.{key}"
    assert "train.optim.lr" in str(err.value)


def test_sections_and_lists_are_not_searchable(tao_schema_path):
    with pytest.raises(SpecError, match="section"):
        build(tao_schema_path, hyperparameters=["train.optim"])
    with pytest.raises(SpecError, match="cannot be searched"):
        build(tao_schema_path, hyperparameters=["train.optim.lr_steps"], override_automl_disabled_params=True)


def test_disabled_params_need_the_override(tao_schema_path):
    with pytest.raises(SpecError, match="disabled"):
        build(tao_schema_path, hyperparameters=["model.hidden_dim"])
    space = build(tao_schema_path, hyperparameters=["model.hidden_dim"], override_automl_disabled_params=True)
    assert "model.hidden_dim" in space


def test_params_removed_from_the_spec_are_not_searched(tao_schema_path):
    spec = {"train": {"optim": {"lr": 1e-4, "lr_backbone": 1e-5}}, "automl": {}}
    space = build_search_space(spec, schema=tao_schema_path)
    assert LR in space and "train.optim.lr_backbone" in space
    assert "train.optim.weight_decay" not in space  # its section was written without it
    assert "model.enc_layers" in space  # `model` not written at all: defaults apply
    assert any(e.name == "train.optim.weight_decay" and "removed" in e.reason for e in space.excluded)


def test_epoch_fidelity_never_searches_num_epochs(tao_schema_path, make_schema):
    space = build(tao_schema_path, add_hyperparameters=[NUM_EPOCHS])
    assert NUM_EPOCHS in space
    with pytest.raises(SpecError, match="fidelity"):  # asked for explicitly: say why it cannot be
        build_search_space({"automl": {"add_hyperparameters": [NUM_EPOCHS]}}, schema=tao_schema_path,
                           epochs_are_fidelity=True)
    schema = make_schema({NUM_EPOCHS: {"type": "int", "default": 10, "minimum": 1, "maximum": 50},
                          LR: {"type": "float", "default": 1e-4, "minimum": 1e-6, "maximum": 1e-2}})
    fidelity = build_search_space({"automl": {}}, schema=schema, epochs_are_fidelity=True)
    assert fidelity.names == [LR] and fidelity.excluded[0].name == NUM_EPOCHS
    assert NUM_EPOCHS not in space.without([NUM_EPOCHS])


def test_schema_path_from_the_spec_and_missing_schema(tao_schema_path, tmp_path):
    assert LR in build_search_space({"automl": {"schema_path": str(tao_schema_path)}})
    with pytest.raises(SchemaError, match="schema --write"):
        build_search_space({"automl": {"schema_path": str(tmp_path / "nope.json")}})


def test_invalid_automl_section_is_a_spec_error(tao_schema_path):
    with pytest.raises(SpecError) as err:
        build_search_space({"automl": {"space_mode": "fast"}}, schema=tao_schema_path)
    assert err.value.key.startswith("automl")


# --- range overrides (TAO's shape) ------------------------------------------------------------------
def test_range_override_bounds_and_log(tao_schema_path):
    space = build(tao_schema_path, range_override=[{"parameter": LR, "valid_min": 1e-6, "valid_max": 1e-3,
                                                    "log_scale": True}])
    domain = space[LR].domain
    assert isinstance(domain, FloatDomain) and (domain.low, domain.high, domain.log) == (1e-6, 1e-3, True)


def test_range_override_options_intersect_weights_and_disable_list(tao_schema_path):
    space = build(tao_schema_path, hyperparameters=["model.backbone"], range_override=[{
        "parameter": "model.backbone", "valid_options": ["resnet_50", "swin_tiny_224_1k", "not_a_backbone"],
        "option_weights": [1, 3], "disable_list": []}])
    domain = space["model.backbone"].domain
    assert domain.options == ("resnet_50", "swin_tiny_224_1k")
    assert list(domain.probabilities) == [0.25, 0.75]
    space = build(tao_schema_path, hyperparameters=["model.backbone"], range_override=[{
        "parameter": "model.backbone", "disable_list": ["resnet_50"]}])
    assert "resnet_50" not in space["model.backbone"].domain.options


def test_range_override_must_target_a_searched_param(tao_schema_path):
    with pytest.raises(SpecError, match="not searched"):
        build(tao_schema_path, range_override=[{"parameter": "model.backbone", "valid_options": ["resnet_50"]}])
    with pytest.raises(SpecError):
        build(tao_schema_path, range_override=[{"parameter": "model.nope", "valid_min": 1}])


def test_range_override_math_cond_powers(tao_schema_path):
    space = build(tao_schema_path, hyperparameters=["dataset.batch_size"], range_override=[{
        "parameter": "dataset.batch_size", "valid_min": 1, "valid_max": 64, "math_cond": "^ 2"}])
    assert space["dataset.batch_size"].domain.values() == [1, 2, 4, 8, 16, 32, 64]


# --- default mode ---------------------------------------------------------------------------------
def test_default_mode_uses_our_schema_metadata(make_schema):
    schema = make_schema({
        "train.optim.lr": {"type": "float", "default": 2e-4, "minimum": 0, "maximum": float("inf"),
                           "x_log_scale": True, "x_search_min": 1e-5, "x_search_max": 1e-2},
        "train.optim.warmup": {"type": "int", "default": 4, "minimum": 0, "maximum": 1000,
                               "x_search_min": 0, "x_search_max": 10},
    })
    space = build(schema)
    assert (space[LR].domain.low, space[LR].domain.high, space[LR].domain.log) == (1e-5, 1e-2, True)
    assert (space["train.optim.warmup"].domain.low, space["train.optim.warmup"].domain.high) == (0, 10)
    tao = build(schema, space_mode="tao")
    assert (tao[LR].domain.low, tao[LR].domain.high, tao[LR].domain.log) == (0.0, 2e-4, False)


def test_searching_the_optimizer_makes_momentum_conditional(tao_schema_path):
    space = build(tao_schema_path, add_hyperparameters=[OPTIMIZER])
    assert space[MOMENTUM].condition.parent == OPTIMIZER
    rng = np.random.default_rng(0)
    for _ in range(200):
        config = space.sample(rng)
        assert (MOMENTUM in config) == (config[OPTIMIZER] == "SGD")


def test_conditions_follow_the_spec_value_of_a_fixed_parent(tao_schema_path):
    spec = {"automl": {}, "train": {"optim": {"optimizer": "SGD", "lr_scheduler": "StepLR", "lr": 1e-3,
                                              "momentum": 0.9, "lr_step_size": 5, "lr_backbone": 1e-5,
                                              "lr_linear_proj_mult": 0.1, "weight_decay": 1e-4,
                                              "lr_decay": 0.1}}}
    space = build_search_space(spec, schema=tao_schema_path)
    assert MOMENTUM in space and space[MOMENTUM].condition is None
    assert STEP_SIZE in space


def test_explicitly_requested_param_without_effect_is_an_error(tao_schema_path):
    with pytest.raises(SpecError, match="no effect"):
        build(tao_schema_path, hyperparameters=[LR, MOMENTUM])


def test_tao_mode_keeps_no_effect_params_like_tao(tao_schema_path):
    space = build(tao_schema_path, space_mode="tao", hyperparameters=[LR, MOMENTUM])
    assert MOMENTUM in space and "no effect" in space[MOMENTUM].note


def test_num_classes_from_the_label_map(tao_schema_path, tmp_path):
    label_map = tmp_path / "labels.json"
    label_map.write_text(json.dumps({"0": "cat", "1": "dog"}))
    spec = {"automl": {}, "dataset": {"train_data_sources": [{"image_dir": "x", "json_file": "y",
                                                              "label_map": str(label_map)}]}}
    space = build_search_space(spec, schema=tao_schema_path)
    assert space["model.num_select"].domain.high == 900  # min(900, 900*2 - 1)
    assert "label map" in space["model.num_select"].note
    single = build(tao_schema_path)  # unreadable: one class assumed, the safest cap
    assert single["model.num_select"].domain.high == 899


# --- metadata errors name the parameter -----------------------------------------------------------
@pytest.mark.parametrize("node, message", [
    ({"type": "float", "default": 1.0, "minimum": 2.0, "maximum": 1.0}, "minimum"),
    ({"type": "categorical", "default": "a", "enum": ["a", "b"], "option_weights": [1.0]}, "option_weights"),
    ({"type": "categorical", "default": "a", "enum": ["a", "b"], "option_weights": [0.0, 0.0]}, "positive"),
    ({"type": "categorical", "default": "a", "enum": ["a", "b"], "option_weights": [-1.0, 2.0]}, "positive"),
    ({"type": "int", "default": 5, "minimum": 1, "maximum": 9, "depends_on": "x.nope",
      "math_cond": "> depends_on"}, "depends_on"),
    ({"type": "int", "default": 5, "minimum": 1, "maximum": 3, "math_cond": "> 3"}, "empty"),
    ({"type": "int", "default": 5, "minimum": 1, "maximum": 9, "math_cond": "~ 3"}, "math_cond"),
    ({"type": "float", "default": "abc", "minimum": 0, "maximum": float("inf")}, "default"),
    ({"type": "categorical", "default": "a", "enum": []}, "enum"),
    ({"type": "float", "default": 1.0, "minimum": "low"}, "minimum"),
])
def test_metadata_errors_are_schema_errors_naming_the_parameter(make_schema, node, message):
    with pytest.raises(SchemaError) as err:
        build(make_schema({"a.p": node}))
    assert err.value.parameter == "a.p"
    assert message in str(err.value)


def test_dependency_cycle_and_empty_feasible_relation(make_schema):
    cyc = make_schema({
        "a.x": {"type": "int", "default": 5, "minimum": 0, "maximum": 9, "math_cond": "> depends_on",
                "depends_on": "a.y"},
        "a.y": {"type": "int", "default": 5, "minimum": 0, "maximum": 9, "math_cond": "> depends_on",
                "depends_on": "a.x"},
    })
    with pytest.raises(SchemaError, match="cycle"):
        build(cyc)
    empty = make_schema({
        "a.lo": {"type": "int", "default": 50, "minimum": 50, "maximum": 90},
        "a.hi": {"type": "int", "default": 10, "minimum": 0, "maximum": 40, "math_cond": "> depends_on",
                 "depends_on": "a.lo"},
    })
    with pytest.raises(SchemaError, match="empty feasible set") as err:
        build(empty)
    assert err.value.parameter == "a.hi"


def test_relations_narrow_the_parent_so_children_always_fit(make_schema):
    schema = make_schema({
        "a.lo": {"type": "int", "default": 50, "minimum": 0, "maximum": 100},
        "a.hi": {"type": "int", "default": 60, "minimum": 0, "maximum": 40, "math_cond": "> depends_on",
                 "depends_on": "a.lo"},
    })
    space = build(schema, space_mode="tao")
    assert space["a.lo"].domain.high == 39
    assert isinstance(space["a.hi"].domain, IntDomain)


def test_num_select_rule_with_option_lists(tao_schema_path):
    space = build(tao_schema_path, hyperparameters=["model.num_queries", "model.num_select"], range_override=[
        {"parameter": "model.num_queries", "valid_options": [30, 300, 900]},
        {"parameter": "model.num_select", "valid_options": [50, 100, 300, 600]}])
    assert space["model.num_queries"].domain.options == (300, 900)  # 30 leaves num_select no option
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(500):
        config = space.sample(rng)
        assert config["model.num_select"] <= config["model.num_queries"] - 1
        seen.add((config["model.num_queries"], config["model.num_select"]))
    assert (300, 600) not in seen and (900, 600) in seen


def test_the_full_spec_template_removes_nothing():
    spec = pytest.importorskip("gdino.spec")
    template = Path(__file__).resolve().parents[3] / "references" / "spec_template_train.yaml"
    if not template.is_file():
        pytest.skip("references/spec_template_train.yaml not generated")
    full = build_search_space(spec.load_spec(str(template)))
    empty = build_search_space(spec.load_spec(None))
    assert full.names == empty.names
    assert not any("removed" in e.reason for e in full.excluded)
    # an override that writes one key of a section does remove that section's other defaults (TAO's rule)
    partial = build_search_space(spec.load_spec(None, ["train.optim.lr=1e-4"]))
    assert "train.optim.lr" in partial and "train.optim.weight_decay" not in partial
