"""Learning curve of the CPU preset: val_mAP50 per epoch and wall time, at lr x {1, 1/30, 30}.

    python bench/learning.py                       # examples/tiny_cpu.yaml, the three learning rates
    python bench/learning.py --factors 1 --epochs 4 train.optim.lr=5e-4

Needs the generated dataset (`grounding_dino dataset generate`). Each run trains from scratch into
results/bench_learning/lr_x<factor>/ (old checkpoints there are removed first, so nothing resumes).
The machine's load average is printed with the figures: timings on a shared box are contended.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run(spec: str, factor: float, epochs: int, overrides: list[str], limit: float | None) -> dict:
    import pytorch_lightning as pl

    from gdino.engine.train import fit
    from gdino.spec import load_spec

    out = ROOT / "results" / "bench_learning" / f"lr_x{factor:g}"
    shutil.rmtree(out, ignore_errors=True)
    cfg = load_spec(spec, [f"results_dir={out}", f"train.num_epochs={epochs}", *overrides])
    lr = cfg.train.optim.lr * factor
    cfg = load_spec(spec, [f"results_dir={out}", f"train.num_epochs={epochs}", *overrides,
                           f"train.optim.lr={lr}", f"train.optim.lr_backbone={cfg.train.optim.lr_backbone * factor}",
                           f"train.checkpoint_interval={epochs}"])
    curve: list[dict] = []
    started = time.monotonic()

    class Curve(pl.Callback):
        def on_validation_end(self, trainer, pl_module):
            m = trainer.callback_metrics
            curve.append({"epoch": trainer.current_epoch + 1, "wall_s": round(time.monotonic() - started, 1),
                          "val_mAP50": round(float(m.get("val_mAP50", -1)), 4),
                          "val_mAP": round(float(m.get("val_mAP", -1)), 4),
                          "val_loss": round(float(m.get("val_loss", -1)), 3)})
            print(f"  lr x{factor:g} epoch {curve[-1]['epoch']}: val_mAP50={curve[-1]['val_mAP50']:.4f} "
                  f"val_mAP={curve[-1]['val_mAP']:.4f} val_loss={curve[-1]['val_loss']:.2f} "
                  f"wall={curve[-1]['wall_s']:.0f}s load={os.getloadavg()[0]:.1f}", flush=True)

    kwargs = {"limit_train_batches": limit} if limit else {}
    fit(cfg, callbacks=[Curve()], enable_progress_bar=False, trainer_kwargs=kwargs)
    return {"factor": factor, "lr": lr, "curve": curve, "wall_s": round(time.monotonic() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default=str(ROOT / "examples" / "tiny_cpu.yaml"))
    parser.add_argument("--factors", default="1,0.0333,30", help="learning-rate multipliers, comma-separated")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--limit-train-batches", type=float, default=None)
    parser.add_argument("overrides", nargs="*", help="spec overrides, e.g. dataset.batch_size=4")
    args = parser.parse_args()
    os.chdir(ROOT)  # the preset's data paths are relative to the repository root
    print(f"load average at start: {os.getloadavg()} on {os.cpu_count()} cores", flush=True)
    results = [run(args.spec, float(f), args.epochs, args.overrides, args.limit_train_batches)
               for f in args.factors.split(",")]
    print(json.dumps(results, indent=1))
    for r in results:
        best = max((c["val_mAP50"] for c in r["curve"]), default=float("nan"))
        final = r["curve"][-1]["val_mAP50"] if r["curve"] else float("nan")
        print(f"lr x{r['factor']:g} (lr={r['lr']:.2g}): final val_mAP50={final:.4f} best={best:.4f} "
              f"wall={r['wall_s']:.0f}s")
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
