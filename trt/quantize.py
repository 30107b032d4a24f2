"""`quantize` with TAO's config: what runs on this stack, the rest refused by name.

Supported (backend, mode) -> algorithms:
- modelopt.onnx, static_ptq -> minmax | max | entropy: ONNX Runtime static QDQ quantization (int8 weights and
  activations) of the exported ONNX, calibrated on dataset.quant_calibration_data_sources;
- modelopt.onnx, weight_only_ptq -> minmax | max | rtn_dq: ONNX Runtime dynamic quantization (int8 weights,
  activations quantized at run time, no calibration);
- torchao, weight_only_ptq (TAO: torchao ignores `algorithm`): torchao int8 weight-only quantization of the
  checkpoint's Linear layers (a PyTorch model; saved with torch.save).
`skip_names` are substrings of ONNX node names / module names kept in float; `layers` entries
({"module_name": <substring>, "weights": {"dtype": "int8"}, ...}) restrict quantization to those modules.
Afterwards the float and the quantized model are evaluated on dataset.val_data_sources and the change is
written to <results_dir>/quantize_report.json.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from gdino.config import ExperimentConfig
from gdino.errors import DatasetError, SpecError, UnsupportedError
from gdino.spec import given

log = logging.getLogger(__name__)

SUPPORTED: dict[tuple[str, str], tuple[str, ...]] = {
    ("modelopt.onnx", "static_ptq"): ("minmax", "max", "entropy"),
    ("modelopt.onnx", "weight_only_ptq"): ("minmax", "max", "rtn_dq"),
    ("torchao", "weight_only_ptq"): ("minmax", "max", "entropy", "awq_clip", "awq_lite", "awq_full", "rtn_dq"),
}
DEFAULT_CALIBRATION_IMAGES = 32


@dataclass(frozen=True)
class QuantizeSettings:
    backend: str = "torchao"
    mode: str = "weight_only_ptq"
    algorithm: str = "minmax"
    model_path: str = ""
    results_dir: str = "results/quantize"
    layers: tuple[str, ...] = ()      # module-name substrings to quantize (empty: all supported)
    skip_names: tuple[str, ...] = ()  # module-name substrings kept in float
    backend_kwargs: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: ExperimentConfig) -> "QuantizeSettings":
        section = cfg.quantize
        return cls(backend=section.backend, mode=section.mode, algorithm=section.algorithm,
                   model_path=given(section.model_path) or "",
                   results_dir=given(section.results_dir) or given(cfg.results_dir) or "results/quantize",
                   layers=tuple(_layer_names(section.layers)), skip_names=tuple(section.skip_names),
                   backend_kwargs=dict(section.backend_kwargs))


def _layer_names(layers: Sequence[Any]) -> Iterator[str]:
    """Module names of quantize.layers: TAO's entries are strings or {module_name, weights: {dtype},
    activations: {dtype}} mappings (free-form in the schema, so read as YAML gives them)."""
    for entry in layers:
        if isinstance(entry, str):
            yield entry
            continue
        name = entry.get("module_name") if isinstance(entry, dict) else None
        if not name:
            raise SpecError(f"layer entry {entry!r} has no module_name", key="quantize.layers")
        for part in ("weights", "activations"):
            dtype = str((entry.get(part) or {}).get("dtype") or "int8").lower()
            if dtype not in ("int8", "native"):
                raise UnsupportedError(f"quantize.layers: dtype {dtype!r} for {name!r} is not supported here",
                                       hint="int8 is the only quantized dtype on this stack")
        yield str(name)


def check_supported(settings: QuantizeSettings) -> None:
    algorithms = SUPPORTED.get((settings.backend, settings.mode))
    combos = "; ".join(f"backend={b} mode={m} algorithm in {{{', '.join(a)}}}" for (b, m), a in SUPPORTED.items())
    if algorithms is None or settings.algorithm not in algorithms:
        raise UnsupportedError(
            f"quantize backend={settings.backend} mode={settings.mode} algorithm={settings.algorithm} is not supported",
            hint=f"supported: {combos}")


def _selected(name: str, settings: QuantizeSettings) -> bool:
    if any(skip in name for skip in settings.skip_names):
        return False
    return not settings.layers or any(layer in name for layer in settings.layers)


# ------------------------------------------------------------------------------------------ ONNX Runtime

class CalibrationFeeds:
    """ONNX Runtime CalibrationDataReader: TAO's six inputs for each calibration image (batch 1)."""

    def __init__(self, onnx_file: str, images: Sequence[Path], phrases: Sequence[str], tokenizer,
                 mean=None, std=None) -> None:
        from trt.processing import IMAGENET_MEAN, IMAGENET_STD, encode_phrases
        from trt.runtime import OnnxRuntimeBackend

        backend = OnnxRuntimeBackend(onnx_file)
        self.input_hw, self.batch = backend.input_hw, backend.fixed_batch or 1
        self.text = encode_phrases(tokenizer, phrases, backend.max_text_len)[0].feeds()
        self.images = list(images)
        self.mean, self.std = mean or IMAGENET_MEAN, std or IMAGENET_STD
        self._iter: Iterator[dict] | None = None

    def _feeds(self) -> Iterator[dict]:
        from gdino.data.datasets import load_image
        from trt.processing import preprocess_image

        for path in self.images:
            pixels = preprocess_image(load_image(path), *self.input_hw, self.mean, self.std)[None]
            yield {"inputs": np.repeat(pixels, self.batch, 0),
                   **{k: np.repeat(v, self.batch, 0) for k, v in self.text.items()}}

    def get_next(self) -> dict | None:
        if self._iter is None:
            self._iter = self._feeds()
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = None


