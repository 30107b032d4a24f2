"""Parameter groups, optimizers, schedulers and freezing as TAO's trainer sets them."""
from __future__ import annotations

import pytest
import torch
from tiny_run import tiny_spec


@pytest.fixture(scope="module")
def module_for(tiny_data, tiny_text, tmp_path_factory):
    from gdino.engine.module import GroundingDinoModule
    from gdino.spec import load_spec

    def build(**train_changes):
        spec = tiny_spec(tiny_data, tiny_text, tmp_path_factory.mktemp("optim"))
        spec["train"].update(train_changes)
        return GroundingDinoModule(load_spec(spec).model_dump(mode="json"))

    return build


def test_three_parameter_groups_at_tao_rates(module_for):
    module = module_for(optim={"lr": 2e-4, "lr_backbone": 2e-5, "lr_linear_proj_mult": 0.1})
    groups = {g["name"]: g for g in module.parameter_groups()}
    assert groups["base"]["lr"] == 2e-4 and groups["backbone"]["lr"] == 2e-5
    assert groups["linear_proj"]["lr"] == pytest.approx(2e-5)
    names = {id(p): n for n, p in module.named_parameters()}
    linear = {names[id(p)] for p in groups["linear_proj"]["params"]}
    assert linear and all("sampling_offsets" in n for n in linear)
    sampling_offsets = {n for n, p in module.named_parameters() if "sampling_offsets" in n}
    assert linear == sampling_offsets  # every deformable-attention offset, encoder and decoder
    backbone_names = [names[id(p)] for p in groups["backbone"]["params"]]
    assert any("text_backbone" in n for n in backbone_names) and any("conv_encoder" in n for n in backbone_names)
    optimizer = module.configure_optimizers()["optimizer"]
    assert isinstance(optimizer, torch.optim.AdamW)


def test_sgd_with_momentum_and_step_lr(module_for):
    module = module_for(optim={"optimizer": "SGD", "momentum": 0.8, "lr_scheduler": "StepLR", "lr_step_size": 3,
                               "lr_decay": 0.5})
    config = module.configure_optimizers()
    assert isinstance(config["optimizer"], torch.optim.SGD)
    assert config["optimizer"].param_groups[0]["momentum"] == 0.8
    scheduler = config["lr_scheduler"]["scheduler"]
    assert isinstance(scheduler, torch.optim.lr_scheduler.StepLR) and scheduler.step_size == 3


def test_freeze_by_tao_module_names(module_for):
    module = module_for(freeze=["bert", "backbone.0"])
    frozen = {n for n, p in module.named_parameters() if not p.requires_grad}
    assert any("text_backbone" in n for n in frozen) and any("conv_encoder" in n for n in frozen)
    assert all(p.requires_grad for n, p in module.named_parameters() if "decoder.layers" in n)


def test_query_position_head_is_not_a_linear_projection(module_for):
    """HF's `reference_points_head` is TAO's `ref_point_head`: TAO's keyword "reference_points" (linear_proj_names)
    does not catch it, so it trains at the base lr, not at lr * lr_linear_proj_mult."""
    from gdino.engine.module import matches, tao_style_name

    module = module_for(optim={"lr": 2e-4, "lr_linear_proj_mult": 0.1})
    lr_of = {id(p): g["lr"] for g in module.parameter_groups() for p in g["params"]}
    head = {n: p for n, p in module.named_parameters() if ".decoder.reference_points_head." in n}
    assert len(head) == 4  # two linear layers
    assert all(lr_of[id(p)] == 2e-4 for p in head.values())
    offsets = [p for n, p in module.named_parameters() if "sampling_offsets" in n]
    assert offsets and all(lr_of[id(p)] == pytest.approx(2e-5) for p in offsets)
    name = next(iter(head))
    assert "ref_point_head" in tao_style_name(name) and not matches(name, ["reference_points"])
    assert matches("net.detector.model.reference_points.weight", ["reference_points"])  # two_stage_type "no"
