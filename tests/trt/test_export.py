"""ONNX export with TAO's interface: graph contract, ONNX Runtime parity (notes/gdino.md implication 13)."""
from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
import yaml
from conftest import TINY_HW, tiny_detector

from gdino.errors import SpecError, UnsupportedError
from gdino.spec import load_spec
from trt.export import INPUT_NAMES, MASKED_LOGIT, OUTPUT_NAMES, export_onnx, serialize_nvdsinfer, tao_interface
from trt.processing import encode_phrases, postprocess
from trt.runtime import OnnxRuntimeBackend, TorchBackend


def _dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_graph_has_tao_interface_at_opset_17(onnx_file):
    onnx.checker.check_model(str(onnx_file))
    model = onnx.load(str(onnx_file))
    assert [i.name for i in model.graph.input] == list(INPUT_NAMES)
    assert [o.name for o in model.graph.output] == list(OUTPUT_NAMES)
    shapes = {v.name: _dims(v) for v in list(model.graph.input) + list(model.graph.output)}
    assert shapes["inputs"] == ["batch_size", 3, *TINY_HW]
    for name in ("input_ids", "attention_mask", "position_ids", "token_type_ids"):
        assert shapes[name] == ["batch_size", 256]
    assert shapes["text_token_mask"] == ["batch_size", 256, 256]
    assert shapes["pred_logits"] == ["batch_size", 30, 256] and shapes["pred_boxes"] == ["batch_size", 30, 4]
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 17
    ops = {n.op_type for n in model.graph.node}
    assert "GridSample" in ops and not ops & {"EyeLike", "IsIn"}


def _feeds(tokenizer, phrases_per_image, images):
    texts = [encode_phrases(tokenizer, p, 256) for p in phrases_per_image]
    feeds = {k: np.concatenate([t.feeds()[k] for t, _ in texts]) for k in texts[0][0].feeds()}
    return {"inputs": images, **feeds}, [m for _, m in texts]


@pytest.mark.parametrize("batch", [1, 2])
def test_onnxruntime_matches_pytorch(onnx_file, trained_detector, tokenizer, batch):
    rng = np.random.default_rng(batch)
    images = rng.standard_normal((batch, 3, *TINY_HW)).astype(np.float32)
    captions = [["red circle", "green square"], ["blue triangle", "a cat", "red circle"]][:batch]
    feeds, maps = _feeds(tokenizer, captions, images)
    ort_logits, ort_boxes = OnnxRuntimeBackend(onnx_file).infer(feeds)
    ref_logits, ref_boxes = TorchBackend(trained_detector, height=TINY_HW[0], width=TINY_HW[1]).infer(feeds)
    assert np.isfinite(ort_logits).all() and np.isfinite(ort_boxes).all()
    masked = ~feeds["attention_mask"][:, None, :].repeat(30, axis=1)
    assert ((ort_logits == MASKED_LOGIT) == masked).all() and ((ref_logits == MASKED_LOGIT) == masked).all()
    assert np.abs(ort_logits - ref_logits).max() <= 1e-4
    assert np.abs(ort_boxes - ref_boxes).max() <= 1e-5
    sizes = [(80, 100)] * batch
    ort_dets = postprocess(ort_logits, ort_boxes, maps, sizes, num_select=20)
    ref_dets = postprocess(ref_logits, ref_boxes, maps, sizes, num_select=20)
    for a, b in zip(ort_dets, ref_dets):
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)


def test_graph_inputs_reproduce_the_unmodified_model(trained_detector, tokenizer):
    """Text preprocessing outside the graph gives what the model computes from input_ids alone."""
    import torch

    text, _ = encode_phrases(tokenizer, ["red circle", "green square"], 256)
    feeds = {"inputs": np.random.default_rng(0).standard_normal((1, 3, *TINY_HW)).astype(np.float32), **text.feeds()}
    with torch.no_grad():
        ours = tao_interface(trained_detector)(*(torch.from_numpy(feeds[n]) for n in INPUT_NAMES))
        plain = trained_detector(pixel_values=torch.from_numpy(feeds["inputs"]),
                                 input_ids=torch.from_numpy(text.input_ids),
                                 attention_mask=torch.from_numpy(text.attention_mask).long())
    finite = torch.isfinite(plain.logits)
    assert torch.equal(finite, ours[0] != MASKED_LOGIT)
    assert torch.allclose(ours[0][finite], plain.logits[finite], atol=1e-6)
    assert torch.allclose(ours[1], plain.pred_boxes, atol=1e-6)


