"""Training, evaluation and inference with PyTorch Lightning (`pytorch_lightning` only).

`gdino.engine.train.fit(cfg, ...)` (the one training loop, also run inside Ray Train workers),
`gdino.engine.evaluate.evaluate(cfg)`, `gdino.engine.inference.infer(cfg)`; their commands are in `cli`.
"""
