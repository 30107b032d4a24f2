"""`export`: a checkpoint -> ONNX with TAO's interface, through the TorchScript exporter at opset 17.

Graph inputs (TAO, notes/tao.md §4.1): `inputs` [B,3,H,W], `input_ids` / `attention_mask` (bool) /
`position_ids` / `token_type_ids` [B,T], `text_token_mask` [B,T,T] (bool), T = model.max_text_len (256).
Outputs: `pred_logits` [B,Q,T] (token logits; masked tokens carry MASKED_LOGIT instead of -inf, an FP16
hazard in TensorRT) and `pred_boxes` [B,Q,4] (normalised cxcywh). Text preprocessing stays outside the
graph (trt.processing). `export.batch_size: -1` makes axis 0 of every tensor dynamic ("batch_size").
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

from gdino.config import ExperimentConfig
from gdino.spec import given

log = logging.getLogger(__name__)

INPUT_NAMES = ("inputs", "input_ids", "attention_mask", "position_ids", "token_type_ids", "text_token_mask")
OUTPUT_NAMES = ("pred_logits", "pred_boxes")
MASKED_LOGIT = -1.0e4  # sigmoid() is exactly 0 in FP32 and FP16, and the value is finite in FP16
DUMMY_CAPTION_IDS = (101, 1996, 2770, 3899, 1012, 102)  # TAO's dummy caption "the running dog ." (bert-base-uncased)
MIN_OPSET = 16  # GridSample (deformable attention) needs opset 16


def _tao_interface(detector):
    """nn.Module with TAO's six inputs and two outputs around an HF GroundingDinoForObjectDetection."""
    import torch

    from trt.patches import provided_text_masks

    class TaoInterface(torch.nn.Module):
        def __init__(self, net) -> None:
            super().__init__()
            self.detector = net

        def forward(self, inputs, input_ids, attention_mask, position_ids, token_type_ids, text_token_mask):
            with provided_text_masks(text_token_mask, position_ids):
                out = self.detector(pixel_values=inputs, input_ids=input_ids, token_type_ids=token_type_ids,
                                    attention_mask=attention_mask, return_dict=True)
            keep = attention_mask.bool().unsqueeze(1)  # [B,1,T]: padding and masked tokens get a finite floor
            logits = torch.where(keep, out.logits, torch.full_like(out.logits, MASKED_LOGIT))
            return logits, out.pred_boxes

    return TaoInterface(detector).eval()


def tao_interface(detector):
    """The exported module, also the PyTorch reference backend of trt.runtime."""
    return _tao_interface(detector)


def dummy_inputs(batch: int, height: int, width: int, max_text_len: int, channels: int = 3) -> tuple:
    import torch

    from trt.patches import text_masks_from_ids

    ids = torch.zeros((batch, max_text_len), dtype=torch.long)
    ids[:, : len(DUMMY_CAPTION_IDS)] = torch.tensor(DUMMY_CAPTION_IDS)
    attention_mask = ids != 0
    text_token_mask, position_ids = text_masks_from_ids(ids)
    image = torch.randn(batch, channels, height, width, generator=torch.Generator().manual_seed(0))
    return (image, ids, attention_mask, position_ids.long(), torch.zeros_like(ids), text_token_mask.bool())