def test_patches_are_undone_after_export(onnx_file):
    import torch
    import transformers.models.grounding_dino.modeling_grounding_dino as modeling

    assert modeling.torch is torch
    assert modeling.generate_masks_with_special_tokens_and_transfer_map.__name__ == \
        "generate_masks_with_special_tokens_and_transfer_map"
    assert os.environ.get("TRANSFORMERS_DISABLE_TORCH_CHECK") is None


def _cfg(tmp_path, **export):
    section = {"onnx_file": str(tmp_path / "static.onnx"), "input_height": TINY_HW[0], "input_width": TINY_HW[1],
               "batch_size": 2, "opset_version": 17, "serialize_nvdsinfer": True}
    section.update(export)
    return load_spec({"export": section})


def test_export_action_static_batch_and_deepstream_files(tmp_path):
    path = export_onnx(_cfg(tmp_path), detector=tiny_detector(seed=1))
    dims = _dims(onnx.load(str(path), load_external_data=False).graph.input[0])
    assert dims == [2, 3, *TINY_HW]
    infer = yaml.safe_load((tmp_path / "nvdsinfer_config.yaml").read_text())
    assert infer["property"]["onnx-file"] == "static.onnx"
    assert infer["property"]["output-blob-names"] == "pred_logits;pred_boxes"
    assert infer["property"]["infer-dims"] == f"3;{TINY_HW[0]};{TINY_HW[1]}"
    pre = yaml.safe_load((tmp_path / "nvdspreprocess_config.yaml").read_text())
    assert pre["property"]["tensor-name"] == "inputs"
    assert pre["property"]["network-input-shape"] == f"1;3;{TINY_HW[0]};{TINY_HW[1]}"
    with pytest.raises(SpecError, match="already exists"):
        export_onnx(_cfg(tmp_path), detector=tiny_detector(seed=1))


@pytest.mark.parametrize("override,match", [({"format": "xdl"}, "format"), ({"input_channel": 1}, "input_channel"),
                                            ({"opset_version": 15}, "opset")])
def test_export_refuses_what_it_cannot_do(tmp_path, override, match):
    with pytest.raises(UnsupportedError, match=match):
        export_onnx(_cfg(tmp_path, **override), detector=tiny_detector(seed=1))


def test_serialize_nvdsinfer_default_size(tmp_path):
    infer, _ = serialize_nvdsinfer(tmp_path, tmp_path / "m.onnx")
    assert yaml.safe_load(infer.read_text())["property"]["infer-dims"] == "3;544;960"


@pytest.mark.parametrize("head", [{}, {"log_scale": "auto", "class_embed_bias": True}], ids=["gdino", "mm-gdino"])
def test_export_action_from_a_model_package_checkpoint(tmp_path, head):
    """Checkpoint -> gdino.model.load_network -> ONNX; ONNX Runtime agrees with the package's own forward."""
    import sys
    from pathlib import Path

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gdino" / "model"))
    from tiny_model import make_tiny_bert, tiny_model_cfg

    from gdino.model.network import build_network
    from gdino.model.text import load_tokenizer

    bert = make_tiny_bert(tmp_path / "bert")
    model_cfg = tiny_model_cfg(bert, **head)
    torch.manual_seed(0)
    net = build_network(model_cfg).eval()
    torch.save(net.state_dict(), tmp_path / "model.pth")
    path = export_onnx(load_spec({"model": model_cfg.model_dump(mode="json"),
                                  "export": {"checkpoint": str(tmp_path / "model.pth"), "results_dir": str(tmp_path),
                                             "input_height": 64, "input_width": 96}}))
    assert path == tmp_path / "model.onnx"
    text, _ = encode_phrases(load_tokenizer(str(bert)), ["red circle", "cat"], 32)
    image = np.random.default_rng(0).standard_normal((1, 3, 64, 96)).astype(np.float32)
    logits, boxes = OnnxRuntimeBackend(path).infer({"inputs": image, **text.feeds()})
    with torch.no_grad():
        ref = net(*(torch.from_numpy(a) for a in (image, text.input_ids, text.attention_mask.astype(np.int64),
                                                  text.token_type_ids, text.position_ids, text.text_token_mask)))
    valid = text.attention_mask[:, None, :].repeat(logits.shape[1], 1)
    assert np.abs(logits[valid] - ref["pred_logits"].numpy()[valid]).max() <= 1e-4
    assert np.abs(boxes - ref["pred_boxes"].numpy()).max() <= 1e-5
