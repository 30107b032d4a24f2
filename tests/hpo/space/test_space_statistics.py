"""Statistical properties of sampling (fixed seeds): weights, log-uniformity, constraints, determinism."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from hpo.space import (
    CategoricalDomain,
    Condition,
    FloatDomain,
    IntDomain,
    Param,
    Relation,
    SearchSpace,
    build_search_space,
)

N = 10_000


def _space_with_everything() -> SearchSpace:
    """Weights, log floats, log ints, powers, multiples, a condition and chained relations."""
    return SearchSpace((
        Param("opt", CategoricalDomain(("AdamW", "SGD", "Adam"), (0.6, 0.3, 0.1)), "categorical", "AdamW"),
        Param("momentum", FloatDomain(0.8, 0.99), "float", 0.9, condition=Condition("opt", ("SGD",))),
        Param("lr", FloatDomain(1e-5, 1e-2, log=True), "float", 1e-4),
        Param("layers", IntDomain(1, 64, log=True), "int", 6),
        Param("width", IntDomain(8, 512, power_base=2), "int", 64),
        Param("crop", IntDomain(32, 1333, step=32), "int", 384),
        Param("crop_min", IntDomain(32, 2000), "int", 384),
        Param("crop_max", IntDomain(32, 1333), "int", 600, relations=(Relation("crop_min", ">"),)),
        Param("queries", IntDomain(2, 900), "int", 900),
        Param("select", IntDomain(1, 1000), "int", 300,
              relations=(Relation("queries", "<="), Relation("queries", "<=", 1.0, -1.0))),
        Param("lo", FloatDomain(0.0, 1.0), "float", 0.2),
        Param("hi", FloatDomain(0.0, 1.0), "float", 0.8, relations=(Relation("lo", ">"),)),
    ))


def test_option_weights_match_frequencies_chi_square():
    space = _space_with_everything()
    rng = np.random.default_rng(1234)
    draws = [space.sample(rng)["opt"] for _ in range(N)]
    observed = [draws.count(o) for o in ("AdamW", "SGD", "Adam")]
    expected = [0.6 * N, 0.3 * N, 0.1 * N]
    assert stats.chisquare(observed, expected).pvalue > 0.001


def test_tao_schema_weights_through_range_override(tao_schema_path):
    cfg = {"automl": {"hyperparameters": ["model.backbone"],
                      "range_override": [{"parameter": "model.backbone",
                                          "valid_options": ["swin_tiny_224_1k", "resnet_50", "swin_base_224_22k"],
                                          "option_weights": [5, 3, 2]}]}}
    space = build_search_space(cfg, schema=tao_schema_path)
    rng = np.random.default_rng(7)
    draws = [space.sample(rng)["model.backbone"] for _ in range(N)]
    observed = [draws.count(o) for o in ("swin_tiny_224_1k", "resnet_50", "swin_base_224_22k")]
    assert stats.chisquare(observed, [0.5 * N, 0.3 * N, 0.2 * N]).pvalue > 0.001


def test_log_scaled_floats_are_log_uniform_ks():
    space = _space_with_everything()
    rng = np.random.default_rng(99)
    logs = np.log10([space.sample(rng)["lr"] for _ in range(N)])
    assert stats.kstest(logs, stats.uniform(loc=-5, scale=3).cdf).pvalue > 0.001
    # and clearly not uniform on the linear scale
    values = 10 ** logs
    assert stats.kstest(values, stats.uniform(loc=1e-5, scale=1e-2 - 1e-5).cdf).pvalue < 1e-6


def test_default_mode_lr_is_log_uniform_over_two_decades(tao_schema_path):
    space = build_search_space({"automl": {"space_mode": "default"}}, schema=tao_schema_path)
    domain = space["train.optim.lr"].domain
    assert domain.log and domain.high / domain.low >= 100
    rng = np.random.default_rng(5)
    logs = np.log([space.sample(rng)["train.optim.lr"] for _ in range(N)])
    ref = stats.uniform(loc=math.log(domain.low), scale=math.log(domain.high) - math.log(domain.low))
    assert stats.kstest(logs, ref.cdf).pvalue > 0.001


def test_log_integers_follow_the_discrete_log_uniform_law():
    space = _space_with_everything()
    rng = np.random.default_rng(3)
    draws = np.array([space.sample(rng)["layers"] for _ in range(N)])
    values = np.arange(1, 65)
    p = np.log((values + 1) / values) / math.log(65)
    observed = np.array([(draws == v).sum() for v in values])
    assert (p * N).min() > 5  # chi-square needs no pooling here
    assert stats.chisquare(observed, p * N).pvalue > 0.001


def test_powers_and_multiples_are_uniform_over_their_members():
    space = _space_with_everything()
    rng = np.random.default_rng(11)
    configs = [space.sample(rng) for _ in range(N)]
    widths = [c["width"] for c in configs]
    members = [8, 16, 32, 64, 128, 256, 512]
    assert set(widths) == set(members)
    assert stats.chisquare([widths.count(m) for m in members]).pvalue > 0.001
    assert all(c["crop"] % 32 == 0 and 32 <= c["crop"] <= 1333 for c in configs)


def test_no_constraint_is_violated_over_10000_samples():
    space = _space_with_everything()
    rng = np.random.default_rng(2026)
    boundary = 0
    for _ in range(N):
        c = space.sample(rng)
        assert space.is_feasible(c)
        assert c["crop_max"] > c["crop_min"]
        assert c["select"] <= min(c["queries"], c["queries"] - 1)
        assert c["hi"] > c["lo"]
        assert ("momentum" in c) == (c["opt"] == "SGD")
        boundary += c["crop_max"] == 1333
    # by construction, not clamping: the upper bound is one value among many, not a pile
    assert boundary < 0.05 * N


def test_real_schema_constraints_hold_in_both_modes(tao_schema_path):
    for mode in ("tao", "default"):
        space = build_search_space({"automl": {"space_mode": mode,
                                               "add_hyperparameters": ["model.num_queries"]}},
                                   schema=tao_schema_path)
        rng = np.random.default_rng(8)
        for _ in range(2000):
            c = space.sample(rng)
            assert space.is_feasible(c)
            assert c["dataset.augmentation.train_random_crop_max"] > c["dataset.augmentation.train_random_crop_min"]
            assert c["model.num_select"] <= c["model.num_queries"]


def test_same_seed_same_sequence_and_trials_are_independent_streams():
    space = _space_with_everything()
    first = [space.sample_trial(42, i) for i in range(20)]
    again = [space.sample_trial(42, i) for i in range(20)]
    assert first == again
    assert [space.sample_trial(43, i) for i in range(20)] != first
    assert len({repr(c) for c in first}) == 20
    # trial i does not depend on how many trials were drawn before it
    assert space.sample_trial(42, 7) == first[7]
    a = np.random.default_rng(0)
    b = np.random.default_rng(0)
    assert [space.sample(a) for _ in range(5)] == [space.sample(b) for _ in range(5)]


@pytest.mark.parametrize("seed", [-1, 0, 2**40])
def test_any_integer_seed_is_accepted(seed):
    space = _space_with_everything()
    assert space.sample_trial(seed, 0) == space.sample_trial(seed, 0)
