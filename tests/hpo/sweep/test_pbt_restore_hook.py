"""After a PBT exploit, the trial's own optimizer hyperparameters win over the donor checkpoint's restored
optimizer and scheduler state (hpo.sweep.worker.apply_optimizer_config), with a real Lightning fit."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pl = pytest.importorskip("pytorch_lightning")

from hpo.sweep.worker import make_apply_optimizer_config_callback  # noqa: E402

pytestmark = pytest.mark.timeout(120)


class TwoGroups(pl.LightningModule):
    """gdino's optimizer layout in miniature: a base group at lr and a backbone group at lr_backbone,
    AdamW + MultiStepLR stepped per epoch."""

    def __init__(self, lr: float, lr_backbone: float, weight_decay: float, lr_decay: float) -> None:
        super().__init__()
        self.backbone, self.head = torch.nn.Linear(4, 4), torch.nn.Linear(4, 1)
        self.optim = SimpleNamespace(lr=lr, lr_backbone=lr_backbone, weight_decay=weight_decay, lr_decay=lr_decay)
        self.seen_lrs: list[list[float]] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.head(self.backbone(x)), y)

    def on_train_epoch_start(self) -> None:
        self.seen_lrs.append([g["lr"] for g in self.trainer.optimizers[0].param_groups])

    def configure_optimizers(self):
        o = self.optim
        groups = [{"params": self.head.parameters(), "lr": o.lr},
                  {"params": self.backbone.parameters(), "lr": o.lr_backbone}]
        optimizer = torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[1], gamma=o.lr_decay)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}


def _loader():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 4, generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)


def _trainer(tmp_path, epochs: int, callbacks=()) -> pl.Trainer:
    return pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path),
                      callbacks=list(callbacks))


@pytest.mark.parametrize("hook", [True, False])
def test_an_exploited_trial_trains_with_its_own_lr_and_weight_decay(tmp_path, hook):
    donor = TwoGroups(lr=1e-2, lr_backbone=1e-3, weight_decay=1e-4, lr_decay=0.1)
    trainer = _trainer(tmp_path / "donor", 2)
    trainer.fit(donor, _loader())
    checkpoint = tmp_path / "donor.ckpt"
    trainer.save_checkpoint(str(checkpoint))  # epoch 2: the donor's schedule has decayed once (x0.1)

    explored = TwoGroups(lr=4e-2, lr_backbone=2e-3, weight_decay=5e-3, lr_decay=0.5)  # the perturbed config
    hooks = [make_apply_optimizer_config_callback()] if hook else []
    resumed = _trainer(tmp_path / "exploit", 3, hooks)
    resumed.fit(explored, _loader(), ckpt_path=str(checkpoint))

    lrs = explored.seen_lrs[0]  # epoch 3, the first after the exploit
    groups = resumed.optimizers[0].param_groups
    if hook:
        assert lrs == pytest.approx([4e-2 * 0.5, 2e-3 * 0.5])  # new base lrs, new decay, one milestone passed
        assert [g["weight_decay"] for g in groups] == [5e-3, 5e-3]
        assert resumed.lr_scheduler_configs[0].scheduler.base_lrs == pytest.approx([4e-2, 2e-3])
    else:  # what Lightning does on its own: the donor's hyperparameters silently come back
        assert lrs == pytest.approx([1e-2 * 0.1, 1e-3 * 0.1])
        assert [g["weight_decay"] for g in groups] == [1e-4, 1e-4]
