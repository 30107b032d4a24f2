"""`evaluate` and `inference` actions: one entry, three backends.

The model named by the spec decides the path (TAO: `evaluate.trt_engine` / `inference.trt_engine` win
over `checkpoint`): a `.onnx` file -> ONNX Runtime, a `.engine`/`.trt`/`.plan` file -> TensorRT, anything
else is a training checkpoint -> the PyTorch path of the model package (gdino.engine.evaluate/inference).
The deployment backends share trt.processing (TAO deploy's pre/post-processing) and write what TAO
writes: `results.json` (evaluate), annotated images + KITTI labels (inference).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gdino.config import EvaluateConfig, ExperimentConfig, InferenceConfig
from gdino.errors import DatasetError, SpecError
from gdino.spec import given

if TYPE_CHECKING:
    from trt.runtime import Detector

log = logging.getLogger(__name__)
ModelKind = Literal["pytorch", "onnx", "tensorrt"]
Action = Literal["evaluate", "inference"]


def _section(cfg: ExperimentConfig, action: Action) -> EvaluateConfig | InferenceConfig:
    return cfg.evaluate if action == "evaluate" else cfg.inference


def resolve_model(cfg: ExperimentConfig, action: Action) -> tuple[ModelKind, str]:
    """(kind, path) of the model `action` should run: trt_engine first, then checkpoint."""
    from trt.runtime import ENGINE_SUFFIXES

    section = _section(cfg, action)
    for key in ("trt_engine", "checkpoint"):
        path = given(getattr(section, key))
        if not path:
            continue
        suffix = Path(str(path)).suffix.lower()
        if suffix == ".onnx":
            return "onnx", str(path)
        if suffix in ENGINE_SUFFIXES or key == "trt_engine":
            return "tensorrt", str(path)
        return "pytorch", str(path)
    raise SpecError("no model given", key=f"{action}.checkpoint",
                    hint=f"set {action}.checkpoint (a checkpoint or .onnx file) or {action}.trt_engine")


def build_detector(cfg: ExperimentConfig, kind: ModelKind, path: str, action: Action) -> Detector:
    """The deployment Detector for an ONNX file or engine, checked against the requested input size."""
    from trt.runtime import Detector, load_tokenizer, open_backend

    section = _section(cfg, action)
    gpu_ids = section.gpu_ids
    backend = open_backend(path, gpu_id=int(gpu_ids[0]) if gpu_ids else 0)
    # only a size the spec sets is checked: inference's TAO defaults (544x960) are not a request
    asked = {"input_height", "input_width"} & section.model_fields_set
    want = (section.input_height, section.input_width)
    if asked and want[0] and want[1] and (int(want[0]), int(want[1])) != backend.input_hw:
        raise SpecError(f"{path} takes {backend.input_hw[0]}x{backend.input_hw[1]} images, the spec asks for "
                        f"{want[0]}x{want[1]}", key=f"{action}.input_height",
                        hint="leave input_height/input_width unset or re-export at that size")
    augmentation = cfg.dataset.augmentation
    return Detector(backend, load_tokenizer(cfg.model.text_encoder_type), num_select=int(cfg.model.num_select),
                    mean=tuple(augmentation.input_mean), std=tuple(augmentation.input_std))


def _batch_size(cfg: ExperimentConfig, action: Action) -> int:
    size = int(_section(cfg, action).batch_size)
    return size if size > 0 else int(cfg.dataset.batch_size)


def _results_dir(cfg: ExperimentConfig, action: Action) -> Path:
    folder = Path(given(_section(cfg, action).results_dir) or given(cfg.results_dir) or f"results/{action}")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# ------------------------------------------------------------------------------------------ evaluate

def evaluate(cfg: ExperimentConfig) -> dict[str, Any]:
    """Metrics of the configured model on dataset.test_data_sources (written to <results_dir>/results.json)."""
    kind, path = resolve_model(cfg, "evaluate")
    if kind == "pytorch":
        from gdino.engine.evaluate import evaluate as evaluate_checkpoint

        return evaluate_checkpoint(cfg)
    from trt.runtime import evaluate_coco

    source = cfg.dataset.test_data_sources
    json_file = given(source.json_file)
    if not json_file:
        raise SpecError("no test data", key="dataset.test_data_sources.json_file",
                        hint="point it at a COCO annotations.json (and image_dir at its images)")
    detector = build_detector(cfg, kind, path, "evaluate")
    metrics = evaluate_coco(detector, json_file, given(source.image_dir) or "",
                            batch_size=_batch_size(cfg, "evaluate"),
                            conf_threshold=float(cfg.evaluate.conf_threshold or 0.0),
                            eval_class_ids=cfg.dataset.eval_class_ids)
    metrics = {**metrics, "backend": kind, "model": path}
    (_results_dir(cfg, "evaluate") / "results.json").write_text(json.dumps(metrics, indent=2))
    return metrics


# ------------------------------------------------------------------------------------------ inference

def _kitti_line(phrase: str, box, score: float) -> str:
    x1, y1, x2, y2 = (float(v) for v in box)
    name = phrase.replace(" ", "_")  # KITTI fields are space-separated
    return f"{name} 0.00 0 0.00 {x1:.2f} {y1:.2f} {x2:.2f} {y2:.2f} 0.00 0.00 0.00 0.00 0.00 0.00 0.00 {score:.4f}"


def _colour(phrase: str, color_map: dict[str, str]) -> str | tuple:
    if phrase in (color_map or {}):
        return color_map[phrase]
    palette = ("red", "lime", "blue", "yellow", "magenta", "cyan", "orange", "white")
    return palette[sum(map(ord, phrase)) % len(palette)]


def infer(cfg: ExperimentConfig) -> Path:
    """Detect the captioned phrases in dataset.infer_data_sources; returns the results dir."""
    kind, path = resolve_model(cfg, "inference")
    if kind == "pytorch":
        from gdino.engine.inference import infer as infer_checkpoint

        return infer_checkpoint(cfg)
    from PIL import ImageDraw

    from gdino.data import sources
    from gdino.data.build import infer_phrases
    from gdino.data.datasets import list_images, load_image

    section = cfg.inference
    infer_src = cfg.dataset.infer_data_sources
    dirs = [d for d in infer_src.image_dir if given(d)]
    phrases = infer_phrases(infer_src.captions)
    if not dirs or not phrases:
        raise DatasetError("inference needs images and captions",
                           hint="set dataset.infer_data_sources.image_dir and .captions")
    images = [p for d in dirs for p in list_images(sources.resolve_image_dir(d))]
    detector = build_detector(cfg, kind, path, "inference")
    threshold = float(section.conf_threshold)
    width_px = int(section.outline_width)
    color_map = section.color_map or {}
    out = _results_dir(cfg, "inference")
    (out / "images_annotated").mkdir(exist_ok=True)
    (out / "labels").mkdir(exist_ok=True)
    batch = _batch_size(cfg, "inference")
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        pictures = [load_image(p) for p in chunk]
        for image_path, picture, dets in zip(chunk, pictures, detector.detect(pictures, phrases)):
            keep = dets.scores >= threshold
            draw = ImageDraw.Draw(picture)
            lines = []
            for score, label, box in zip(dets.scores[keep], dets.labels[keep], dets.boxes[keep]):
                phrase = phrases[int(label)]
                draw.rectangle([float(v) for v in box], outline=_colour(phrase, color_map), width=width_px)
                draw.text((float(box[0]) + 2, float(box[1]) + 2), f"{phrase} {score:.2f}",
                          fill=_colour(phrase, color_map))
                lines.append(_kitti_line(phrase, box, float(score)))
            picture.save(out / "images_annotated" / image_path.name)
            (out / "labels" / f"{image_path.stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    log.info("inference results in %s", out)
    return out