def _onnx_node_names(onnx_file: str, settings: QuantizeSettings) -> tuple[list[str] | None, list[str]]:
    import onnx

    names = [n.name for n in onnx.load(onnx_file, load_external_data=False).graph.node]
    excluded = [n for n in names if any(skip in n for skip in settings.skip_names)]
    chosen = [n for n in names if _selected(n, settings)] if settings.layers else None
    return chosen, excluded


def quantize_onnx(settings: QuantizeSettings, out_file: Path, calibration: CalibrationFeeds | None = None) -> Path:
    """ONNX Runtime quantization of settings.model_path (static QDQ with `calibration`, else dynamic)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    chosen, excluded = _onnx_node_names(settings.model_path, settings)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    if settings.mode == "weight_only_ptq":
        quantize_dynamic(settings.model_path, str(out_file), weight_type=QuantType.QInt8,
                         nodes_to_quantize=chosen, nodes_to_exclude=excluded)
        return out_file
    if calibration is None:
        raise DatasetError("static_ptq needs calibration data",
                           hint="set dataset.quant_calibration_data_sources.image_dir")
    method = CalibrationMethod.Entropy if settings.algorithm == "entropy" else CalibrationMethod.MinMax
    quantize_static(settings.model_path, str(out_file), calibration, quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, calibrate_method=method,
                    nodes_to_quantize=chosen, nodes_to_exclude=excluded, per_channel=False,
                    extra_options={"ActivationSymmetric": settings.algorithm == "max", "WeightSymmetric": True})
    return out_file


# ------------------------------------------------------------------------------------------ torchao

def quantize_torchao(detector, settings: QuantizeSettings):
    """int8 weight-only quantization of the detector's Linear layers, in place (torchao)."""
    import torch

    try:
        from torchao.quantization import Int8WeightOnlyConfig, quantize_
    except ImportError as exc:
        from gdino.errors import DependencyMissing

        raise DependencyMissing("torchao is not installed", hint="pip install torchao") from exc

    def wanted(module: torch.nn.Module, name: str) -> bool:
        return isinstance(module, torch.nn.Linear) and _selected(name, settings)

    quantize_(detector, Int8WeightOnlyConfig(), filter_fn=wanted)
    return detector


# ------------------------------------------------------------------------------------------ the action

