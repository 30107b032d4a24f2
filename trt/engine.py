"""`gen_trt_engine`: an exported ONNX file -> a serialized TensorRT engine (the `tensorrt` Python API).

As TAO (notes/tao.md §4.2): explicit batch; one optimisation profile over every input from
tensorrt.min/opt/max_batch_size (T and H x W come from the ONNX file); data_type FP32 or FP16, INT8 refused;
workspace_size in MB; a timing cache read and updated when `timing_cache` is set; `layers_precision`
entries "<layer name or prefix>:<fp32|fp16>". For FP16, LayerNorm, softmax and the text-image
(bi-)attention of the fusion layers stay in FP32 (notes/gdino.md §5: FP16 Grounding DINO engines lose
accuracy there) unless `keep_fp32_defaults=False`.

TensorRT needs NVIDIA's libraries and a GPU; it is imported only here and, when missing, the action fails
with DependencyMissing saying what to install.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from gdino.config import ExperimentConfig
from gdino.errors import CheckpointError, SpecError, UnsupportedError
from gdino.spec import given

log = logging.getLogger(__name__)

SUPPORTED_DATA_TYPES = ("FP32", "FP16")
SUPPORTED_LAYER_PRECISIONS = ("fp32", "fp16")
# ONNX node / TensorRT layer names (TorchScript export of HF modules) of the text-image attention and text enhancer
FP16_SENSITIVE_NAME_PARTS = ("fusion_layer", "text_enhancer_layer")


@dataclass(frozen=True)
class EngineSettings:
    onnx_file: Path
    engine_file: Path
    data_type: str = "FP32"
    workspace_mb: int = 8192
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 4
    batch_size: int = -1  # -1: the profile spans min..max; n > 0: a fixed batch n
    timing_cache: Path | None = None
    layers_precision: dict[str, str] = field(default_factory=dict)
    keep_fp32_defaults: bool = True
    verbose: bool = False


def parse_layers_precision(entries: Sequence[str]) -> dict[str, str]:
    """TAO's "<layer>:<precision>" list -> {layer: precision}; the name may itself contain ':'."""
    parsed = {}
    for entry in entries or ():
        name, sep, precision = str(entry).rpartition(":")
        if not sep or not name:
            raise SpecError(f"{entry!r} is not <layer>:<precision>", key="gen_trt_engine.tensorrt.layers_precision",
                            hint="e.g. '/detector/model/encoder:fp32'")
        precision = precision.strip().lower()
        if precision not in SUPPORTED_LAYER_PRECISIONS:
            raise UnsupportedError(f"layer precision {precision!r} for {name!r} is not supported",
                                   hint=f"use one of {', '.join(SUPPORTED_LAYER_PRECISIONS)}")
        parsed[name] = precision
    return parsed


def check_data_type(data_type: str) -> str:
    data_type = str(data_type).upper()
    if data_type == "INT8":
        raise UnsupportedError("INT8 TensorRT engines are not supported for Grounding DINO (as in TAO)",
                               hint="use gen_trt_engine.tensorrt.data_type FP16 or FP32")
    if data_type not in SUPPORTED_DATA_TYPES:
        raise SpecError(f"unknown data_type {data_type!r}", key="gen_trt_engine.tensorrt.data_type",
                        hint=f"one of {', '.join(SUPPORTED_DATA_TYPES)}")
    return data_type


def settings_from_config(cfg: ExperimentConfig) -> EngineSettings:
    section = cfg.gen_trt_engine
    trt_cfg = section.tensorrt
    onnx_file = given(section.onnx_file)
    if not onnx_file:
        raise SpecError("no ONNX file given", key="gen_trt_engine.onnx_file", hint="export one first (export action)")
    engine_file = given(section.trt_engine) or str(Path(onnx_file).with_suffix(".engine"))
    min_b, opt_b, max_b = int(trt_cfg.min_batch_size), int(trt_cfg.opt_batch_size), int(trt_cfg.max_batch_size)
    if not 1 <= min_b <= opt_b <= max_b:
        raise SpecError(f"need 1 <= min_batch_size ({min_b}) <= opt_batch_size ({opt_b}) <= max_batch_size ({max_b})",
                        key="gen_trt_engine.tensorrt")
    cache = given(section.timing_cache)
    return EngineSettings(
        onnx_file=Path(onnx_file), engine_file=Path(engine_file), data_type=check_data_type(trt_cfg.data_type),
        workspace_mb=int(trt_cfg.workspace_size), min_batch=min_b, opt_batch=opt_b, max_batch=max_b,
        batch_size=int(section.batch_size), timing_cache=Path(cache) if cache else None,
        layers_precision=parse_layers_precision(trt_cfg.layers_precision), verbose=bool(section.verbose))


