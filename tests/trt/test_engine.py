"""gen_trt_engine: settings, profile and precision rules everywhere; the real build where TensorRT and a GPU exist."""
from __future__ import annotations

import numpy as np
import pytest

from gdino.errors import DependencyMissing, SpecError, SpecErrors, UnsupportedError
from gdino.spec import load_spec
from trt.engine import (
    EngineSettings,
    build_engine,
    check_data_type,
    parse_layers_precision,
    profile_shapes,
    settings_from_config,
    wants_fp32,
)


def _has_tensorrt_and_gpu() -> str | None:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "the tensorrt package is not installed (it needs NVIDIA's libraries; pip install tensorrt on a GPU host)"
    import torch

    return None if torch.cuda.is_available() else "no CUDA GPU"


def _cfg(**trt_cfg):
    return load_spec({"gen_trt_engine": {"onnx_file": "m.onnx", "trt_engine": "", "batch_size": -1,
                                         "tensorrt": {"data_type": "FP16", "min_batch_size": 1, "opt_batch_size": 2,
                                                      "max_batch_size": 4, "workspace_size": 1024, **trt_cfg}}})


def test_int8_is_refused_as_in_tao():
    with pytest.raises(UnsupportedError, match="INT8"):
        check_data_type("int8")
    with pytest.raises(SpecErrors, match="gen_trt_engine.tensorrt.data_type"):  # the spec itself refuses it
        _cfg(data_type="INT8")


def test_settings_from_config():
    s = settings_from_config(_cfg(layers_precision=["/detector/model/encoder:fp32", "a:b:fp16"]))
    assert s.engine_file.name == "m.engine" and s.data_type == "FP16" and s.workspace_mb == 1024
    assert (s.min_batch, s.opt_batch, s.max_batch) == (1, 2, 4)
    assert s.layers_precision == {"/detector/model/encoder": "fp32", "a:b": "fp16"}
    with pytest.raises(SpecError, match="min_batch_size"):
        settings_from_config(_cfg(min_batch_size=3, opt_batch_size=2))


@pytest.mark.parametrize("entry,error", [("no_precision", SpecError), ("layer:int8", UnsupportedError)])
def test_bad_layers_precision(entry, error):
    with pytest.raises(error):
        parse_layers_precision([entry])


def test_profile_shapes_follow_batch_settings():
    s = EngineSettings(onnx_file=None, engine_file=None, min_batch=1, opt_batch=2, max_batch=4)
    assert profile_shapes((-1, 256, 256), s) == ((1, 256, 256), (2, 256, 256), (4, 256, 256))
    assert profile_shapes((3, 256), s) == ((3, 256),) * 3
    fixed = EngineSettings(onnx_file=None, engine_file=None, batch_size=2)
    assert profile_shapes((-1, 3, 544, 960), fixed) == ((2, 3, 544, 960),) * 3
    with pytest.raises(UnsupportedError):
        profile_shapes((-1, 3, -1, -1), s)


def test_fp16_keeps_sensitive_layers_in_fp32():
    fp16 = EngineSettings(onnx_file=None, engine_file=None, data_type="FP16",
                          layers_precision={"/detector/model/backbone": "fp16"})
    assert wants_fp32("/detector/model/encoder/layers.0/fusion_layer/attn/MatMul", "MATRIX_MULTIPLY", fp16)
    assert wants_fp32("/x/LayerNormalization", "NORMALIZATION", fp16)
    assert wants_fp32("/x/Softmax", "SOFTMAX", fp16)
    assert wants_fp32("/detector/model/backbone/Conv", "CONVOLUTION", fp16) is False
    assert wants_fp32("/detector/model/decoder/Conv", "CONVOLUTION", fp16) is None
    fp32 = EngineSettings(onnx_file=None, engine_file=None, data_type="FP32")
    assert wants_fp32("/x/Softmax", "SOFTMAX", fp32) is None


def test_missing_tensorrt_is_a_clear_error(onnx_file, tmp_path):
    if _has_tensorrt_and_gpu() is None:
        pytest.skip("TensorRT and a GPU are present")
    with pytest.raises(DependencyMissing, match="TensorRT|GPU"):
        build_engine(EngineSettings(onnx_file=onnx_file, engine_file=tmp_path / "m.engine"))


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.parametrize("data_type", ["FP32", "FP16"])
def test_engine_matches_onnxruntime(onnx_file, tmp_path, tokenizer, data_type):
    reason = _has_tensorrt_and_gpu()
    if reason:
        pytest.skip(reason)
    from trt.processing import encode_phrases
    from trt.runtime import OnnxRuntimeBackend, TensorRTBackend

    engine = build_engine(EngineSettings(onnx_file=onnx_file, engine_file=tmp_path / f"m_{data_type}.engine",
                                         data_type=data_type, workspace_mb=2048, max_batch=2,
                                         timing_cache=tmp_path / "timing.cache"))
    assert (tmp_path / "timing.cache").stat().st_size > 0
    text, _ = encode_phrases(tokenizer, ["red circle", "green square"], 256)
    feeds = {"inputs": np.random.default_rng(0).standard_normal((1, 3, 128, 160)).astype(np.float32), **text.feeds()}
    ref_logits, ref_boxes = OnnxRuntimeBackend(onnx_file).infer(feeds)
    logits, boxes = TensorRTBackend(engine).infer(feeds)
    tolerance = 1e-3 if data_type == "FP32" else 5e-2
    assert np.abs(boxes - ref_boxes).max() <= tolerance
    keep = feeds["attention_mask"][:, None, :].repeat(logits.shape[1], 1)
    assert np.abs(logits[keep] - ref_logits[keep]).max() <= tolerance * 100


def test_cli_without_tensorrt_exits_3_and_says_what_is_missing(onnx_file, tmp_path, capsys):
    if _has_tensorrt_and_gpu() is None:
        pytest.skip("TensorRT and a GPU are present")
    from cli.main import main

    spec = tmp_path / "spec.yaml"
    spec.write_text(f"gen_trt_engine:\n  onnx_file: {onnx_file}\n  trt_engine: {tmp_path / 'm.engine'}\n"
                    "  tensorrt:\n    data_type: FP16\n")
    code = main(["gen_trt_engine", "-e", str(spec), "--jobs_root", str(tmp_path / "jobs")])
    assert code == 3
    assert "TensorRT" in capsys.readouterr().err
    assert not (tmp_path / "m.engine").exists()
