"""Hostile input: load_spec on random mappings and overrides raises only typed GdinoErrors."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gdino.config import ExperimentConfig
from gdino.errors import GdinoError, SpecErrors
from gdino.spec import SHORTHAND_KEYS, load_spec, split_dotted

pytestmark = pytest.mark.reliability

_REAL_KEYS = ["model", "dataset", "train", "optim", "lr", "num_queries", "augmentation", "train_data_sources",
              "image_dir", "evaluate", "checkpoint", "wandb", "enable", "automl", "mlflow", "batch_size",
              "encryption_key", "train_random_crop_max", "backbone", *SHORTHAND_KEYS]
keys = st.one_of(st.sampled_from(_REAL_KEYS), st.text(max_size=8), st.integers(-3, 3), st.none())
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                    st.text(max_size=12), st.just("???"), st.binary(max_size=4))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(keys, inner, max_size=4)), max_leaves=12)
dotted = st.lists(st.one_of(st.sampled_from(_REAL_KEYS), st.from_regex(r"[a-z_]{1,6}(\[[0-9]\])?", fullmatch=True)),
                  min_size=1, max_size=4).map(".".join)
override = st.one_of(st.tuples(dotted, st.text(max_size=12)).map("=".join), st.text(max_size=20))


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=st.dictionaries(keys, values, max_size=5), overrides=st.lists(override, max_size=3),
       action=st.sampled_from([None, "train", "evaluate", "export", "nonsense"]))
def test_load_spec_raises_only_gdino_errors(spec, overrides, action):
    try:
        cfg = load_spec(spec, overrides, action=action)
    except SpecErrors as err:
        assert err.errors and all(isinstance(e, GdinoError) for e in err.errors)
        assert str(err)
    else:
        assert isinstance(cfg, ExperimentConfig)


@settings(max_examples=300, deadline=None)
@given(key=st.text(max_size=30))
def test_split_dotted_accepts_or_raises_typed(key):
    try:
        parts = split_dotted(key)
    except GdinoError:
        return
    assert parts and all(isinstance(p, (str, int)) for p in parts)
