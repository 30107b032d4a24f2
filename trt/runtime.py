"""Deployment backends with one interface, and the detector / COCO evaluation built on them.

    backend.infer(feeds) -> (pred_logits [B,Q,T], pred_boxes [B,Q,4])   feeds: TAO's six named arrays

- `OnnxRuntimeBackend`: an exported (or quantized) ONNX file on the CPU.
- `TensorRTBackend`: a serialized engine (needs the `tensorrt` package and a CUDA GPU; imported lazily).
- `TorchBackend`: the same TAO interface run in PyTorch (reference for parity tests and benchmarks).

`Detector` adds the shared pre/post-processing of trt.processing; `evaluate_coco` scores it on a COCO split.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from gdino.errors import CheckpointError, DependencyMissing
from trt.processing import IMAGENET_MEAN, IMAGENET_STD, Detections, encode_phrases, postprocess, preprocess_image

log = logging.getLogger(__name__)
ENGINE_SUFFIXES = (".engine", ".trt", ".plan")


class Backend(Protocol):
    name: str
    input_hw: tuple[int, int]
    max_text_len: int
    fixed_batch: int | None  # a static batch axis (inputs are padded to it), None when dynamic

    def infer(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]: ...


def _static(dim: Any) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


class OnnxRuntimeBackend:
    name = "onnxruntime"
    _NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(bool)": np.bool_,
                    "tensor(int32)": np.int32, "tensor(float16)": np.float16}

    def __init__(self, onnx_file: str | os.PathLike, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        if not Path(onnx_file).is_file():
            raise CheckpointError(f"ONNX file not found: {onnx_file}", hint="export one with `grounding_dino export`")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        inputs = {i.name: i for i in self.session.get_inputs()}
        image_shape = inputs["inputs"].shape
        self.input_hw = (int(image_shape[2]), int(image_shape[3]))
        self.max_text_len = int(inputs["input_ids"].shape[1])
        self.fixed_batch = _static(image_shape[0])
        self._types = {name: self._NUMPY_TYPES.get(i.type, None) for name, i in inputs.items()}

    def infer(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        cast = {k: (v.astype(self._types[k]) if self._types.get(k) else v) for k, v in feeds.items()}
        logits, boxes = self.session.run(["pred_logits", "pred_boxes"], cast)
        return logits, boxes


class TorchBackend:
    """TAO's graph interface executed by PyTorch: the reference the exported files are compared with."""

    name = "pytorch"

    def __init__(self, detector, *, height: int = 544, width: int = 960) -> None:
        from trt.export import tao_interface

        self.module = tao_interface(detector)
        self.input_hw = (height, width)
        self.max_text_len = int(detector.config.max_text_len)
        self.fixed_batch = None

    def infer(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        import torch

        from trt.export import INPUT_NAMES

        with torch.no_grad():
            logits, boxes = self.module(*(torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in INPUT_NAMES))
        return logits.numpy(), boxes.numpy()


def import_tensorrt():
    """The `tensorrt` module, or DependencyMissing saying what is missing and how to get it."""
    try:
        import tensorrt  # noqa: F401 - optional dependency
    except ImportError as exc:
        raise DependencyMissing(
            "TensorRT is not installed: the `tensorrt` Python package (with its CUDA libraries) is needed",
            hint="on a machine with an NVIDIA GPU: pip install tensorrt (NVIDIA's index must be reachable), or use "
                 "an NGC TensorRT/TAO container; on CPU-only machines evaluate the ONNX file with ONNX Runtime",
        ) from exc
    return tensorrt


def require_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        raise DependencyMissing("TensorRT needs a CUDA GPU and none is visible",
                                hint="run on a GPU machine (check nvidia-smi and CUDA_VISIBLE_DEVICES)")


class TensorRTBackend:
    """A serialized TensorRT engine (TensorRT >= 10 tensor API); buffers are torch CUDA tensors."""

    name = "tensorrt"

    def __init__(self, engine_file: str | os.PathLike, *, gpu_id: int = 0) -> None:
        trt = import_tensorrt()
        require_cuda()
        import torch

        if not Path(engine_file).is_file():
            raise CheckpointError(f"TensorRT engine not found: {engine_file}",
                                  hint="build one with `grounding_dino gen_trt_engine`")
        self._torch, self._device = torch, torch.device("cuda", gpu_id)
        self._logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(self._logger)
        self.engine = runtime.deserialize_cuda_engine(Path(engine_file).read_bytes())
        if self.engine is None:
            raise CheckpointError(f"{engine_file} is not a TensorRT engine for this TensorRT version / GPU",
                                  hint="rebuild it with gen_trt_engine on this machine")
        self.context = self.engine.create_execution_context()
        self._trt = trt
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self._inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        image_shape = tuple(self.engine.get_tensor_shape("inputs"))
        self.input_hw = (int(image_shape[2]), int(image_shape[3]))
        self.max_text_len = int(self.engine.get_tensor_shape("input_ids")[1])
        self.fixed_batch = _static(int(image_shape[0]))

    def _torch_dtype(self, name: str):
        trt, torch = self._trt, self._torch
        return {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32,
                trt.int64: torch.int64, trt.bool: torch.bool}[self.engine.get_tensor_dtype(name)]

    def infer(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        keep_alive = []
        for name in self._inputs:
            tensor = torch.from_numpy(np.ascontiguousarray(feeds[name])).to(self._device, self._torch_dtype(name))
            keep_alive.append(tensor)
            self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, tensor.data_ptr())
        outputs = {}
        for name in ("pred_logits", "pred_boxes"):
            shape = tuple(self.context.get_tensor_shape(name))
            outputs[name] = torch.empty(shape, dtype=self._torch_dtype(name), device=self._device)
            self.context.set_tensor_address(name, outputs[name].data_ptr())
        stream = torch.cuda.current_stream(self._device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        stream.synchronize()
        return (outputs["pred_logits"].float().cpu().numpy(), outputs["pred_boxes"].float().cpu().numpy())


def open_backend(model_file: str | os.PathLike, **kwargs: Any) -> Backend:
    """`.onnx` -> ONNX Runtime; `.engine` / `.trt` / `.plan` -> TensorRT."""
    suffix = Path(model_file).suffix.lower()
    if suffix == ".onnx":
        return OnnxRuntimeBackend(model_file, threads=kwargs.get("threads"))
    if suffix in ENGINE_SUFFIXES:
        return TensorRTBackend(model_file, gpu_id=kwargs.get("gpu_id", 0))
    raise CheckpointError(f"{model_file}: not an ONNX file or TensorRT engine",
                          hint=f"expected one of .onnx, {', '.join(ENGINE_SUFFIXES)}")


def load_tokenizer(text_encoder_type: str | None):
    """The model package's tokenizer of `model.text_encoder_type` (offline; TextEncoderUnavailable says how to fix)."""
    from gdino.model.text import load_tokenizer as model_tokenizer

    return model_tokenizer(text_encoder_type or "bert-base-uncased")


@dataclass
class Detector:
    """A backend plus TAO's shared pre/post-processing."""

    backend: Backend
    tokenizer: Any
    num_select: int = 300
    mean: Sequence[float] = IMAGENET_MEAN
    std: Sequence[float] = IMAGENET_STD
    _text_cache: dict = field(default_factory=dict, repr=False)

    def _text(self, phrases: tuple[str, ...]):
        if phrases not in self._text_cache:
            self._text_cache[phrases] = encode_phrases(self.tokenizer, phrases, self.backend.max_text_len)
        return self._text_cache[phrases]

    def detect(self, images: Sequence[Any], phrases: Sequence[str]) -> list[Detections]:
        """One forward pass over `images` (PIL), all captioned with `phrases`; labels index `phrases`."""
        height, width = self.backend.input_hw
        text, pos_map = self._text(tuple(phrases))
        n = len(images)
        batch = self.backend.fixed_batch or n
        if n > batch:
            return [d for i in range(0, n, batch) for d in self.detect(images[i:i + batch], phrases)]
        pixels = np.stack([preprocess_image(im, height, width, self.mean, self.std) for im in images])
        if batch > n:  # a static-batch model: pad with copies and drop their outputs
            pixels = np.concatenate([pixels, np.repeat(pixels[-1:], batch - n, axis=0)])
        feeds = {"inputs": pixels, **{k: np.repeat(v, batch, axis=0) for k, v in text.feeds().items()}}
        logits, boxes = self.backend.infer(feeds)
        sizes = [(im.height, im.width) for im in images]
        return postprocess(logits[:n], boxes[:n], [pos_map] * n, sizes, self.num_select)


def coco_results(detections: Detections, image_id: int, category_ids: Sequence[int],
                 conf_threshold: float = 0.0) -> list[dict]:
    out = []
    for score, label, (x1, y1, x2, y2) in zip(detections.scores, detections.labels, detections.boxes):
        if score >= conf_threshold:
            out.append({"image_id": int(image_id), "category_id": int(category_ids[int(label)]),
                        "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)], "score": float(score)})
    return out


def evaluate_coco(detector: Detector, json_file: str, image_dir: str, *, batch_size: int = 1,
                  conf_threshold: float = 0.0, eval_class_ids: Sequence[int] | None = None) -> dict[str, Any]:
    """COCO metrics (gdino.metrics.coco) of `detector` on one COCO source; captions = all category names."""
    from gdino.data import sources
    from gdino.data.annotations import load_coco, raise_on_errors
    from gdino.data.datasets import load_image
    from gdino.metrics.coco import evaluate_detections

    source = load_coco(json_file)
    raise_on_errors(source.issues, json_file)
    root = sources.resolve_image_dir(image_dir)
    results: list[dict] = []
    records = source.records
    for start in range(0, len(records), max(1, batch_size)):
        chunk = records[start:start + max(1, batch_size)]
        images = [load_image(Path(root) / r.file_name) for r in chunk]
        for record, dets in zip(chunk, detector.detect(images, source.category_names)):
            results += coco_results(dets, record.image_id, source.category_ids, conf_threshold)
    return evaluate_detections(source.coco, results, cat_ids=eval_class_ids)
