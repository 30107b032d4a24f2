"""What a checkpoint holds, and what a finished training leaves (docs/ARCHITECTURE.md "Checkpoints and disk").

The network is the tiny CPU preset's (examples/tiny_cpu.yaml: ResNet-18, MiniLM text encoder frozen with
`train.freeze: [bert]`), trained one epoch on 8 generated 64 px images."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml
from tiny_run import tiny_spec

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
TEXT_PREFIX = "detector.model.text_backbone."


def preset_spec(tiny_data: Path, results: Path, **train: object) -> dict:
    """examples/tiny_cpu.yaml's network and training settings on the tiny test data, 1 epoch."""
    preset = yaml.safe_load((REPO / "examples/tiny_cpu.yaml").read_text())
    small = tiny_spec(tiny_data, Path("unused"), results)
    spec = {"results_dir": str(results), "model": preset["model"], "dataset": small["dataset"],
            "train": {**copy.deepcopy(preset["train"]), "num_epochs": 1, "optim": {
                **preset["train"]["optim"], "lr_steps": [1]}, **train}}
    return spec


def tensor_bytes(state: dict) -> int:
    return sum(v.numel() * v.element_size() for v in state.values() if isinstance(v, torch.Tensor))


@pytest.fixture(scope="module")
def trial_run(tmp_path_factory, tiny_data):
    """A 1-epoch training as a sweep trial runs it (no .pth files) that saves one checkpoint the way
    hpo.sweep.worker's report callback does (trainer.save_checkpoint)."""
    from gdino.engine.train import fit
    from gdino.spec import load_spec

    results = tmp_path_factory.mktemp("trial")
    cfg = load_spec(preset_spec(tiny_data, results))
    trainer = fit(cfg, enable_progress_bar=False, tao_checkpoints=False)
    path = results / "model.ckpt"
    trainer.save_checkpoint(str(path))
    return cfg, trainer, path


def test_trial_checkpoint_leaves_out_the_frozen_text_encoder(trial_run):
    from gdino.model.frozen import OMITTED_KEY, module_fingerprint

    cfg, trainer, path = trial_run
    net = trainer.lightning_module.net
    saved = torch.load(str(path), map_location="cpu", weights_only=False)
    assert not any(k.removeprefix("net.").startswith(TEXT_PREFIX) for k in saved["state_dict"])
    record = saved[OMITTED_KEY]["text_encoder"]
    assert record == {"prefixes": [TEXT_PREFIX], "source": cfg.model.text_encoder_type,
                      "fingerprint": module_fingerprint(net.text_backbone)}
    assert not list((Path(cfg.results_dir)).glob("*.pth"))  # trials write no TAO-style .pth
    assert sorted(Path(cfg.results_dir).rglob("*.ckpt")) == [path]  # nor Lightning's own per-epoch ones


def test_trial_checkpoint_bytes_follow_from_the_parameter_counts(trial_run):
    """Weights of the trained parts + AdamW's two moments per trainable parameter, nothing of the frozen
    text encoder; without optimizer state the file is the weights alone."""
    from hpo.sweep.checkpoints import drop_optimizer_state

    _, trainer, path = trial_run
    module = trainer.lightning_module
    kept_state = {k: v for k, v in module.state_dict().items() if not k.removeprefix("net.").startswith(TEXT_PREFIX)}
    weights = tensor_bytes(kept_state)
    trainable = sum(p.numel() * p.element_size() for p in module.parameters() if p.requires_grad)
    frozen = tensor_bytes(module.net.text_backbone.state_dict())
    assert frozen > 0.5 * weights  # MiniLM is the larger part: leaving it out matters
    overhead = 2_000_000  # pickle framing, hyper-parameters (the spec), loop state
    size = path.stat().st_size
    assert weights + 2 * trainable <= size <= weights + 2 * trainable + overhead

    light = path.parent / "light" / "model.ckpt"
    light.parent.mkdir()
    light.write_bytes(path.read_bytes())
    assert drop_optimizer_state(light.parent) > 2 * trainable - overhead
    assert weights <= light.stat().st_size <= weights + overhead
    assert "optimizer_states" not in torch.load(str(light), map_location="cpu", weights_only=False)


def test_trial_checkpoint_resumes_and_refuses_a_different_text_encoder(trial_run, tmp_path):
    from gdino.engine.callbacks import check_resumed_state
    from gdino.errors import CheckpointError

    _, trainer, path = trial_run
    module = trainer.lightning_module
    saved = torch.load(str(path), map_location="cpu", weights_only=False)
    check_resumed_state(module, saved)  # the omitted encoder counts as restored: same fingerprint
    with torch.no_grad():
        next(module.net.text_backbone.parameters()).add_(1.0)
    try:
        with pytest.raises(CheckpointError, match="differs"):
            check_resumed_state(module, saved)
    finally:
        with torch.no_grad():
            next(module.net.text_backbone.parameters()).sub_(1.0)
    del saved["state_dict"][next(k for k in saved["state_dict"] if "bbox_embed" in k)]
    with pytest.raises(CheckpointError, match="1 tensors missing"):
        check_resumed_state(module, saved)


def test_plain_training_leaves_its_final_model_whatever_the_interval(tmp_path, tiny_data):
    """examples/tiny_cpu.yaml says checkpoint_interval: 4; one epoch still leaves its .pth, complete, and it
    loads back through the evaluate path with every tensor equal."""
    from gdino.engine.callbacks import latest_checkpoint
    from gdino.engine.train import fit
    from gdino.model.weights import load_network
    from gdino.spec import load_spec

    cfg = load_spec(preset_spec(tiny_data, tmp_path))
    assert cfg.train.checkpoint_interval == 4
    trainer = fit(cfg, enable_progress_bar=False)
    final = latest_checkpoint(tmp_path)
    assert final is not None and final.name == f"model_epoch_000_step_{trainer.global_step:05d}.pth"
    assert len(list(tmp_path.glob("*.pth"))) == 1

    loaded = load_network(cfg, final).state_dict()
    trained = trainer.lightning_module.net.state_dict()
    assert loaded.keys() == trained.keys()
    assert all(torch.equal(loaded[k], trained[k]) for k in trained)
