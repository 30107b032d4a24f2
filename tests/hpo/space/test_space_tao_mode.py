"""`tao` mode reproduces TAO's effective ranges on TAO's real grounding_dino train schema.

Expected values: notes/tao.md §3.3, "Effective TAO ranges for the 13 grounding_dino defaults
(computed with TAO's own get_valid_range on the real schema)".
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from hpo.space import FloatDomain, IntDomain, build_search_space

# name -> (type, low, high) exactly as in notes/tao.md §3.3
TAO_TABLE = {
    "train.optim.lr": ("float", 0.0, 2e-4),
    "train.optim.lr_backbone": ("float", 0.0, 2e-5),
    "train.optim.lr_linear_proj_mult": ("float", 0.0, 0.1),
    "train.optim.momentum": ("float", 0.0, 0.9),
    "train.optim.weight_decay": ("float", 0.0, 1e-4),
    "train.optim.lr_decay": ("float", 0.0, 0.1),
    "train.optim.lr_step_size": ("int", 0, 10),
    "model.enc_layers": ("int", 3, 12),
    "model.dec_layers": ("int", 3, 12),
    "model.num_select": ("int", 1, 900),  # schema [1, 1000], then capped at num_queries (900)
    "dataset.augmentation.horizontal_flip_prob": ("float", 0.0, 1.0),
    "dataset.augmentation.train_random_crop_min": ("int", 32, 384),
    "dataset.augmentation.train_random_crop_max": ("int", 32, 1333),  # (crop_min, 1333]
}
CROP_MIN = "dataset.augmentation.train_random_crop_min"
CROP_MAX = "dataset.augmentation.train_random_crop_max"


@pytest.fixture(scope="module")
def tao_space(tao_schema_path):
    return build_search_space({"automl": {"space_mode": "tao"}}, schema=tao_schema_path)


def test_tao_mode_searches_exactly_the_13_defaults(tao_space):
    assert sorted(tao_space.names) == sorted(TAO_TABLE)
    assert tao_space.mode == "tao"


@pytest.mark.parametrize("name", sorted(TAO_TABLE))
def test_tao_mode_effective_range(tao_space, name):
    kind, low, high = TAO_TABLE[name]
    param = tao_space[name]
    assert param.value_type == kind
    domain = param.domain
    if kind == "float":
        assert isinstance(domain, FloatDomain) and not domain.log  # TAO samples floats linearly
        assert math.isclose(domain.low, low, abs_tol=1e-15) and math.isclose(domain.high, high, rel_tol=1e-12)
    else:
        assert isinstance(domain, IntDomain) and not domain.log
        assert (domain.low, domain.high) == (low, high)


def test_crop_max_is_strictly_above_crop_min_by_relation(tao_space):
    rel = tao_space[CROP_MAX].relations
    assert len(rel) == 1 and rel[0].parent == CROP_MIN and rel[0].op == ">"
    assert tao_space.names.index(CROP_MIN) < tao_space.names.index(CROP_MAX)


def test_crop_max_uses_its_own_default_when_crop_min_is_not_sampled(tao_schema_path):
    space = build_search_space({"automl": {"space_mode": "tao", "remove_hyperparameters": [CROP_MIN]}},
                               schema=tao_schema_path)
    domain = space[CROP_MAX].domain
    assert (domain.low, domain.high) == (601, 1333)  # TAO: (600, 1333]
    assert not space[CROP_MAX].relations


def test_num_select_is_capped_by_construction_not_clamping(tao_space):
    rng = np.random.default_rng(0)
    draws = np.array([tao_space.sample(rng)["model.num_select"] for _ in range(3000)])
    assert draws.max() <= 900
    # TAO clamps [1, 1000] to 900, piling ~10% of samples on 900; by construction 900 is one value of 900
    assert (draws == 900).mean() < 0.01
    assert "900" in tao_space["model.num_select"].note


def test_tao_mode_table_rows(tao_space):
    rows = {r["parameter"]: r for r in tao_space.table()}
    assert rows["train.optim.lr"]["range"] == "[0, 0.0002]" and rows["train.optim.lr"]["scale"] == "linear"
    assert rows[CROP_MAX]["dependency"] == f"> {CROP_MIN}"
    assert set(rows["train.optim.lr"]) >= {"parameter", "type", "range", "scale", "weights", "condition",
                                           "dependency"}