def export_module(detector, onnx_path: str | os.PathLike, *, height: int = 544, width: int = 960,
                  batch_size: int = -1, opset_version: int = 17, verbose: bool = False) -> Path:
    """Trace `detector` (HF GroundingDinoForObjectDetection, eval mode) to `onnx_path` and check the file."""
    import torch

    from gdino.errors import UnsupportedError
    from trt.patches import onnx_export_patches

    if opset_version < MIN_OPSET:
        raise UnsupportedError(f"export.opset_version={opset_version} is too old for the deformable attention",
                               hint=f"use opset {MIN_OPSET} or 17 (TAO's default)")
    onnx_path = Path(onnx_path)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    max_text_len = int(detector.config.max_text_len)
    args = dummy_inputs(1 if batch_size == -1 else batch_size, height, width, max_text_len)
    dynamic_axes = ({name: {0: "batch_size"} for name in INPUT_NAMES + OUTPUT_NAMES}
                    if batch_size == -1 else None)
    module = _tao_interface(detector.eval())
    with torch.no_grad(), onnx_export_patches(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape-dependent Python branches are expected
        torch.onnx.export(module, args, str(onnx_path), dynamo=False, opset_version=opset_version,
                          input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                          dynamic_axes=dynamic_axes, do_constant_folding=True, verbose=verbose)
    queries = int(detector.config.num_queries)
    _pin_output_shapes(onnx_path, {"pred_logits": (queries, max_text_len), "pred_boxes": (queries, 4)},
                       batch="batch_size" if batch_size == -1 else batch_size)
    check_onnx(onnx_path, opset_version)
    return onnx_path


def _pin_output_shapes(onnx_path: Path, trailing: dict[str, tuple[int, ...]], batch: str | int) -> None:
    """Write the outputs' static dims (Q, T / 4) into the graph: the tracer leaves them symbolic, and TAO's
    consumers (DeepStream, TensorRT) read them from the file."""
    import onnx

    model = onnx.load(str(onnx_path))
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        values = (batch, *trailing[output.name])
        for dim, value in zip(dims, values):
            dim.Clear()
            if isinstance(value, str):
                dim.dim_param = value
            else:
                dim.dim_value = value
    onnx.save(model, str(onnx_path))


def check_onnx(onnx_path: str | os.PathLike, opset_version: int) -> None:
    """onnx.checker on the file, and the opset it really carries (the exporter may not honour the request)."""
    import onnx

    onnx.checker.check_model(str(onnx_path))
    model = onnx.load(str(onnx_path), load_external_data=False)
    default_opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if default_opset != opset_version:
        raise RuntimeError(f"exported opset {default_opset}, expected {opset_version}")


# ---------------------------------------------------------------- DeepStream config files (TAO's)

def _nvds_yaml(tree: dict) -> str:
    """TAO's DeepStream serialisation: lists joined with ';', '_' in keys written as '-'."""
    import yaml

    def convert(node):
        if isinstance(node, dict):
            return {str(k).replace("_", "-"): convert(v) for k, v in node.items() if v is not None}
        if isinstance(node, list) and not all(isinstance(i, dict) for i in node):
            return ";".join(str(i) for i in node)
        if isinstance(node, list):
            return [convert(i) for i in node]
        return node

    return yaml.safe_dump(convert(tree))


def serialize_nvdsinfer(output_root: str | os.PathLike, onnx_file: str | os.PathLike, *, input_channel: int = 3,
                        input_height: int = 544, input_width: int = 960) -> tuple[Path, Path]:
    """Write `nvdsinfer_config.yaml` and `nvdspreprocess_config.yaml` beside the ONNX file, as TAO does."""
    root = Path(output_root)
    root.mkdir(parents=True, exist_ok=True)
    infer = {
        "property": {
            "net_scale_factor": 0.0078431372549, "offsets": [127.5, 127.5, 127.5],
            "onnx_file": os.path.basename(str(onnx_file)), "cluster_mode": 4, "workspace_size": 1048576,
            "gie_unique_id": 1, "network_type": 100, "maintain_aspect_ratio": 1, "output_tensor_meta": 1,
            "output_blob_names": list(OUTPUT_NAMES), "network_mode": 2, "model_color_format": 0,
            "infer_dims": [input_channel, input_height, input_width], "input_tensor_from_meta": 1,
            "custom_lib_path": "/opt/nvidia/deepstream/deepstream/lib/libnvds_infercustomparser_tao.so",
        },
        "class_attrs_all": {"pre_cluster_threshold": 0.2, "topk": 20},
    }
    preprocess = {
        "property": {
            "tensor_name": "inputs", "processing_width": input_width, "processing_height": input_height,
            "network_input_shape": [1, input_channel, input_height, input_width], "network_color_format": 0,
            "network_input_order": 0, "tensor_data_type": 0, "maintain_aspect_ratio": 1, "symmetric_padding": 1,
            "scaling_pool_memory_type": 0, "scaling_pool_compute_hw": 0, "scaling_filter": 0,
            "scaling_buf_pool_size": 6, "tensor_buf_pool_size": 6, "target_unique_ids": 1, "process_on_frame": 1,
            "unique_id": 5, "enable": 1,
            "custom_lib_path": "/opt/nvidia/deepstream/deepstream/lib/gst-plugins/libcustom2d_preprocess.so",
            "custom_tensor_preparation_function": "CustomTensorPreparation",
        },
        "user_configs": {"pixel_normalization_factor": 0.007843137, "offsets": [127.5, 127.5, 127.5]},
        "group": [{"src_ids": -1, "custom_input_transformation_function": "CustomAsyncTransformation",
                   "process_on_roi": 0}],
    }
    infer_path, preprocess_path = root / "nvdsinfer_config.yaml", root / "nvdspreprocess_config.yaml"
    infer_path.write_text(_nvds_yaml(infer))
    preprocess_path.write_text(_nvds_yaml(preprocess))
    return infer_path, preprocess_path


# ---------------------------------------------------------------- the action

def output_path(cfg: ExperimentConfig) -> Path:
    """export.onnx_file, else <results_dir>/<checkpoint stem>.onnx (TAO: <checkpoint stem>.onnx)."""
    section = cfg.export
    onnx_file = given(section.onnx_file)
    if onnx_file:
        return Path(onnx_file)
    checkpoint = Path(given(section.checkpoint) or "model")
    results_dir = given(section.results_dir) or given(cfg.results_dir)
    return Path(results_dir or checkpoint.parent) / f"{checkpoint.stem}.onnx"


def export_onnx(cfg: ExperimentConfig, *, detector: Any = None, overwrite: bool = False) -> Path:
    """Export per `cfg.export`; `detector` (an HF GroundingDinoForObjectDetection) skips loading the checkpoint."""
    from gdino.errors import SpecError, UnsupportedError

    section = cfg.export
    if section.format != "onnx":
        raise UnsupportedError(f"export.format={section.format!r} is not supported", hint="use format: onnx")
    channels = int(section.input_channel)
    if channels != 3:
        raise UnsupportedError(f"export.input_channel={channels}: the network takes RGB input",
                               hint="use input_channel: 3")
    path = output_path(cfg)
    if path.exists() and not overwrite:
        raise SpecError(f"{path} already exists", key="export.onnx_file",
                        hint="choose another onnx_file or delete the old one")
    if detector is None:
        from trt.models import load_detector

        detector = load_detector(cfg, given(section.checkpoint))
    height, width = int(section.input_height), int(section.input_width)
    export_module(detector, path, height=height, width=width, batch_size=int(section.batch_size),
                  opset_version=int(section.opset_version), verbose=bool(section.verbose))
    if section.serialize_nvdsinfer:
        serialize_nvdsinfer(path.parent, path, input_channel=channels, input_height=height, input_width=width)
    log.info("ONNX file stored at %s", path)
    return path
