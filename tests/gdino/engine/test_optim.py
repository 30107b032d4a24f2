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
    assert all("sampling_offsets" in names[id(p)] or "reference_points" in names[id(p)]
               for p in groups["linear_proj"]["params"])
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
