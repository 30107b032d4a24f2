"""A small, learnable open-vocabulary dataset in TAO's exact layout: coloured shapes on textured ground.

    <dir>/train/images.tar.gz, annotations_odvg.jsonl, annotations_odvg_labelmap.json   (ODVG, OD mode)
    <dir>/eval/images.tar.gz,  annotations.json (COCO, ids 0..N-1), label_map.txt
    <dir>/infer/images/*.jpg,  captions.txt                                             (raw inference)

Class names are attribute + noun ("red circle", "blue square"). The first classes have distinct
colours so a tiny model learns them in minutes on a CPU, while the text still has to bind colour and
shape tokens. Everything is seeded and the archives are byte-reproducible (fixed tar/gzip metadata), so
the content-addressed extraction cache is reused across regenerations with the same arguments.
"""
from __future__ import annotations

import gzip
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 80, 220), "yellow": (235, 215, 40),
    "purple": (150, 60, 190), "orange": (245, 140, 30), "white": (245, 245, 245), "cyan": (40, 210, 220),
}
SHAPES = ("circle", "square", "triangle", "diamond")
MAX_OVERLAP_BETWEEN_OBJECTS = 0.1  # intersection / smaller area: occlusion stays light


def class_names(num_classes: int) -> list[str]:
    """Distinct colours first (cycling the shapes), then the remaining colour x shape combinations."""
    colours = list(COLOURS)
    first = [f"{c} {SHAPES[i % len(SHAPES)]}" for i, c in enumerate(colours)]
    rest = [f"{c} {s}" for c in colours for s in SHAPES if f"{c} {s}" not in first]
    names = (first + rest)[:num_classes]
    if len(names) < num_classes:
        raise ValueError(f"at most {len(first) + len(rest)} classes are available")
    return names


@dataclass(frozen=True)
class GenerateOptions:
    out_dir: Path
    num_train: int = 400
    num_val: int = 100
    num_infer: int = 8
    image_size: int = 160
    num_classes: int = 6
    max_objects: int = 4
    object_size: tuple[float, float] = (0.18, 0.42)  # object side as a fraction of the image side
    seed: int = 0


@dataclass
class Drawn:
    image: Image.Image
    boxes: list[list[float]]  # xyxy px
    labels: list[int]


