"""COCO metrics: known values on hand-made cases, and equality with plain pycocotools."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from gdino.errors import DatasetError
from gdino.metrics.coco import evaluate_detections

# 101-point interpolated AP when exactly half of the objects are found with precision 1:
# recall thresholds 0.00 .. 0.50 (51 of 101) have precision 1, the rest 0.
HALF_FOUND_AP = 51 / 101


def _gt(num_images: int = 4, cat_ids=(0, 1), ann_id_start: int = 1) -> dict:
    images = [{"id": i, "file_name": f"{i}.jpg", "height": 100, "width": 100} for i in range(num_images)]
    annotations = []
    for i in range(num_images):
        for k, cat in enumerate(cat_ids):
            annotations.append({"id": ann_id_start + len(annotations), "image_id": i, "category_id": cat,
                                "bbox": [10 + 40 * k, 10, 30, 30], "area": 900.0, "iscrowd": 0})
    return {"images": images, "annotations": annotations,
            "categories": [{"id": c, "name": f"class {c}"} for c in cat_ids]}


def _perfect(gt: dict) -> list[dict]:
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": list(a["bbox"]), "score": 0.9}
            for a in gt["annotations"]]


@pytest.mark.parametrize("backend", ["faster", "pycocotools"])
def test_perfect_detections_score_one(backend):
    gt = _gt()
    result = evaluate_detections(gt, _perfect(gt), backend=backend)
    assert result["AP"] == pytest.approx(1.0) and result["AP50"] == pytest.approx(1.0)
    # 30x30 boxes are "small" (area < 32^2): no medium or large objects to measure -> -1 as in COCO.
    assert result["AP75"] == pytest.approx(1.0) and result["APs"] == pytest.approx(1.0)
    assert result["APm"] == -1.0 and result["APl"] == -1.0
    assert result["per_class"] == {"class 0": pytest.approx(1.0), "class 1": pytest.approx(1.0)}


@pytest.mark.parametrize("backend", ["faster", "pycocotools"])
def test_half_the_objects_found_gives_the_exact_interpolated_ap(backend):
    gt = _gt(num_images=4, cat_ids=(0,))
    found = _perfect(gt)[:2]
    result = evaluate_detections(gt, found, backend=backend)
    assert result["AP"] == pytest.approx(HALF_FOUND_AP, abs=1e-12)
    assert result["AP50"] == pytest.approx(HALF_FOUND_AP, abs=1e-12)


def test_annotation_id_zero_still_counts_as_found():
    gt = _gt(ann_id_start=0)
    assert evaluate_detections(gt, _perfect(gt))["AP"] == pytest.approx(1.0)
    assert gt["annotations"][0]["id"] == 0  # the caller's ground truth is left untouched


def test_cat_ids_restrict_the_evaluation():
    gt = _gt(cat_ids=(0, 1))
    only_class_0 = [d for d in _perfect(gt) if d["category_id"] == 0]
    assert evaluate_detections(gt, only_class_0)["AP"] == pytest.approx(0.5)
    restricted = evaluate_detections(gt, only_class_0, cat_ids=[0])
    assert restricted["AP"] == pytest.approx(1.0) and list(restricted["per_class"]) == ["class 0"]


def test_no_detections_and_bad_input():
    gt = _gt()
    assert evaluate_detections(gt, [])["AP"] == 0.0
    with pytest.raises(DatasetError, match="not in the ground truth"):
        evaluate_detections(gt, [{"image_id": 0, "category_id": 7, "bbox": [0, 0, 1, 1], "score": 1.0}])
    with pytest.raises(DatasetError, match="eval_class_ids"):
        evaluate_detections(gt, _perfect(gt), cat_ids=[1, 9])
    with pytest.raises(DatasetError, match="not a COCO detection"):
        evaluate_detections(gt, [{"image_id": 0}])


def test_faster_coco_eval_equals_pycocotools_on_random_detections():
    rng = np.random.default_rng(0)
    gt = _gt(num_images=30, cat_ids=(0, 1, 2))
    for ann in gt["annotations"]:  # vary sizes so small/medium/large all appear
        side = float(rng.uniform(8, 120))
        ann["bbox"] = [float(rng.uniform(0, 50)), float(rng.uniform(0, 50)), side, side * float(rng.uniform(0.5, 1.5))]
        ann["area"] = ann["bbox"][2] * ann["bbox"][3]
    detections = []
    for ann in gt["annotations"]:
        for _ in range(3):
            jitter = rng.normal(0, 0.15 * ann["bbox"][2], size=4)
            box = [ann["bbox"][0] + jitter[0], ann["bbox"][1] + jitter[1],
                   max(1.0, ann["bbox"][2] + jitter[2]), max(1.0, ann["bbox"][3] + jitter[3])]
            category = ann["category_id"] if rng.random() < 0.8 else int(rng.integers(3))
            detections.append({"image_id": ann["image_id"], "category_id": category, "bbox": box,
                               "score": float(rng.random())})
    ours = evaluate_detections(gt, copy.deepcopy(detections))
    reference = evaluate_detections(gt, copy.deepcopy(detections), backend="pycocotools")
    assert 0.05 < ours["AP"] < 0.95  # a non-trivial case
    np.testing.assert_allclose(ours["stats"], reference["stats"], atol=1e-9)
    assert ours["per_class"] == pytest.approx(reference["per_class"], abs=1e-9)
