"""COCO box metrics with faster-coco-eval (same numbers as pycocotools, several times faster).

`evaluate_detections(coco_gt, detections, cat_ids=None)` -> {"AP", "AP50", "AP75", "APs", "APm",
"APl", "per_class": {name: AP}, "stats": [12 COCO numbers]}. `detections` are COCO result dicts
(`image_id`, `category_id`, `bbox` xywh pixels, `score`). `cat_ids` restricts the evaluation to those
categories (TAO's `dataset.eval_class_ids`). As in COCO, a figure with nothing to measure (e.g. APs
without small objects) is -1. `backend="pycocotools"` runs the reference implementation instead
(used by the cross-check test and bench/eval.py).
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import os
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

import numpy as np

from gdino.errors import DatasetError

Backend = Literal["faster", "pycocotools"]
SUMMARY_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def evaluate_detections(coco_gt: Mapping[str, Any] | str | os.PathLike, detections: Iterable[Mapping[str, Any]],
                        cat_ids: Iterable[int] | None = None, *, backend: Backend = "faster") -> dict[str, Any]:
    gt_dict = _load_gt(coco_gt)
    dets = [_as_result(d) for d in detections]
    known = {int(c["id"]) for c in gt_dict["categories"]}
    unknown = sorted({d["category_id"] for d in dets} - known)
    if unknown:
        raise DatasetError(f"detections use category ids {unknown} that are not in the ground truth",
                           hint="detections must use the COCO category ids of the ground-truth file")
    eval_ids = sorted(known) if cat_ids is None else [int(c) for c in cat_ids]
    missing = sorted(set(eval_ids) - known)
    if missing:
        raise DatasetError(f"eval_class_ids {missing} are not categories of the ground truth")
    if not dets:  # both libraries refuse an empty result set; nothing detected means zero AP
        return _empty_result(gt_dict, eval_ids)
    with contextlib.redirect_stdout(io.StringIO()):  # both libraries print progress and the summary table
        evaluator = _evaluator(gt_dict, dets, backend)
        evaluator.params.catIds = eval_ids
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = [float(s) for s in evaluator.stats[:12]]
    names = {int(c["id"]): str(c["name"]) for c in gt_dict["categories"]}
    return {**dict(zip(SUMMARY_KEYS, stats[:6])), "per_class": _per_class_ap(evaluator, eval_ids, names),
            "stats": stats}


def _evaluator(gt_dict: dict, dets: list[dict], backend: Backend):
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        gt = COCO()
        gt.dataset = gt_dict
        gt.createIndex()
        return COCOeval(gt, gt.loadRes(dets), iouType="bbox")
    from faster_coco_eval import COCO, COCOeval_faster

    gt = COCO(gt_dict)
    return COCOeval_faster(gt, gt.loadRes(dets), iouType="bbox")


def _per_class_ap(evaluator, eval_ids: list[int], names: dict[int, str]) -> dict[str, float]:
    """AP@[.5:.95] per category from the accumulated precision [T, R, K, A=all, M=100 dets]."""
    precision = np.asarray(evaluator.eval["precision"])
    per_class = {}
    for k, cat_id in enumerate(evaluator.params.catIds):
        p = precision[:, :, k, 0, -1]
        valid = p[p > -1]
        per_class[names.get(cat_id, str(cat_id))] = float(valid.mean()) if valid.size else -1.0
    return per_class


def _empty_result(gt_dict: dict, eval_ids: list[int]) -> dict[str, Any]:
    names = {int(c["id"]): str(c["name"]) for c in gt_dict["categories"]}
    has_gt = {int(a["category_id"]) for a in gt_dict.get("annotations", []) if not a.get("iscrowd", 0)}
    value = 0.0 if has_gt & set(eval_ids) else -1.0
    return {**{k: value for k in SUMMARY_KEYS},
            "per_class": {names[c]: (0.0 if c in has_gt else -1.0) for c in eval_ids}, "stats": [value] * 12}


def _load_gt(coco_gt: Mapping[str, Any] | str | os.PathLike) -> dict:
    if isinstance(coco_gt, Mapping):
        gt = copy.deepcopy(dict(coco_gt))  # annotations are rewritten below; never touch the caller's
    else:
        from gdino.data.sources import read_json

        gt = read_json(str(coco_gt)) if not isinstance(coco_gt, Path) else json.loads(coco_gt.read_text())
    if "images" not in gt or "categories" not in gt:
        raise DatasetError("ground truth is not a COCO file (needs images, annotations, categories)")
    gt.setdefault("annotations", [])
    for number, ann in enumerate(gt["annotations"], start=1):
        # COCOeval marks "unmatched" with id 0, so an annotation with id 0 could never count as found.
        ann["id"] = number
        # COCOeval needs area and iscrowd; hand-made files often lack them.
        ann.setdefault("iscrowd", 0)
        if "area" not in ann:
            ann["area"] = float(ann["bbox"][2]) * float(ann["bbox"][3])
    return gt


def _as_result(det: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return {"image_id": int(det["image_id"]), "category_id": int(det["category_id"]),
                "bbox": [float(v) for v in det["bbox"]], "score": float(det["score"])}
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"not a COCO detection (image_id, category_id, bbox xywh, score): {det!r}") from exc
