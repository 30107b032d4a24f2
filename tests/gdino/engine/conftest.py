"""Fixtures for the engine tests: a trained tiny run (helpers in tiny_run.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
from tiny_run import make_tiny_bert, tiny_spec


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    from gdino.data.generate import GenerateOptions, generate

    out = tmp_path_factory.mktemp("shapes")
    generate(GenerateOptions(out_dir=out, num_train=8, num_val=4, num_infer=2, image_size=64, num_classes=3,
                             max_objects=2, seed=3))
    return out


@pytest.fixture(scope="session")
def tiny_text(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("text") / "tiny-bert")


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_data, tiny_text):
    """(cfg, trainer, per-epoch train losses) of a 3-epoch tiny run."""
    import pytorch_lightning as pl

    from gdino.engine.train import fit
    from gdino.spec import load_spec

    cfg = load_spec(tiny_spec(tiny_data, tiny_text, tmp_path_factory.mktemp("run")))
    losses: list[float] = []

    class EpochLoss(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            losses.append(float(trainer.callback_metrics["train_loss"]))

    trainer = fit(cfg, callbacks=[EpochLoss()], enable_progress_bar=False)
    return cfg, trainer, losses