def profile_shapes(shape: Sequence[int], settings: EngineSettings) -> tuple[tuple[int, ...], ...]:
    """(min, opt, max) shapes of one input whose axis 0 is the batch (-1 when dynamic in the ONNX file)."""
    rest = tuple(int(d) for d in shape[1:])
    if any(d < 0 for d in rest):
        raise UnsupportedError(f"only the batch axis may be dynamic, got shape {tuple(shape)}",
                               hint="export with fixed input_height/input_width (TAO's interface)")
    if shape[0] >= 0:
        return ((shape[0], *rest),) * 3
    if settings.batch_size > 0:
        return ((settings.batch_size, *rest),) * 3
    return tuple((b, *rest) for b in (settings.min_batch, settings.opt_batch, settings.max_batch))


def wants_fp32(layer_name: str, layer_type_name: str, settings: EngineSettings) -> bool | None:
    """True: pin to FP32; False: FP16 asked for explicitly; None: leave it to TensorRT."""
    for pattern, precision in settings.layers_precision.items():
        if layer_name.startswith(pattern) or pattern in layer_name:
            return precision == "fp32"
    if settings.data_type == "FP16" and settings.keep_fp32_defaults:
        if layer_type_name in ("NORMALIZATION", "SOFTMAX"):
            return True
        if any(part in layer_name for part in FP16_SENSITIVE_NAME_PARTS):
            return True
    return None


def build_engine(settings: EngineSettings) -> Path:
    """Parse, configure and build; writes the engine (and the updated timing cache). Needs TensorRT + a GPU."""
    from trt.runtime import import_tensorrt, require_cuda

    check_data_type(settings.data_type)
    if not settings.onnx_file.is_file():
        raise CheckpointError(f"ONNX file not found: {settings.onnx_file}", hint="run the export action first")
    trt = import_tensorrt()
    require_cuda()
    logger = trt.Logger(trt.Logger.VERBOSE if settings.verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(_explicit_batch_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(settings.onnx_file)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise CheckpointError(f"TensorRT cannot parse {settings.onnx_file}: {errors}",
                              hint="re-export with `grounding_dino export` (opset 17)")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_mb * (1 << 20))
    _add_profile(trt, builder, network, config, settings)
    _set_precision(trt, network, config, settings)
    cache = _load_timing_cache(config, settings)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT failed to build the engine (see the TensorRT log above)")
    settings.engine_file.parent.mkdir(parents=True, exist_ok=True)
    settings.engine_file.write_bytes(bytes(serialized))
    if cache is not None and settings.timing_cache is not None:
        settings.timing_cache.parent.mkdir(parents=True, exist_ok=True)
        settings.timing_cache.write_bytes(bytes(cache.serialize()))
    log.info("TensorRT %s engine written to %s", settings.data_type, settings.engine_file)
    return settings.engine_file


def _explicit_batch_flags(trt) -> int:
    flag = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    return 0 if flag is None else 1 << int(flag)  # TensorRT >= 10: explicit batch is the only mode


def _add_profile(trt, builder, network, config, settings: EngineSettings) -> None:
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        low, opt, high = profile_shapes(tuple(tensor.shape), settings)
        profile.set_shape(tensor.name, low, opt, high)
    config.add_optimization_profile(profile)


def _set_precision(trt, network, config, settings: EngineSettings) -> None:
    if settings.data_type == "FP16":
        if not hasattr(trt.BuilderFlag, "FP16"):
            raise UnsupportedError("this TensorRT has no weakly-typed FP16 mode",
                                   hint="use data_type FP32, or a TensorRT 10 release")
        config.set_flag(trt.BuilderFlag.FP16)
    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        choice = wants_fp32(layer.name, str(layer.type).split(".")[-1], settings)
        float_outputs = [k for k in range(layer.num_outputs)
                         if layer.get_output(k).dtype in (trt.float32, trt.float16)]
        if choice is None or not float_outputs:  # shape / index arithmetic has no precision to choose
            continue
        precision = trt.float32 if choice else trt.float16
        layer.precision = precision
        for k in float_outputs:
            layer.set_output_type(k, precision)
        pinned += 1
    if pinned:
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        log.info("%d layer(s) have a fixed precision", pinned)


def _load_timing_cache(config, settings: EngineSettings):
    if settings.timing_cache is None:
        return None
    blob = settings.timing_cache.read_bytes() if settings.timing_cache.is_file() else b""
    cache = config.create_timing_cache(blob)
    config.set_timing_cache(cache, ignore_mismatch=False)
    return cache