def _calibration_source(cfg: ExperimentConfig) -> tuple[list[Path], list[str]]:
    """Images of dataset.quant_calibration_data_sources and the phrases to caption them with."""
    from gdino.data import sources
    from gdino.data.annotations import load_coco
    from gdino.data.datasets import list_images

    src = cfg.dataset.quant_calibration_data_sources
    image_dir = given(src.image_dir)
    if not image_dir:
        raise DatasetError("static_ptq needs calibration images",
                           hint="set dataset.quant_calibration_data_sources.image_dir")
    images = list_images(sources.resolve_image_dir(image_dir))
    json_file = given(src.json_file) or ""
    if json_file.endswith(".json"):
        phrases = load_coco(json_file).category_names
    else:  # an ODVG file or images only: caption with the val categories
        phrases = load_coco(_val_json(cfg)).category_names
    if not images:
        raise DatasetError(f"no images in {image_dir}")
    return images, phrases


def _val_json(cfg: ExperimentConfig) -> str:
    json_file = given(cfg.dataset.val_data_sources.json_file)
    if not json_file:
        raise DatasetError("quantize reports the accuracy change on dataset.val_data_sources, which is not set",
                           hint="set dataset.val_data_sources.image_dir and .json_file")
    return json_file


def _detector(cfg: ExperimentConfig, backend: Any) -> Any:
    from trt.runtime import Detector, load_tokenizer

    return Detector(backend, load_tokenizer(cfg.model.text_encoder_type), num_select=int(cfg.model.num_select))


def _score(cfg: ExperimentConfig, backend: Any) -> dict[str, float]:
    from trt.runtime import evaluate_coco

    metrics = evaluate_coco(_detector(cfg, backend), _val_json(cfg),
                            given(cfg.dataset.val_data_sources.image_dir) or "", batch_size=1)
    return {k: float(metrics[k]) for k in ("AP", "AP50", "AP75")}


def quantize(cfg: ExperimentConfig, *, detector: Any = None) -> dict[str, Any]:
    """Quantize per cfg.quantize, evaluate before/after on the val split, write and return the report."""
    from trt.runtime import OnnxRuntimeBackend, TorchBackend, load_tokenizer

    settings = QuantizeSettings.from_config(cfg)
    check_supported(settings)
    out_dir = Path(settings.results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(settings.model_path).stem or "model"
    if settings.backend == "modelopt.onnx":
        if not settings.model_path.endswith(".onnx"):
            raise SpecError(f"backend modelopt.onnx quantizes an ONNX file, got {settings.model_path!r}",
                            key="quantize.model_path", hint="export the checkpoint first (export action)")
        calibration = None
        if settings.mode == "static_ptq":
            images, phrases = _calibration_source(cfg)
            limit = int(settings.backend_kwargs.get("calibration_images", DEFAULT_CALIBRATION_IMAGES))
            calibration = CalibrationFeeds(settings.model_path, images[:limit], phrases,
                                           load_tokenizer(cfg.model.text_encoder_type))
        kind = "int8_qdq" if settings.mode == "static_ptq" else "int8_dynamic"
        output = quantize_onnx(settings, out_dir / f"{stem}_{kind}.onnx", calibration)
        before = _score(cfg, OnnxRuntimeBackend(settings.model_path))
        after = _score(cfg, OnnxRuntimeBackend(str(output)))
    else:
        import torch

        from trt.models import load_detector

        net = detector if detector is not None else load_detector(cfg, settings.model_path)
        hw = dict(height=int(cfg.export.input_height), width=int(cfg.export.input_width))
        before = _score(cfg, TorchBackend(net, **hw))
        quantize_torchao(net, settings)
        after = _score(cfg, TorchBackend(net, **hw))
        output = out_dir / f"{stem}_torchao_int8wo.pth"
        torch.save(net.state_dict(), output)
    report = {"backend": settings.backend, "mode": settings.mode, "algorithm": settings.algorithm,
              "model_path": settings.model_path, "quantized_model": str(output), "float": before, "quantized": after,
              "change": {k: after[k] - before[k] for k in before}}
    (out_dir / "quantize_report.json").write_text(json.dumps(report, indent=2))
    log.info("quantized model %s: val AP50 %.4f -> %.4f", output, before["AP50"], after["AP50"])
    return report
