"""`evaluate` and `inference` actions: one entry, three backends.

The model named by the spec decides the path (TAO: `evaluate.trt_engine` / `inference.trt_engine` win
over `checkpoint`): a `.onnx` file -> ONNX Runtime, a `.engine`/`.trt`/`.plan` file -> TensorRT, anything
else is a training checkpoint -> the PyTorch path of the model package (gdino.engine.evaluate/inference).
The deployment backends share trt.processing (TAO deploy's pre/post-processing) and write what TAO
writes: `results.json` (evaluate), annotated images + KITTI labels (inference).
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, Literal

from gdino.errors import DatasetError, SpecError

log = logging.getLogger(__name__)
ModelKind = Literal["pytorch", "onnx", "tensorrt"]


def _field(section: Any, name: str, default: Any = None) -> Any:
    if section is None:
        return default
    value = section.get(name, default) if isinstance(section, dict) else getattr(section, name, default)
    return default if value in (None, "", "???") else value


def resolve_model(cfg: Any, action: str) -> tuple[ModelKind, str]:
    """(kind, path) of the model `action` should run: trt_engine first, then checkpoint."""
    from trt.runtime import ENGINE_SUFFIXES

    section = _field(cfg, action)
    for key in ("trt_engine", "checkpoint"):
        path = _field(section, key)
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


def build_detector(cfg: Any, kind: ModelKind, path: str, action: str):
    """The deployment Detector for an ONNX file or engine, checked against the requested input size."""
    from trt.runtime import Detector, load_tokenizer, open_backend

    section = _field(cfg, action)
    backend = open_backend(path, gpu_id=int(_field(section, "gpu_id", 0) or 0))
    want = (_field(section, "input_height"), _field(section, "input_width"))
    if all(want) and tuple(int(v) for v in want) != backend.input_hw:
        raise SpecError(f"{path} takes {backend.input_hw[0]}x{backend.input_hw[1]} images, the spec asks for "
                        f"{want[0]}x{want[1]}", key=f"{action}.input_height",
                        hint="leave input_height/input_width unset or re-export at that size")
    model = _field(cfg, "model")
    augmentation = _field(_field(cfg, "dataset"), "augmentation")
    return Detector(backend, load_tokenizer(_field(model, "text_encoder_type", "bert-base-uncased")),
                    num_select=int(_field(model, "num_select", 300)),
                    mean=tuple(_field(augmentation, "input_mean", (0.485, 0.456, 0.406))),
                    std=tuple(_field(augmentation, "input_std", (0.229, 0.224, 0.225))))


def _batch_size(cfg: Any, action: str) -> int:
    size = int(_field(_field(cfg, action), "batch_size", -1))
    return size if size > 0 else int(_field(_field(cfg, "dataset"), "batch_size", 1))


def _results_dir(cfg: Any, action: str) -> Path:
    folder = Path(_field(_field(cfg, action), "results_dir") or _field(cfg, "results_dir") or f"results/{action}")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# ------------------------------------------------------------------------------------------ evaluate

def evaluate(cfg: Any) -> dict[str, Any]:
    """Metrics of the configured model on dataset.test_data_sources (written to <results_dir>/results.json)."""
    kind, path = resolve_model(cfg, "evaluate")
    if kind == "pytorch":
        from gdino.engine.evaluate import evaluate as evaluate_checkpoint

        return evaluate_checkpoint(cfg)
    from trt.runtime import evaluate_coco

    source = _field(_field(cfg, "dataset"), "test_data_sources")
    if isinstance(source, (list, tuple)):
        source = source[0] if source else None
    if not _field(source, "json_file"):
        raise SpecError("no test data", key="dataset.test_data_sources.json_file",
                        hint="point it at a COCO annotations.json (and image_dir at its images)")
    detector = build_detector(cfg, kind, path, "evaluate")
    class_ids = _field(_field(cfg, "dataset"), "eval_class_ids")
    metrics = evaluate_coco(detector, _field(source, "json_file"), _field(source, "image_dir", ""),
                            batch_size=_batch_size(cfg, "evaluate"),
                            conf_threshold=float(_field(_field(cfg, "evaluate"), "conf_threshold", 0.0) or 0.0),
                            eval_class_ids=class_ids)
    metrics = {**metrics, "backend": kind, "model": path}
    (_results_dir(cfg, "evaluate") / "results.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    from hpo.cli import add_spec_arguments

    add_spec_arguments(parser)


def run_evaluate(args: argparse.Namespace) -> int:
    from gdino.spec import load_spec

    metrics = evaluate(load_spec(args.spec, list(args.overrides)))
    print(" ".join(f"{k}={metrics[k]:.4f}" for k in ("AP", "AP50", "AP75") if k in metrics))
    return 0


# ------------------------------------------------------------------------------------------ inference

def _kitti_line(phrase: str, box, score: float) -> str:
    x1, y1, x2, y2 = (float(v) for v in box)
    name = phrase.replace(" ", "_")  # KITTI fields are space-separated
    return f"{name} 0.00 0 0.00 {x1:.2f} {y1:.2f} {x2:.2f} {y2:.2f} 0.00 0.00 0.00 0.00 0.00 0.00 0.00 {score:.4f}"


def _colour(phrase: str, color_map: dict) -> str | tuple:
    if phrase in (color_map or {}):
        return color_map[phrase]
    palette = ("red", "lime", "blue", "yellow", "magenta", "cyan", "orange", "white")
    return palette[sum(map(ord, phrase)) % len(palette)]


def infer(cfg: Any) -> Path:
    """Detect the captioned phrases in dataset.infer_data_sources; returns the results dir."""
    kind, path = resolve_model(cfg, "inference")
    if kind == "pytorch":
        from gdino.engine.inference import infer as infer_checkpoint

        return infer_checkpoint(cfg)
    from PIL import ImageDraw

    from gdino.data import sources
    from gdino.data.build import infer_phrases
    from gdino.data.datasets import list_images, load_image

    section = _field(cfg, "inference")
    infer_src = _field(_field(cfg, "dataset"), "infer_data_sources")
    dirs = _field(infer_src, "image_dir", [])
    dirs = [dirs] if isinstance(dirs, str) else [d for d in dirs if d]
    phrases = infer_phrases(_field(infer_src, "captions", []))
    if not dirs or not phrases:
        raise DatasetError("inference needs images and captions",
                           hint="set dataset.infer_data_sources.image_dir and .captions")
    images = [p for d in dirs for p in list_images(sources.resolve_image_dir(d))]
    detector = build_detector(cfg, kind, path, "inference")
    threshold = float(_field(section, "conf_threshold", 0.5))
    width_px = int(_field(section, "outline_width", 3))
    color_map = _field(section, "color_map", {}) or {}
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


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    from hpo.cli import add_spec_arguments

    add_spec_arguments(parser)


def run_inference(args: argparse.Namespace) -> int:
    from gdino.spec import load_spec

    out = infer(load_spec(args.spec, list(args.overrides)))
    print(f"inference results in {out}")
    return 0
