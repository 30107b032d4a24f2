"""Unit-cube encoding, validation, PBT perturbation, grids, and writing configs into specs."""
from __future__ import annotations

import numpy as np
import pytest

from gdino.errors import SchemaError, SpecError
from hpo.space import (
    BoolDomain,
    CategoricalDomain,
    Condition,
    FloatDomain,
    IntDomain,
    Param,
    Relation,
    SearchSpace,
    apply_config,
    apply_epoch_budget,
    scale_lr_steps,
)


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return SearchSpace((
        Param("opt", CategoricalDomain(("AdamW", "SGD"), (3.0, 1.0)), "categorical", "AdamW"),
        Param("momentum", FloatDomain(0.8, 0.99), "float", 0.9, condition=Condition("opt", ("SGD",))),
        Param("lr", FloatDomain(1e-5, 1e-2, log=True), "float", 1e-4),
        Param("layers", IntDomain(2, 12), "int", 6),
        Param("levels", CategoricalDomain((1, 2, 3, 4), ordered=True), "ordered_int", 4),
        Param("flip", BoolDomain(), "bool", True),
        Param("crop_min", IntDomain(32, 1333), "int", 384),
        Param("crop_max", IntDomain(32, 1333), "int", 600, relations=(Relation("crop_min", ">"),)),
    ))


def test_params_are_topologically_ordered(space):
    assert space.names.index("crop_min") < space.names.index("crop_max")
    assert space.names.index("opt") < space.names.index("momentum")
    assert space["crop_min"].domain.high == 1332  # narrowed so crop_max always has a value


def test_unit_round_trip_and_fixed_dimension(space):
    rng = np.random.default_rng(0)
    for _ in range(300):
        config = space.sample(rng)
        u = space.to_unit(config)
        assert u.shape == (space.dim,) and np.all((u >= 0) & (u <= 1))
        back = space.from_unit(u)
        assert back.keys() == config.keys()
        for name, value in config.items():
            if isinstance(value, float):
                assert back[name] == pytest.approx(value, rel=1e-9)
            else:
                assert back[name] == value


def test_from_unit_clips_out_of_cube_and_nan(space):
    config = space.from_unit(np.array([2.0, -1.0, np.nan, 1.5, -3.0, np.nan, 0.999, 1.0]))
    assert space.is_feasible(config)
    with pytest.raises(ValueError):
        space.from_unit(np.zeros(space.dim + 1))


def test_validate_names_the_offending_parameter(space):
    config = space.sample(np.random.default_rng(1))
    with pytest.raises(SpecError) as err:
        space.validate({**config, "crop_max": config["crop_min"]})
    assert err.value.key == "crop_max"
    with pytest.raises(SpecError) as err:
        space.validate({**config, "nope": 1})
    assert err.value.key == "nope"
    missing = dict(config)
    del missing["lr"]
    assert not space.is_feasible(missing)
    assert not space.is_feasible({**config, "layers": 2.5})
    assert not space.is_feasible({**config, "flip": 1})


def test_active_drops_inactive_conditionals(space):
    config = {**space.sample(np.random.default_rng(2)), "opt": "AdamW", "momentum": 0.9}
    assert "momentum" not in space.active(config)
    assert space.active({**config, "opt": "SGD"})["momentum"] == 0.9
    assert space.is_feasible(config)  # an inactive value present is ignored


def test_perturb_stays_feasible_and_moves(space):
    rng = np.random.default_rng(3)
    config = space.sample(rng)
    moved = 0
    for _ in range(2000):
        new = space.perturb(config, rng, factor=1.2, resample_prob=0.2)
        assert space.is_feasible(new)
        moved += new != config
        config = new
    assert moved > 1500


def test_perturb_holds_the_parents_of_a_fixed_parameter(space):
    """crop_max is fixed (as an architecture parameter would be) and must stay > crop_min: so crop_min,
    its parent, is held too, else a perturbed parent could leave the fixed value infeasible."""
    rng = np.random.default_rng(5)
    config = {**space.sample(rng), "crop_min": 500, "crop_max": 501}
    for _ in range(300):
        new = space.perturb(config, rng, resample_prob=0.5, fixed=["crop_max"])
        assert (new["crop_min"], new["crop_max"]) == (500, 501) and space.is_feasible(new)


def test_perturb_at_a_bound_reflects_instead_of_sticking(space):
    rng = np.random.default_rng(4)
    config = {**space.sample(rng), "lr": 1e-2}
    values = [space.perturb(config, rng, resample_prob=0.0)["lr"] for _ in range(200)]
    assert all(v <= 1e-2 for v in values) and any(v < 1e-2 for v in values)
    ordered = [space.perturb({**config, "levels": 4}, rng, resample_prob=0.0)["levels"] for _ in range(50)]
    assert set(ordered) == {3}


