"""COCO evaluation speed: `gdino.metrics.coco.evaluate_detections` (faster-coco-eval) vs plain pycocotools.

Both run in one process on the same synthetic ground truth and detections (boxes of every COCO size
range, jittered true positives, wrong-class and background false positives). Prints best-of-N wall
time for each, the speed ratio, and the 12 COCO stats of both (they must be equal).

    python bench/eval.py [--images 500] [--dets-per-image 20] [--classes 5] [--repeats 3] [--json FILE]
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gdino.metrics.coco import evaluate_detections  # noqa: E402


def synthetic_case(num_images: int, dets_per_image: int, num_classes: int, seed: int) -> tuple[dict, list[dict]]:
    rng = np.random.default_rng(seed)
    images, annotations, detections = [], [], []
    for image_id in range(num_images):
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "height": 480, "width": 640})
        boxes = []
        for _ in range(int(rng.integers(1, 8))):
            side = float(np.exp(rng.uniform(np.log(10), np.log(300))))  # small, medium and large objects
            box = [float(rng.uniform(0, 640 - side)), float(rng.uniform(0, 480 - min(side, 470))), side,
                   min(side * float(rng.uniform(0.5, 1.5)), 470.0)]
            category = int(rng.integers(num_classes))
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                                "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
            boxes.append((box, category))
        for _ in range(dets_per_image):
            if boxes and rng.random() < 0.6:  # a jittered true positive, sometimes with the wrong class
                box, category = boxes[int(rng.integers(len(boxes)))]
                jitter = rng.normal(0, 0.1, size=4) * box[2]
                det = [box[0] + jitter[0], box[1] + jitter[1], max(2.0, box[2] + jitter[2]),
                       max(2.0, box[3] + jitter[3])]
                if rng.random() < 0.15:
                    category = int(rng.integers(num_classes))
            else:  # background false positive
                side = float(rng.uniform(10, 200))
                det, category = [float(rng.uniform(0, 600)), float(rng.uniform(0, 440)), side, side], int(
                    rng.integers(num_classes))
            detections.append({"image_id": image_id, "category_id": category, "bbox": [float(v) for v in det],
                               "score": float(rng.random())})
    categories = [{"id": c, "name": f"class {c}"} for c in range(num_classes)]
    return {"images": images, "annotations": annotations, "categories": categories}, detections


def plain_pycocotools(gt: dict, detections: list[dict]) -> list[float]:
    """What a user would write with pycocotools alone: load, evaluate, accumulate, summarize."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(detections)), iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [float(s) for s in evaluator.stats]


def best_time(fn, repeats: int):
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--dets-per-image", type=int, default=20)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)

    gt, detections = synthetic_case(args.images, args.dets_per_image, args.classes, args.seed)
    baseline_s, baseline_stats = best_time(lambda: plain_pycocotools(gt, detections), args.repeats)
    ours_s, ours = best_time(lambda: evaluate_detections(gt, detections), args.repeats)
    max_diff = float(np.max(np.abs(np.array(ours["stats"]) - np.array(baseline_stats))))
    figures = {
        "machine": f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}".strip(),
        "images": args.images, "ground_truth_boxes": len(gt["annotations"]), "detections": len(detections),
        "pycocotools_s": round(baseline_s, 4), "ours_s": round(ours_s, 4),
        "speedup": round(baseline_s / ours_s, 2), "max_stat_difference": max_diff,
        "AP": ours["AP"], "AP50": ours["AP50"], "AP75": ours["AP75"],
        "pycocotools_AP": baseline_stats[0], "pycocotools_AP50": baseline_stats[1],
    }
    print(f"{figures['images']} images, {figures['ground_truth_boxes']} GT boxes, {figures['detections']} detections;"
          f" best of {args.repeats}")
    print(f"{'evaluator':<34}{'time s':>9}{'AP':>10}{'AP50':>10}{'AP75':>10}")
    print(f"{'plain pycocotools':<34}{baseline_s:>9.3f}{baseline_stats[0]:>10.6f}{baseline_stats[1]:>10.6f}"
          f"{baseline_stats[2]:>10.6f}")
    print(f"{'gdino.metrics (faster-coco-eval)':<34}{ours_s:>9.3f}{ours['AP']:>10.6f}{ours['AP50']:>10.6f}"
          f"{ours['AP75']:>10.6f}")
    print(f"speed-up {figures['speedup']}x; largest difference over the 12 COCO stats: {max_diff:.2e}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if max_diff < 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())