def textured_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Muted gradient + noise + faint stripes: texture without colours that compete with the shapes."""
    base = rng.uniform(70, 170, size=3)
    tint = rng.uniform(-25, 25, size=3)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy) / max(height, width)
    stripes = 10 * np.sin(2 * np.pi * (xx * np.cos(angle + 1) + yy * np.sin(angle + 1)) / rng.uniform(6, 20))
    noise = rng.normal(0, 12, size=(height, width, 1))
    img = base + ramp[..., None] * tint + stripes[..., None] + noise
    grey = img.mean(axis=-1, keepdims=True)
    img = grey + 0.35 * (img - grey)  # desaturate
    return np.clip(img, 0, 255).astype(np.uint8)


def _overlap(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / smaller if smaller > 0 else 0.0


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: list[float], colour: tuple[int, int, int]) -> None:
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    outline = tuple(int(c * 0.6) for c in colour)
    if shape == "circle":
        draw.ellipse(box, fill=colour, outline=outline, width=2)
    elif shape == "square":
        draw.rectangle(box, fill=colour, outline=outline, width=2)
    elif shape == "triangle":
        draw.polygon([(cx, y1), (x2, y2), (x1, y2)], fill=colour, outline=outline)
    else:
        draw.polygon([(cx, y1), (x2, cy), (cx, y2), (x1, cy)], fill=colour, outline=outline)


def draw_image(rng: np.random.Generator, names: list[str], size: int, max_objects: int,
               object_size: tuple[float, float] = (0.18, 0.42)) -> Drawn:
    height = width = size
    image = Image.fromarray(textured_background(rng, height, width))
    draw = ImageDraw.Draw(image)
    boxes: list[list[float]] = []
    labels: list[int] = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _attempt in range(20):
            side = float(rng.uniform(*object_size) * size)
            aspect = float(rng.uniform(0.85, 1.15))
            w, h = side * aspect, side / aspect
            x1, y1 = float(rng.uniform(0, width - w)), float(rng.uniform(0, height - h))
            box = [round(x1, 2), round(y1, 2), round(x1 + w, 2), round(y1 + h, 2)]
            if all(_overlap(box, other) < MAX_OVERLAP_BETWEEN_OBJECTS for other in boxes):
                label = int(rng.integers(len(names)))
                colour_name, shape = names[label].split(" ", 1)
                jitter = rng.integers(-20, 21, size=3)
                red, green, blue = (int(np.clip(c + j, 0, 255)) for c, j in zip(COLOURS[colour_name], jitter))
                colour = (red, green, blue)
                draw_shape(draw, shape, box, colour)
                boxes.append(box)
                labels.append(label)
                break
    return Drawn(image, boxes, labels)


def _jpeg_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def write_tar_gz(path: Path, files: dict[str, bytes]) -> None:
    """Byte-reproducible archive: sorted names, fixed mtime/owner, gzip header without a timestamp."""
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=6) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in sorted(files):
                info = tarfile.TarInfo(name)
                info.size = len(files[name])
                info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = 0, 0o644, 0, 0, "", ""
                tar.addfile(info, io.BytesIO(files[name]))


def generate(options: GenerateOptions) -> dict[str, Path]:
    """Write the dataset; returns the paths a spec needs (train/eval json, label map, archives, infer)."""
    names = class_names(options.num_classes)
    seeds = np.random.SeedSequence(options.seed).spawn(3)
    out = Path(options.out_dir)
    paths = _write_train(out / "train", names, options, np.random.default_rng(seeds[0]))
    paths.update(_write_eval(out / "eval", names, options, np.random.default_rng(seeds[1])))
    paths.update(_write_infer(out / "infer", names, options, np.random.default_rng(seeds[2])))
    return paths


def _write_train(folder: Path, names: list[str], o: GenerateOptions, rng: np.random.Generator) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}
    lines = []
    for i in range(o.num_train):
        drawn = draw_image(rng, names, o.image_size, o.max_objects, o.object_size)
        file_name = f"train_{i:06d}.jpg"
        files[file_name] = _jpeg_bytes(drawn.image)
        instances = [{"bbox": box, "label": label, "category": names[label]}
                     for box, label in zip(drawn.boxes, drawn.labels)]
        lines.append(json.dumps({"file_name": file_name, "height": o.image_size, "width": o.image_size,
                                 "image_id": i, "detection": {"instances": instances}}))
    write_tar_gz(folder / "images.tar.gz", files)
    (folder / "annotations_odvg.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "annotations_odvg_labelmap.json").write_text(json.dumps({str(i): n for i, n in enumerate(names)}, indent=1))
    return {"train_images": folder / "images.tar.gz", "train_json": folder / "annotations_odvg.jsonl",
            "train_label_map": folder / "annotations_odvg_labelmap.json"}


def _write_eval(folder: Path, names: list[str], o: GenerateOptions, rng: np.random.Generator) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for i in range(o.num_val):
        drawn = draw_image(rng, names, o.image_size, o.max_objects, o.object_size)
        file_name = f"eval_{i:06d}.jpg"
        files[file_name] = _jpeg_bytes(drawn.image)
        images.append({"id": i, "file_name": file_name, "height": o.image_size, "width": o.image_size})
        for box, label in zip(drawn.boxes, drawn.labels):
            w, h = round(box[2] - box[0], 2), round(box[3] - box[1], 2)
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": label,
                                "bbox": [box[0], box[1], w, h], "area": round(w * h, 2), "iscrowd": 0})
    coco = {"images": images, "annotations": annotations,
            "categories": [{"id": i, "name": n, "supercategory": "shape"} for i, n in enumerate(names)]}
    write_tar_gz(folder / "images.tar.gz", files)
    (folder / "annotations.json").write_text(json.dumps(coco))
    (folder / "label_map.txt").write_text("\n".join(names) + "\n")
    return {"eval_images": folder / "images.tar.gz", "eval_json": folder / "annotations.json",
            "eval_label_map": folder / "label_map.txt"}


def _write_infer(folder: Path, names: list[str], o: GenerateOptions, rng: np.random.Generator) -> dict[str, Path]:
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    for i in range(o.num_infer):
        draw_image(rng, names, o.image_size, o.max_objects, o.object_size).image.save(images / f"infer_{i:03d}.jpg", quality=92)
    (folder / "captions.txt").write_text("\n".join(names) + "\n")
    return {"infer_images": images, "infer_captions": folder / "captions.txt"}


def spec_overrides(paths: dict[str, Path]) -> list[str]:
    """The `key=value` overrides that point a spec at a generated dataset."""
    train = json.dumps([{"image_dir": str(paths["train_images"]), "json_file": str(paths["train_json"]),
                         "label_map": str(paths["train_label_map"])}])
    names = [n for n in Path(paths["infer_captions"]).read_text().splitlines() if n]
    return [f"dataset.train_data_sources={train}",
            f"dataset.val_data_sources.image_dir={paths['eval_images']}",
            f"dataset.val_data_sources.json_file={paths['eval_json']}",
            f"dataset.test_data_sources.image_dir={paths['eval_images']}",
            f"dataset.test_data_sources.json_file={paths['eval_json']}",
            f"dataset.infer_data_sources.image_dir={json.dumps([str(paths['infer_images'])])}",
            f"dataset.infer_data_sources.captions={json.dumps(names)}"]
