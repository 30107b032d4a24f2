"""quantize: the combinations that run here (ONNX Runtime static/dynamic, torchao weight-only), the rest refused."""
from __future__ import annotations

import json

import onnx
import pytest
from conftest import TINY_HW, eval_cfg, tiny_detector

from gdino.errors import SpecError, UnsupportedError
from gdino.spec import load_spec
from trt.quantize import QuantizeSettings, check_supported, quantize
from trt.runtime import OnnxRuntimeBackend


@pytest.fixture(scope="module")
def small_val(shapes, tmp_path_factory) -> str:
    """The first 4 val images: each quantize test evaluates twice, on a 2-core machine."""
    coco = json.loads(shapes["eval_json"].read_text())
    keep = {image["id"] for image in coco["images"][:4]}
    subset = {**coco, "images": [i for i in coco["images"] if i["id"] in keep],
              "annotations": [a for a in coco["annotations"] if a["image_id"] in keep]}
    path = tmp_path_factory.mktemp("small_val") / "annotations.json"
    path.write_text(json.dumps(subset))
    return str(path)


@pytest.fixture
def _cfg(shapes, small_val):
    def make(tmp_path, **quantize_section):
        cfg = eval_cfg(shapes, tmp_path, quantize={"results_dir": str(tmp_path), "backend_kwargs":
                                                   {"calibration_images": 2}, **quantize_section},
                       export={"input_height": TINY_HW[0], "input_width": TINY_HW[1]})
        cfg["dataset"]["val_data_sources"]["json_file"] = small_val
        return load_spec(cfg)
    return make


@pytest.mark.parametrize("backend,mode,algorithm", [
    ("modelopt.pytorch", "static_ptq", "minmax"), ("modelopt.onnx", "static_ptq", "awq_full"),
    ("torchao", "static_ptq", "minmax")])
def test_unsupported_combinations_are_refused_naming_the_supported_ones(backend, mode, algorithm):
    with pytest.raises(UnsupportedError, match="supported: backend=modelopt.onnx mode=static_ptq"):
        check_supported(QuantizeSettings(backend=backend, mode=mode, algorithm=algorithm))


def test_layers_with_other_dtypes_are_refused():
    with pytest.raises(UnsupportedError, match="fp8"):
        QuantizeSettings.from_config(
            load_spec({"quantize": {"layers": [{"module_name": "decoder", "weights": {"dtype": "fp8"}}]}}))


def test_onnx_backend_needs_an_onnx_file(_cfg, tmp_path):
    with pytest.raises(SpecError, match="quantize.model_path"):
        quantize(_cfg(tmp_path, backend="modelopt.onnx", mode="weight_only_ptq", model_path="m.pth"))


def _report_checks(report, tmp_path):
    written = json.loads((tmp_path / "quantize_report.json").read_text())
    assert written == report
    for k in ("AP", "AP50", "AP75"):
        assert report["change"][k] == pytest.approx(report["quantized"][k] - report["float"][k])


def test_onnxruntime_dynamic_quantization(onnx_file, _cfg, tmp_path):
    report = quantize(_cfg(tmp_path, backend="modelopt.onnx", mode="weight_only_ptq", algorithm="minmax",
                           model_path=str(onnx_file), skip_names=["bbox_embed"]))
    _report_checks(report, tmp_path)
    graph = onnx.load(report["quantized_model"]).graph
    ops = {n.op_type for n in graph.node}
    assert ops & {"DynamicQuantizeLinear", "MatMulInteger", "DynamicQuantizeMatMul"}
    kept_float = [n for n in graph.node if "bbox_embed" in n.name and n.op_type == "MatMul"]
    assert kept_float, "skip_names must keep those MatMuls in float"
    assert OnnxRuntimeBackend(report["quantized_model"]).input_hw == TINY_HW


def test_onnxruntime_static_qdq_quantization(onnx_file, _cfg, tmp_path):
    report = quantize(_cfg(tmp_path, backend="modelopt.onnx", mode="static_ptq", algorithm="minmax",
                           model_path=str(onnx_file), layers=[{"module_name": "backbone"}]))
    _report_checks(report, tmp_path)
    nodes = onnx.load(report["quantized_model"]).graph.node
    quantized = [n.name for n in nodes if n.op_type == "QuantizeLinear"]
    assert quantized
    assert not any("decoder" in n.name for n in nodes if n.op_type == "DequantizeLinear" and "MatMul" in n.name)


def test_torchao_weight_only(_cfg, tmp_path):
    pytest.importorskip("torchao")
    detector = tiny_detector(seed=2)
    report = quantize(_cfg(tmp_path, backend="torchao", mode="weight_only_ptq", model_path="tiny.pth",
                           skip_names=["text_backbone"]), detector=detector)
    _report_checks(report, tmp_path)
    import torch

    linear_types = {type(m.weight).__name__ for n, m in detector.named_modules()
                    if isinstance(m, torch.nn.Linear) and "text_backbone" not in n}
    assert "Parameter" not in linear_types and "Tensor" not in linear_types
    text_types = {type(m.weight).__name__ for n, m in detector.named_modules()
                  if isinstance(m, torch.nn.Linear) and "text_backbone" in n}
    assert text_types == {"Parameter"}
