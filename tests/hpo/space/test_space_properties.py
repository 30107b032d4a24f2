"""Property-based tests: random and malformed schemas and automl sections give a usable space or a
typed error (GdinoError), never a traceback; every space that builds samples only feasible configs."""
from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gdino.errors import GdinoError
from hpo.schema_reader import read_schema
from hpo.space import build_search_space

pytestmark = pytest.mark.reliability

SETTINGS = settings(max_examples=1000, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

NAMES = ["a.x", "a.y", "a.z", "b.c.d", "b.c.e", "train.optim.lr", "train.optim.momentum",
         "train.optim.optimizer", "model.num_select", "model.num_queries", "train.num_epochs"]
numbers = st.one_of(st.integers(-5, 2000), st.floats(allow_nan=True, allow_infinity=True, width=32),
                    st.sampled_from([0, 1, 1e-4, 0.9, "inf", "Infinity", "-inf", "abc", None, True]))
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10), st.floats(width=16),
                         st.text(max_size=5))
type_names = st.sampled_from(["float", "int", "bool", "string", "categorical", "ordered_int", "list",
                              "collection", "subset_list", "optional_list", "number", "integer", "boolean",
                              "object", "array", "ordered", "weird", "null"])
math_conds = st.one_of(st.none(), st.sampled_from(["> depends_on", ">= depends_on", "< depends_on",
                                                   "<= depends_on", "> 0.0", ">0", "!= 0", "^ 2", "/ 8",
                                                   "/ 2", "> 0.0 <= 1.0", "<50", "== 3", "~ 1", "> a.x",
                                                   "^ depends_on", ""]), st.text(max_size=6))


@st.composite
def leaf_nodes(draw):
    node = {"type": draw(type_names)}
    for key, strategy in (("default", st.one_of(numbers, json_scalars)), ("minimum", numbers),
                          ("maximum", numbers), ("math_cond", math_conds),
                          ("depends_on", st.one_of(st.sampled_from(NAMES + ["nope.x"]), json_scalars)),
                          ("enum", st.one_of(st.lists(st.one_of(st.integers(0, 5),
                                                                st.sampled_from(["a", "b", "SGD", "AdamW"])),
                                                      max_size=4), json_scalars)),
                          ("option_weights", st.one_of(st.lists(numbers, max_size=5), json_scalars)),
                          ("automl_enabled", st.sampled_from([True, False, "TRUE", "FALSE", None])),
                          ("x_log_scale", st.sampled_from([True, False, None, "yes"])),
                          ("x_search_min", numbers), ("x_search_max", numbers)):
        if draw(st.booleans()):
            node[key] = draw(strategy)
    if draw(st.integers(0, 9)) == 0:
        node = {"anyOf": [{"type": "null"}, node]}
    return node


@st.composite
def schemas(draw):
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=6, unique=True))
    properties: dict = {"automl_disabled_parameters": ["a", "b"]}  # TAO's non-dict quirk
    for dotted in names:
        level = properties
        parts = dotted.split(".")
        for part in parts[:-1]:
            entry = level.setdefault(part, {"type": "collection", "properties": {}})
            if not isinstance(entry, dict) or not isinstance(entry.get("properties"), dict):
                break
            level = entry["properties"]
        else:
            level[parts[-1]] = draw(leaf_nodes())
    schema = {"type": "object", "properties": properties}
    if draw(st.booleans()):
        schema["automl_default_parameters"] = draw(st.lists(st.sampled_from(NAMES + ["a", "zz.top"]), max_size=5))
    if draw(st.booleans()):
        schema["automl_disabled_parameters"] = draw(st.lists(st.sampled_from(NAMES), max_size=3))
    return schema


@st.composite
def automl_sections(draw):
    section = {"space_mode": draw(st.sampled_from(["default", "tao"]))}
    if draw(st.booleans()):
        section["hyperparameters"] = draw(st.lists(st.sampled_from(NAMES + ["bad.name"]), max_size=4))
    if draw(st.booleans()):
        section["add_hyperparameters"] = draw(st.lists(st.sampled_from(NAMES), max_size=2))
    if draw(st.booleans()):
        section["remove_hyperparameters"] = draw(st.lists(st.sampled_from(NAMES), max_size=2))
    section["override_automl_disabled_params"] = draw(st.booleans())
    if draw(st.integers(0, 3)) == 0:
        entry = {"parameter": draw(st.sampled_from(NAMES + ["bad.name"]))}
        for key, strategy in (("valid_min", st.floats(-10, 2000)), ("valid_max", st.floats(-10, 2000)),
                              ("valid_options", st.lists(st.sampled_from(["a", "b", 1, 2]), max_size=3)),
                              ("option_weights", st.lists(st.floats(-1, 5), max_size=3)),
                              ("math_cond", math_conds), ("log_scale", st.booleans()),
                              ("disable_list", st.lists(st.sampled_from(["a", 1]), max_size=2))):
            if draw(st.booleans()):
                entry[key] = draw(strategy)
        section["range_override"] = [entry]
    return section


