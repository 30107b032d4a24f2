"""The pydantic config model carries every TAO field with TAO's name, default and metadata."""
from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from gdino.config import (
    AugmentationConfig,
    AutoMLConfig,
    DatasetConfig,
    EvalDataSource,
    EvaluateConfig,
    ExperimentConfig,
    ExportConfig,
    GenTrtEngineConfig,
    InferDataSource,
    InferenceConfig,
    MLflowConfig,
    ModelConfig,
    OptimConfig,
    QuantizeConfig,
    TensorRTConfig,
    TrainConfig,
    TrainDataSource,
    field_meta,
)
from gdino.schema_gen import build_schema

from .conftest import ACTIONS, requires_tao, tao_schema

TAO_AUTOML_DEFAULTS = {
    "train.optim.lr", "train.optim.lr_backbone", "train.optim.lr_linear_proj_mult", "train.optim.momentum",
    "train.optim.weight_decay", "train.optim.lr_decay", "train.optim.lr_step_size", "model.enc_layers",
    "model.dec_layers", "model.num_select", "dataset.augmentation.horizontal_flip_prob",
    "dataset.augmentation.train_random_crop_min", "dataset.augmentation.train_random_crop_max",
}
# Deliberate differences from TAO (documented in gdino/config/tao.py).
OUR_ENUM_ADDITIONS = {"model.backbone": ["resnet_18"]}
OUR_FIELDS = {"model.allow_partial_load"}  # ours, in a TAO section (x_note "ours (not TAO)")


def _without_ours(tree: dict, prefix: str = "") -> dict:
    """A nested default dict without OUR_FIELDS."""
    out = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if dotted in OUR_FIELDS:
            continue
        out[key] = _without_ours(value, dotted + ".") if isinstance(value, dict) else value
    return out


def test_our_fields_in_tao_sections_are_marked_as_ours():
    for dotted in OUR_FIELDS:
        section, name = dotted.split(".")
        model = {"model": ModelConfig}[section]
        assert field_meta(model, name).get("x_note") == "ours (not TAO)"


