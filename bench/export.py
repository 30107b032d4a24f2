"""ONNX Runtime vs PyTorch latency of the exported Grounding DINO at 960x544, as a ratio (CPU).

    python bench/export.py                 # tiny model (seconds)
    python bench/export.py --default       # TAO's default network (Swin-T, 900 queries; minutes, ~12 GB)

Both run TAO's interface (trt.export.tao_interface) on the same inputs, batch 1, after warm-up runs;
the figure is the median of --repeats timed runs. Not a timed test: a benchmark to run by hand.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def tiny_detector():
    from transformers import BertConfig, GroundingDinoConfig, GroundingDinoForObjectDetection, SwinConfig

    backbone = SwinConfig(embed_dim=32, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8], out_indices=[2, 3, 4])
    text = BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=128, max_position_embeddings=256)
    return GroundingDinoForObjectDetection(GroundingDinoConfig(
        backbone_config=backbone, text_config=text, d_model=64, encoder_layers=1, decoder_layers=2,
        encoder_ffn_dim=128, decoder_ffn_dim=128, encoder_attention_heads=4, decoder_attention_heads=4,
        num_queries=30)).eval()


def default_detector():
    """TAO's default architecture (Swin-T backbone, 6+6 layers, 900 queries), random weights, BERT-base-sized text."""
    from transformers import BertConfig, GroundingDinoConfig, GroundingDinoForObjectDetection, SwinConfig

    backbone = SwinConfig(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7,
                          out_indices=[2, 3, 4])
    config = GroundingDinoConfig(backbone_config=backbone, text_config=BertConfig())
    return GroundingDinoForObjectDetection(config).eval()


def median_seconds(fn, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--default", action="store_true", help="TAO's default network instead of the tiny one")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import numpy as np
    import torch

    from trt.export import INPUT_NAMES, dummy_inputs, export_module
    from trt.runtime import OnnxRuntimeBackend, TorchBackend

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    detector = default_detector() if args.default else tiny_detector()
    height, width = 544, 960
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        path = export_module(detector, Path(folder) / "model.onnx", height=height, width=width)
        export_s = time.perf_counter() - start
        feeds = {n: t.numpy() for n, t in zip(INPUT_NAMES, dummy_inputs(1, height, width,
                                                                      int(detector.config.max_text_len)))}
        onnx_backend = OnnxRuntimeBackend(path, threads=args.threads)
        torch_backend = TorchBackend(detector, height=height, width=width)
        ort_logits, _ = onnx_backend.infer(feeds)
        ref_logits, _ = torch_backend.infer(feeds)
        onnx_s = median_seconds(lambda: onnx_backend.infer(feeds), args.warmup, args.repeats)
        torch_s = median_seconds(lambda: torch_backend.infer(feeds), args.warmup, args.repeats)
    result = {"model": "default" if args.default else "tiny", "input": f"{width}x{height}", "batch": 1,
              "threads": args.threads, "export_s": round(export_s, 2), "pytorch_s": round(torch_s, 4),
              "onnxruntime_s": round(onnx_s, 4), "onnxruntime_over_pytorch": round(onnx_s / torch_s, 3),
              "max_abs_logit_diff": float(np.abs(ort_logits - ref_logits).max())}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
