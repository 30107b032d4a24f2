"""Grounding DINO: TAO-compatible config, data pipeline, network, criterion, training and evaluation.

`gdino` imports neither `hpo` nor `trt` (dependencies flow hpo -> gdino, trt; trt -> gdino).
"""
