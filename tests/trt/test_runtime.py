"""ONNX Runtime backend vs the PyTorch reference on the generated dataset, and the evaluate/inference actions."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TINY_HW, eval_cfg

from gdino.errors import CheckpointError, DependencyMissing, SpecError
from gdino.spec import load_spec
from trt import actions
from trt.runtime import Detector, OnnxRuntimeBackend, TorchBackend, evaluate_coco, open_backend


def _metrics(backend, tokenizer, json_file, image_dir) -> dict:
    return evaluate_coco(Detector(backend, tokenizer, num_select=50), str(json_file), str(image_dir), batch_size=2)


@pytest.fixture(scope="module")
def torch_backend(trained_detector):
    return TorchBackend(trained_detector, height=TINY_HW[0], width=TINY_HW[1])


@pytest.fixture(scope="module")
def pseudo_labels(torch_backend, shapes, tokenizer, tmp_path_factory) -> Path:
    """The val images labelled with the PyTorch model's own 3 best boxes per image: a random tiny model scores
    near 0 on the real labels, so this gives the mAP comparison something non-trivial to agree on."""
    from gdino.data import sources
    from gdino.data.datasets import load_image

    coco = json.loads(Path(shapes["eval_json"]).read_text())
    root = sources.resolve_image_dir(str(shapes["eval_images"]))
    names = [c["name"] for c in sorted(coco["categories"], key=lambda c: c["id"])]
    detector = Detector(torch_backend, tokenizer, num_select=3)
    annotations = []
    for image in coco["images"]:
        dets = detector.detect([load_image(root / image["file_name"])], names)[0]
        for label, (x1, y1, x2, y2) in zip(dets.labels, dets.boxes):
            x1, y1 = max(float(x1), 0.0), max(float(y1), 0.0)
            x2, y2 = min(float(x2), image["width"]), min(float(y2), image["height"])
            if x2 - x1 > 1 and y2 - y1 > 1:
                annotations.append({"id": len(annotations) + 1, "image_id": image["id"], "category_id": int(label),
                                    "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    path = tmp_path_factory.mktemp("pseudo") / "annotations.json"
    path.write_text(json.dumps({**coco, "annotations": annotations}))
    return path


def test_onnxruntime_map_matches_pytorch_on_generated_dataset(onnx_file, torch_backend, shapes, tokenizer):
    onnx_metrics = _metrics(OnnxRuntimeBackend(onnx_file), tokenizer, shapes["eval_json"], shapes["eval_images"])
    torch_metrics = _metrics(torch_backend, tokenizer, shapes["eval_json"], shapes["eval_images"])
    assert abs(onnx_metrics["AP50"] - torch_metrics["AP50"]) <= 0.005  # 0.5 points
    assert abs(onnx_metrics["AP"] - torch_metrics["AP"]) <= 0.005


def test_onnxruntime_map_matches_pytorch_on_non_trivial_labels(onnx_file, torch_backend, pseudo_labels, shapes,
                                                               tokenizer):
    torch_metrics = _metrics(torch_backend, tokenizer, pseudo_labels, shapes["eval_images"])
    onnx_metrics = _metrics(OnnxRuntimeBackend(onnx_file), tokenizer, pseudo_labels, shapes["eval_images"])
    assert torch_metrics["AP50"] > 0.5, "the reference must find its own boxes"
    assert abs(onnx_metrics["AP50"] - torch_metrics["AP50"]) <= 0.005
    assert abs(onnx_metrics["AP"] - torch_metrics["AP"]) <= 0.005


def test_open_backend_by_suffix(onnx_file, tmp_path):
    assert open_backend(onnx_file).input_hw == TINY_HW
    with pytest.raises(CheckpointError):
        open_backend(tmp_path / "model.pth")
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"not an engine")
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(DependencyMissing, match="TensorRT"):
            open_backend(engine)


@pytest.mark.parametrize("section,expected", [
    ({"checkpoint": "a/model.onnx"}, ("onnx", "a/model.onnx")),
    ({"checkpoint": "a/model.pth"}, ("pytorch", "a/model.pth")),
    ({"checkpoint": "a/model.pth", "trt_engine": "a/model.engine"}, ("tensorrt", "a/model.engine")),
    ({"checkpoint": "???", "trt_engine": "a/model.onnx"}, ("onnx", "a/model.onnx")),
    ({"checkpoint": "a/model.plan"}, ("tensorrt", "a/model.plan")),
])
def test_resolve_model(section, expected):
    assert actions.resolve_model(load_spec({"evaluate": section}), "evaluate") == expected


def test_resolve_model_without_a_model_is_a_spec_error():
    with pytest.raises(SpecError, match="evaluate.checkpoint"):
        actions.resolve_model(load_spec({"evaluate": {"checkpoint": "???", "trt_engine": ""}}), "evaluate")


def test_evaluate_action_with_onnx_writes_results(onnx_file, shapes, tmp_path):
    cfg = eval_cfg(shapes, tmp_path, evaluate={"checkpoint": str(onnx_file), "batch_size": -1})
    metrics = actions.evaluate(load_spec(cfg))
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["backend"] == "onnx" and written["AP50"] == pytest.approx(metrics["AP50"])
    assert set(written["per_class"]) == {"red circle", "green square", "blue triangle"}


def test_evaluate_action_refuses_a_size_the_model_was_not_exported_at(onnx_file, shapes, tmp_path):
    cfg = eval_cfg(shapes, tmp_path, evaluate={"checkpoint": str(onnx_file), "input_height": 544,
                                               "input_width": 960})
    with pytest.raises(SpecError, match="128x160"):
        actions.evaluate(load_spec(cfg))


def test_inference_action_with_onnx_writes_images_and_labels(onnx_file, shapes, tmp_path):
    cfg = eval_cfg(shapes, tmp_path, inference={"checkpoint": str(onnx_file), "conf_threshold": 0.0,
                                                "outline_width": 2})
    out = actions.infer(load_spec(cfg))
    images = sorted((out / "images_annotated").iterdir())
    labels = sorted((out / "labels").glob("*.txt"))
    assert len(images) == 2 and len(labels) == 2
    first = labels[0].read_text().splitlines()
    assert first and len(first) <= 50  # num_select boxes at most, all above a 0.0 threshold
    fields = first[0].split()
    assert fields[0] in {"red_circle", "green_square"} and len(fields) == 16


def test_cli_evaluate_with_an_onnx_file(onnx_file, shapes, tmp_path, capsys):
    import yaml
    from conftest import TEXT_ENCODER

    from cli.main import main

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "model": {"text_encoder_type": TEXT_ENCODER, "num_select": 50},
        "dataset": {"test_data_sources": {"image_dir": str(shapes["eval_images"]),
                                          "json_file": str(shapes["eval_json"])}},
        "evaluate": {"checkpoint": str(onnx_file), "results_dir": str(tmp_path / "eval")}}))
    code = main(["evaluate", "-e", str(spec), "--jobs_root", str(tmp_path / "jobs")])
    assert code == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["backend"] == "onnx"
    assert "AP50=" in capsys.readouterr().out