@st.composite
def plausible_leaf(draw, earlier: list[str]):
    """Mostly valid metadata (so most spaces build) with occasional corruption."""
    kind = draw(st.sampled_from(["float", "int", "bool", "categorical", "ordered_int"]))
    node: dict = {"type": kind, "automl_enabled": True}
    if kind in ("float", "int"):
        low = draw(st.integers(-3, 50)) if kind == "int" else draw(st.floats(-1, 10, width=32))
        span = draw(st.integers(1, 500)) if kind == "int" else draw(st.floats(0.125, 100, width=32))
        high = draw(st.sampled_from([low + span, math.inf, None]))
        node.update(minimum=low, default=low + span / 2 if kind == "float" else int(low + span // 2))
        if high is not None:
            node["maximum"] = high
        if draw(st.booleans()):
            node.update(x_search_min=low, x_search_max=low + span, x_log_scale=draw(st.booleans()) and low > 0)
        if earlier and draw(st.booleans()):
            node.update(depends_on=draw(st.sampled_from(earlier)),
                        math_cond=draw(st.sampled_from(["> depends_on", ">= depends_on", "< depends_on",
                                                        "<= depends_on"])))
        elif kind == "int" and draw(st.integers(0, 3)) == 0:
            node["math_cond"] = draw(st.sampled_from(["^ 2", "/ 4", "!= 0", "> 0", "<= 100"]))
    elif kind != "bool":
        options = draw(st.lists(st.integers(0, 9), min_size=1, max_size=5, unique=True)) if kind == "ordered_int" \
            else draw(st.lists(st.sampled_from(["a", "b", "c", "SGD", "AdamW"]), min_size=1, max_size=4, unique=True))
        node.update(enum=options, default=options[0])
        if draw(st.booleans()):
            node["option_weights"] = draw(st.lists(st.floats(0.01, 10), min_size=len(options), max_size=len(options)))
    if draw(st.integers(0, 9)) == 0:  # corrupt one field
        key = draw(st.sampled_from(["minimum", "maximum", "option_weights", "depends_on", "default", "enum"]))
        node[key] = draw(st.one_of(numbers, json_scalars))
    return node


@st.composite
def plausible_schemas(draw):
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=7, unique=True))
    leaves: dict = {}
    for i, name in enumerate(names):
        leaves[name] = draw(plausible_leaf(names[:i]))
    properties: dict = {}
    for dotted, node in leaves.items():
        level = properties
        parts = dotted.split(".")
        for part in parts[:-1]:
            level = level.setdefault(part, {"type": "collection", "properties": {}})["properties"]
        level[parts[-1]] = node
    mode = draw(st.sampled_from(["default", "tao"]))
    return {"type": "object", "properties": properties, "automl_default_parameters": names}, {"space_mode": mode}


def _check_space(space, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(3):
        config = space.sample(rng)
        space.validate(config)
        for value in config.values():
            assert not (isinstance(value, float) and not math.isfinite(value))
        assert space.from_unit(space.to_unit(config)).keys() == config.keys()
        space.validate(space.perturb(config, rng))
    space.table()


@SETTINGS
@given(schema=schemas(), automl=automl_sections(), seed=st.integers(0, 2**32))
def test_random_schemas_build_or_raise_typed_errors(schema, automl, seed):
    try:
        space = build_search_space({"automl": automl}, schema=copy.deepcopy(schema))
    except GdinoError:
        return
    _check_space(space, seed)


@SETTINGS
@given(case=plausible_schemas(), seed=st.integers(0, 2**32))
def test_plausible_schemas_sample_only_feasible_configs(case, seed):
    schema, automl = case
    try:
        space = build_search_space({"automl": automl}, schema=schema)
    except GdinoError:
        return
    _check_space(space, seed)


json_values = st.recursive(json_scalars,
                           lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                   st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                           max_leaves=20)


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(doc=st.one_of(json_values, st.dictionaries(st.sampled_from(["properties", "automl_default_parameters",
                                                                     "automl_disabled_parameters", "default",
                                                                     "type"]), json_values, max_size=5)))
def test_arbitrary_json_never_escapes_as_a_traceback(doc):
    try:
        read_schema(doc)
        build_search_space({"automl": {}}, schema=doc)
    except GdinoError:
        pass


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(text=st.text(max_size=40))
def test_malformed_schema_text_is_a_schema_error(text, tmp_path_factory):
    path = tmp_path_factory.mktemp("schema") / "train.schema.json"
    path.write_text(text, encoding="utf-8")
    try:
        doc = read_schema(path)
    except GdinoError:
        return
    assert isinstance(doc.leaves, dict)


def test_bare_infinity_and_nan_are_read(tmp_path):
    path = tmp_path / "s.json"
    path.write_text('{"properties": {"a": {"type": "collection", "properties": {"x": {"type": "float", '
                    '"default": 1.0, "minimum": NaN, "maximum": Infinity}}}}}')
    leaf = read_schema(path).leaf("a.x")
    assert leaf.minimum is None and leaf.maximum == math.inf
    assert json.loads(path.read_text())  # what TAO emits is what Python's json reads
