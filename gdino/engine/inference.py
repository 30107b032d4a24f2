"""`infer(cfg)`: images + captions -> annotated images, a detections JSON and TAO's KITTI label files.

Writes into inference.results_dir (or results_dir/inference):
  images_annotated/<name>   boxes with score >= inference.conf_threshold, coloured by inference.color_map
  labels/<stem>.txt         KITTI lines: `phrase 0.00 0 0.00 x1 y1 x2 y2 0 0 0 0 0 0 0 score`
  inference_results.json    [{file_name, detections: [{phrase, score, bbox xyxy}]}]
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gdino.config import ExperimentConfig

PALETTE = ("red", "lime", "blue", "yellow", "magenta", "cyan", "orange", "white")


def kitti_line(phrase: str, box: list[float], score: float) -> str:
    x1, y1, x2, y2 = box
    name = phrase.replace(" ", "_")  # KITTI fields are space-separated
    return f"{name} 0.00 0 0.00 {x1:.2f} {y1:.2f} {x2:.2f} {y2:.2f} 0.00 0.00 0.00 0.00 0.00 0.00 0.00 {score:.4f}"


def colour_for(phrase: str, index: int, color_map: dict | None) -> Any:
    if color_map and phrase in color_map:
        return color_map[phrase]
    return PALETTE[index % len(PALETTE)]


def infer(cfg: ExperimentConfig) -> Path:
    from PIL import ImageDraw

    from gdino.data import build_dataset
    from gdino.data.datasets import load_image
    from gdino.engine.predict import checkpoint_of, loader_for, predict
    from gdino.model.text import load_tokenizer
    from gdino.model.weights import load_network

    section = cfg.inference
    net = load_network(cfg, checkpoint_of(cfg, "inference"))
    dataset = build_dataset(cfg, "infer")
    tokenizer = load_tokenizer(cfg.model.text_encoder_type)
    folder = Path(section.results_dir or cfg.results_dir or "results/inference")
    (folder / "images_annotated").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    threshold = float(section.conf_threshold)
    records = []
    for target, result in predict(net, tokenizer, loader_for(cfg, dataset, "inference"), cfg.model.num_select):
        path = Path(target["file_name"])
        phrases = target["phrases"]
        kept = [(phrases[l], s, b) for s, l, b in zip(result["scores"].tolist(), result["labels"].tolist(),
                                                      result["boxes"].tolist()) if s >= threshold]
        image = load_image(path)
        draw = ImageDraw.Draw(image)
        for phrase, score, box in kept:
            colour = colour_for(phrase, phrases.index(phrase), section.color_map)
            draw.rectangle(box, outline=colour, width=int(section.outline_width))
            draw.text((box[0] + 2, box[1] + 1), f"{phrase} {score:.2f}", fill=colour)
        image.save(folder / "images_annotated" / path.name)
        (folder / "labels" / f"{path.stem}.txt").write_text("".join(kitti_line(p, b, s) + "\n" for p, s, b in kept))
        records.append({"file_name": str(path), "detections": [
            {"phrase": p, "score": round(s, 5), "bbox": [round(v, 2) for v in b]} for p, s, b in kept]})
    (folder / "inference_results.json").write_text(json.dumps(records, indent=2))
    return folder