def test_grid_covers_choices_and_respects_constraints(space):
    grid = space.grid(3)
    assert all(space.is_feasible(c) for c in grid)
    assert {c["opt"] for c in grid} == {"AdamW", "SGD"}
    assert {c["levels"] for c in grid} == {1, 2, 3, 4}
    lrs = sorted({c["lr"] for c in grid})
    assert lrs == pytest.approx([1e-5, 10 ** -3.5, 1e-2])  # log-spaced
    assert len({repr(sorted(c.items())) for c in grid}) == len(grid)
    with pytest.raises(SpecError):
        space.grid(50, max_configs=1000)


def test_without_resolves_relations_against_the_default(space):
    smaller = space.without(["crop_min"])
    assert "crop_min" not in smaller and smaller["crop_max"].domain.low == 385
    assert any(e.name == "crop_min" for e in smaller.excluded)
    assert "momentum" not in space.without(["opt"])  # AdamW default: momentum has no effect


def test_construction_errors_are_schema_errors():
    with pytest.raises(SchemaError, match="not a searched parameter"):
        SearchSpace((Param("a", IntDomain(0, 5), relations=(Relation("b", ">"),)),))
    with pytest.raises(SchemaError, match="twice"):
        SearchSpace((Param("a", BoolDomain()), Param("a", BoolDomain())))
    with pytest.raises(SchemaError, match="cycle"):
        SearchSpace((Param("a", IntDomain(0, 5), relations=(Relation("b", ">"),)),
                     Param("b", IntDomain(0, 5), relations=(Relation("a", ">"),))))


# --- applying configs -------------------------------------------------------------------------------
def test_apply_config_writes_a_copy():
    spec = {"train": {"optim": {"lr": 1e-4}}, "dataset": {"train_data_sources": [{"image_dir": "a"}]}}
    out = apply_config(spec, {"train.optim.lr": 3e-4, "model.num_select": 100,
                              "dataset.train_data_sources[0].image_dir": "b"})
    assert out["train"]["optim"]["lr"] == 3e-4 and out["model"]["num_select"] == 100
    assert out["dataset"]["train_data_sources"][0]["image_dir"] == "b"
    assert spec["train"]["optim"]["lr"] == 1e-4 and "model" not in spec
    with pytest.raises(SpecError):
        apply_config(spec, {"dataset.train_data_sources[3].image_dir": "c"})


@pytest.mark.parametrize("steps, spec_epochs, trial_epochs, expected", [
    ([10, 20], 30, 30, [10, 20]),
    ([10, 20], 30, 3, [1, 2]),
    ([10, 20], 30, 9, [3, 6]),
    ([10, 20], 30, 60, [20, 40]),
    ([10], 10, 3, [3]),        # a step at the end never fires; still never fires
    ([1, 2], 30, 2, [1, 1]),   # both decays still happen, in order
])
def test_scale_lr_steps(steps, spec_epochs, trial_epochs, expected):
    assert scale_lr_steps(steps, spec_epochs, trial_epochs) == expected


def test_scaled_steps_fire_inside_short_trials():
    for trial in range(2, 40):
        scaled = scale_lr_steps([10, 20], 30, trial)
        assert all(1 <= s <= trial - 1 for s in scaled)


def test_a_searched_epoch_count_rescales_lr_steps():
    spec = {"train": {"num_epochs": 30, "optim": {"lr_steps": [10, 20]}}}
    assert apply_config(spec, {"train.num_epochs": 15})["train"]["optim"]["lr_steps"] == [5, 10]
    given = apply_config(spec, {"train.num_epochs": 15, "train.optim.lr_steps": [7]})
    assert given["train"]["optim"]["lr_steps"] == [7]
    # the fidelity budget applied afterwards keeps the already-scaled milestones
    assert apply_epoch_budget(apply_config(spec, {"train.num_epochs": 15}), 15)["train"]["optim"]["lr_steps"] == [5, 10]


def test_apply_epoch_budget_rescales_lr_steps():
    spec = {"train": {"num_epochs": 30, "optim": {"lr_steps": [10, 20]}}}
    out = apply_epoch_budget(spec, 9)
    assert out["train"]["num_epochs"] == 9 and out["train"]["optim"]["lr_steps"] == [3, 6]
    assert spec["train"]["num_epochs"] == 30
    with pytest.raises(SpecError):
        scale_lr_steps([1], 0, 3)


def test_sampled_values_are_plain_python_and_yaml_safe(space):
    import yaml

    config = space.sample(np.random.default_rng(9))
    assert all(type(v) in (int, float, bool, str) for v in config.values())
    assert yaml.safe_load(yaml.safe_dump(config)) == config


def test_two_sided_relations_are_checked_at_the_parent_extremes():
    ok = SearchSpace((
        Param("p", IntDomain(0, 50)),
        Param("x", IntDomain(0, 100), relations=(Relation("p", ">="), Relation("p", "<=", 1.0, 10.0))),
    ))
    rng = np.random.default_rng(0)
    for _ in range(300):
        c = ok.sample(rng)
        assert c["p"] <= c["x"] <= c["p"] + 10
    with pytest.raises(SchemaError, match="leave no value"):
        SearchSpace((
            Param("a", IntDomain(0, 50)), Param("b", IntDomain(0, 50)),
            Param("x", IntDomain(0, 100), relations=(Relation("a", ">"), Relation("b", "<"))),
        ))
