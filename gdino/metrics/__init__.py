"""Metrics: COCO box AP (`gdino.metrics.coco.evaluate_detections`)."""