def _tao_leaves(properties: dict, prefix: str = ""):
    for name, prop in properties.items():
        if not isinstance(prop, dict):  # TAO's properties.automl_disabled_parameters quirk
            continue
        if "properties" in prop:
            yield from _tao_leaves(prop["properties"], f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", prop


def _our_property(schema: dict, dotted: str) -> dict:
    node = schema
    for part in dotted.split("."):
        node = node["properties"][part]
    return node


@requires_tao
@pytest.mark.parametrize("action", ACTIONS)
def test_every_tao_field_has_taos_default_bounds_and_metadata(action):
    tao, ours = tao_schema(action), build_schema(action)
    leaves = list(_tao_leaves(tao["properties"]))
    assert len(leaves) > 60
    for dotted, tao_prop in leaves:
        our_prop = _our_property(ours, dotted)
        for key in ("type", "default", "minimum", "maximum", "math_cond", "depends_on", "parent_param",
                    "automl_enabled", "popular", "option_weights", "pattern", "title", "description"):
            assert our_prop.get(key) == tao_prop.get(key), (dotted, key, our_prop.get(key), tao_prop.get(key))
        expected_enum = tao_prop.get("enum")
        if expected_enum is not None:
            expected_enum = expected_enum + OUR_ENUM_ADDITIONS.get(dotted, [])
        assert our_prop.get("enum") == expected_enum, dotted


@requires_tao
@pytest.mark.parametrize("action", ACTIONS)
def test_schema_top_level_lists_match_tao(action):
    tao, ours = tao_schema(action), build_schema(action)
    assert set(ours["automl_default_parameters"]) == set(tao["automl_default_parameters"])
    ours_disabled = {p for p in ours["automl_disabled_parameters"]
                     if not p.startswith(("automl", "mlflow")) and p not in OUR_FIELDS}
    assert ours_disabled == set(tao["automl_disabled_parameters"])
    assert ours["popular"] == tao["popular"]
    assert ours["required"] == tao["required"]
    ours_default = {k: v for k, v in ours["default"].items() if k not in ("automl_policy", "automl", "mlflow")}
    assert _without_ours(ours_default) == tao["default"]
    tao_sections = {k for k in tao["properties"]}
    assert tao_sections <= set(ours["properties"])
    assert set(ours["properties"]) - tao_sections <= {"automl_policy", "automl", "mlflow"}


def test_train_schema_automl_defaults_are_taos_13():
    names = build_schema("train")["automl_default_parameters"]
    assert len(names) == 13 and set(names) == TAO_AUTOML_DEFAULTS


def test_our_sections_only_in_train_schema_and_never_searched():
    train = build_schema("train")
    assert {"automl", "mlflow", "automl_policy"} <= set(train["properties"])
    assert not any(p.startswith(("automl", "mlflow")) for p in train["automl_default_parameters"])
    for action in ACTIONS[1:]:
        assert "automl" not in build_schema(action)["properties"]


def test_rate_like_parameters_carry_log_scale_and_finite_search_range():
    optim = {name: field_meta(OptimConfig, name) for name in OptimConfig.model_fields}
    for name in ("lr", "lr_backbone", "weight_decay", "lr_linear_proj_mult", "lr_decay"):
        meta = optim[name]
        assert meta["x_log_scale"] is True
        assert 0 < meta["x_search_min"] < OptimConfig().__getattribute__(name) < meta["x_search_max"] < math.inf
    # every automl-enabled parameter has a finite range to search in default mode
    schema = build_schema("train")
    for dotted in schema["automl_default_parameters"]:
        prop = _our_property(schema, dotted)
        low = prop.get("x_search_min", prop.get("minimum"))
        high = prop.get("x_search_max", prop.get("maximum"))
        assert low is not None and high is not None and math.isfinite(low) and math.isfinite(high), dotted
        assert low <= prop["default"] <= high, dotted


def test_all_public_models_construct_with_defaults():
    for model in (ExperimentConfig, ModelConfig, DatasetConfig, AugmentationConfig, TrainDataSource,
                  EvalDataSource, InferDataSource, TrainConfig, OptimConfig, EvaluateConfig, InferenceConfig,
                  ExportConfig, GenTrtEngineConfig, TensorRTConfig, QuantizeConfig, AutoMLConfig, MLflowConfig):
        model()
    cfg = ExperimentConfig()
    assert cfg.automl_policy == "auto" and cfg.model.backbone == "swin_tiny_224_1k"
    # runtime defaults avoid TAO's placeholders (schema shows them as defaults)
    assert cfg.dataset.eval_class_ids is None and cfg.dataset.train_data_sources == []
    assert cfg.dataset.augmentation.fixed_random_crop is None


def test_resnet_18_is_an_accepted_backbone():
    assert ModelConfig(backbone="resnet_18").backbone == "resnet_18"
    with pytest.raises(ValidationError):
        ModelConfig(backbone="resnet_101")


def test_extra_keys_are_forbidden_everywhere():
    with pytest.raises(ValidationError):
        ExperimentConfig(model={"num_querys": 10})
    with pytest.raises(ValidationError):
        ExperimentConfig(dataset={"train_data_sources": [{"image_dir": "a", "json_fle": "b"}]})


def test_bounds_math_cond_and_relations_are_enforced_on_assignment_too():
    optim = OptimConfig()
    with pytest.raises(ValidationError, match="out of bounds"):
        optim.lr = -1e-4
    model = ModelConfig()
    with pytest.raises(ValidationError, match="math_cond"):
        model.focal_alpha = 0.0
    with pytest.raises(ValidationError, match="out of bounds"):
        model.num_select = 1001
    aug = AugmentationConfig()
    with pytest.raises(ValidationError, match="train_random_crop_min"):
        aug.train_random_crop_max = aug.train_random_crop_min
    aug.train_random_crop_max = aug.train_random_crop_min + 1
    assert ModelConfig(fix_refpoints_hw=-2).fix_refpoints_hw == -2
    with pytest.raises(ValidationError, match="math_cond"):
        ModelConfig(fix_refpoints_hw=0)


def test_encryption_key_is_not_in_repr():
    cfg = ExperimentConfig(encryption_key="s3cret-key")
    assert "s3cret-key" not in repr(cfg) and "s3cret-key" not in str(cfg)


def test_infer_source_accepts_a_single_string():
    source = InferDataSource(image_dir="/images", captions="person")
    assert source.image_dir == ["/images"] and source.captions == ["person"]
