"""The spec's own values and the search space (issue 11 part 6 b, c): every default-mode range contains the
value the spec gives (so the baseline trial lies inside the space the sweep searches), tao mode and a user's
range override keep their ranges and `automl space` says the value lies outside; a sweep that starts from a
pretrained checkpoint does not search the parameters that change the network's tensors."""
from __future__ import annotations

from hpo.space import build_search_space
from hpo.space.gdino_rules import ARCHITECTURE_PARAMS
from hpo.space.table import render_table
from hpo.sweep.baseline import baseline_config

LR = "train.optim.lr"
LR_BACKBONE = "train.optim.lr_backbone"


def _space(spec: dict, **automl):
    return build_search_space({**spec, "automl": {"hyperparameters": [LR, LR_BACKBONE, "model.enc_layers",
                                                                      "model.dec_layers"], **automl}})


def test_default_mode_ranges_widen_to_the_spec_values_and_say_so():
    spec = {"train": {"optim": {"lr": 2e-4, "lr_backbone": 1e-3}}, "model": {"enc_layers": 9, "dec_layers": 3}}
    space = _space(spec)
    assert space[LR_BACKBONE].domain.contains(1e-3) and space[LR_BACKBONE].domain.high == 1e-3
    assert space["model.enc_layers"].domain.contains(9)
    assert space[LR].note == ""  # already inside: untouched
    text = render_table(space)
    assert "train.optim.lr_backbone: widened from" in text and "the spec's value 0.001" in text
    # the baseline trial is the spec as written, and it is a point of the space
    config = baseline_config(space)
    assert config[LR_BACKBONE] == 1e-3 and config["model.enc_layers"] == 9 and config["__baseline__"]
    space.validate({k: v for k, v in config.items() if not k.startswith("__")})


def test_tao_mode_and_range_overrides_keep_their_ranges_and_say_the_value_lies_outside():
    spec = {"train": {"optim": {"lr": 1e-4, "lr_backbone": 1e-3}}}
    tao = _space(spec, space_mode="tao")  # TAO's own range for lr_backbone is [0, 2e-05]
    assert (tao[LR_BACKBONE].domain.low, tao[LR_BACKBONE].domain.high) == (0.0, 2e-05)
    assert tao[LR_BACKBONE].note == "the spec's value 0.001 lies outside [0, 2e-05] (tao mode keeps TAO's range)"
    assert tao[LR].note == ""  # 1e-4 is inside TAO's [0, 0.0002]
    override = _space(spec, range_override=[{"parameter": LR_BACKBONE, "valid_min": 1e-6, "valid_max": 1e-5}])
    assert (override[LR_BACKBONE].domain.low, override[LR_BACKBONE].domain.high) == (1e-6, 1e-5)
    assert "the spec's value 0.001 lies outside" in render_table(override)
    assert "range override kept" in override[LR_BACKBONE].note


def test_a_pretrained_start_drops_architecture_params_with_the_reason():
    spec = {"train": {"pretrained_model_path": "/models/gdino_swin_t.pth"}}
    space = _space(spec)
    assert "model.enc_layers" not in space and "model.dec_layers" not in space and LR in space
    reasons = {e.name: e.reason for e in space.excluded}
    assert "pretrained checkpoint /models/gdino_swin_t.pth" in reasons["model.enc_layers"]
    assert ARCHITECTURE_PARAMS["model.dec_layers"] in reasons["model.dec_layers"]
    assert "model.enc_layers: starting from the pretrained checkpoint" in render_table(space)
    assert "model.enc_layers" in _space({}).names  # without a checkpoint they are searched
