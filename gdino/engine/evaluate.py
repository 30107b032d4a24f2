"""`evaluate(cfg)`: a checkpoint on dataset.test_data_sources -> COCO metrics (also <results_dir>/results.json).

Returns AP, AP50, AP75, APs, APm, APl and per_class (AP per category name), computed by
gdino.metrics.coco against the test COCO ground truth, restricted to dataset.eval_class_ids if set.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gdino.config import ExperimentConfig

log = logging.getLogger(__name__)


def evaluate(cfg: ExperimentConfig) -> dict[str, Any]:
    from gdino.data import build_dataset
    from gdino.engine.predict import checkpoint_of, loader_for, predict
    from gdino.metrics.coco import evaluate_detections
    from gdino.model.postprocess import to_coco_detections
    from gdino.model.text import load_tokenizer
    from gdino.model.weights import load_network

    net = load_network(cfg, checkpoint_of(cfg, "evaluate"))
    dataset = build_dataset(cfg, "test")
    tokenizer = load_tokenizer(cfg.model.text_encoder_type)
    threshold = float(cfg.evaluate.conf_threshold or 0.0)
    detections = []
    for target, result in predict(net, tokenizer, loader_for(cfg, dataset, "evaluate"), cfg.model.num_select):
        detections += to_coco_detections([result], [target["image_id"]], [target["category_ids"]], threshold)
    metrics = evaluate_detections(dataset.coco_gt, detections, cat_ids=cfg.dataset.eval_class_ids)
    metrics = {k: v for k, v in metrics.items() if k != "stats"}
    folder = Path(cfg.evaluate.results_dir or cfg.results_dir or "results/evaluate")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(metrics, indent=2))
    log.info("evaluate: AP=%.4f AP50=%.4f AP75=%.4f (%s)", metrics["AP"], metrics["AP50"], metrics["AP75"],
             folder / "results.json")
    return metrics
