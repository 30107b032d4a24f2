"""ONNX Runtime backend vs the PyTorch reference on the generated dataset, and the evaluate/inference actions."""
from __future__ import annotations

import json

import numpy as np
import pytest

from gdino.errors import CheckpointError, DependencyMissing, SpecError
from trt import actions
from trt.processing import caption_of, positive_map, tokenize_captions
from trt.runtime import Detector, OnnxRuntimeBackend, TorchBackend, evaluate_coco, open_backend

from conftest import TINY_HW, eval_cfg


def _val_metrics(backend, shapes, tokenizer) -> dict:
    detector = Detector(backend, tokenizer, num_select=50)
    return evaluate_coco(detector, str(shapes["eval_json"]), str(shapes["eval_images"]), batch_size=2)


def test_onnxruntime_map50_matches_pytorch(onnx_file, trained_detector, shapes, tokenizer):
    onnx_metrics = _val_metrics(OnnxRuntimeBackend(onnx_file), shapes, tokenizer)
    torch_metrics = _val_metrics(TorchBackend(trained_detector, height=TINY_HW[0], width=TINY_HW[1]), shapes, tokenizer)
    assert torch_metrics["AP50"] > 0.0, "the parity check needs a model that detects something"
    assert abs(onnx_metrics["AP50"] - torch_metrics["AP50"]) <= 0.005  # 0.5 points
    assert abs(onnx_metrics["AP"] - torch_metrics["AP"]) <= 0.005
