"""Sweep overhead on a local Ray cluster: plain Tune function trials vs Tune + Ray Train trials.

    python bench/overhead.py [--trials 3] [--epochs 3] [--steps 200] [--num-cpus 2] [--out overhead.json]

Both arms run the same cheap real trainable (hpo.testing) through the same sweep engine, one after
the other on one private cluster, one trial at a time. Per trial it measures
  launch -> first report: the ledger's trial start to its first result (driver-side wall clock);
  share outside training: 1 - (time inside the training loop) / (trial start -> trial complete).
It prints both arms and the ratios Train/function (notes/ray.md §8 anchor: 10-22 s to first report
for Train-backed trials on 2 vCPUs, about 2.5 s for plain Tune functions).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _arm(backend: str, root: Path, cluster: Any, trials: int, epochs: int, steps: int) -> dict[str, Any]:
    from ray import tune

    from hpo.sweep.engine import SweepPlan, SweepSetup, run_sweep
    from hpo.sweep.ledger import Ledger

    sweep_dir = root / backend
    setup = SweepSetup(sweep_dir=str(sweep_dir), base_spec={"train": {"num_epochs": epochs, "optim": {"lr": 0.05}}},
                       automl={"max_concurrent": 1}, backend=backend, train_fn="hpo.testing:quadratic_train_fn",
                       train_fn_options={"steps_per_epoch": steps}, trial_epochs=epochs)
    lrs = [0.05 * (0.5 ** i) for i in range(trials)]
    began = time.monotonic()
    run_sweep(setup, SweepPlan(param_space={"train.optim.lr": tune.grid_search(lrs)}), cluster)
    sweep_wall = time.monotonic() - began

    first_report, outside, outside_s = [], [], []
    events = list(Ledger(sweep_dir, "val_mAP50", "max").events())
    for trial_id in dict.fromkeys(e["trial_id"] for e in events):
        mine = [e for e in events if e["trial_id"] == trial_id]
        start = next(e["ts"] for e in mine if e["event"] == "start")
        first = next(e["ts"] for e in mine if e["event"] == "result")
        end = next(e["ts"] for e in mine if e["event"] == "complete")
        first_report.append(first - start)
        trained = _train_seconds(sweep_dir, trial_id)
        outside.append(1.0 - trained / (end - start))
        outside_s.append(end - start - trained)
    return {"backend": backend, "trials": len(first_report), "sweep_wall_s": round(sweep_wall, 2),
            "first_report_s": [round(x, 2) for x in first_report],
            "first_report_median_s": round(statistics.median(first_report), 2),
            "outside_training_share": [round(x, 3) for x in outside],
            "outside_training_median": round(statistics.median(outside), 3),
            "outside_training_median_s": round(statistics.median(outside_s), 2)}


def _train_seconds(sweep_dir: Path, trial_id: str) -> float:
    """The trainable's own `train_s` (cumulative) in the trial's last Tune result."""
    [trial_dir] = [p for p in (sweep_dir / "tune" / "experiment").iterdir() if trial_id in p.name and p.is_dir()]
    lines = (trial_dir / "result.json").read_text().splitlines()
    return float(json.loads(lines[-1])["train_s"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200, help="SGD steps per epoch of the cheap trainable")
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    from hpo.sweep.cluster import ray_cluster

    root = Path(tempfile.mkdtemp(prefix="gdino-overhead-"))
    with ray_cluster(None, root, num_cpus=args.num_cpus, object_store_memory=200_000_000) as cluster:
        function = _arm("function", root, cluster, args.trials, args.epochs, args.steps)
        train = _arm("train", root, cluster, args.trials, args.epochs, args.steps)
    report = {
        "cluster_cpus": args.num_cpus, "epochs": args.epochs, "steps_per_epoch": args.steps,
        "function": function, "train": train,
        "ratio_first_report_train_over_function":
            round(train["first_report_median_s"] / function["first_report_median_s"], 2),
        "ratio_outside_share_train_over_function":
            round(train["outside_training_median"] / function["outside_training_median"], 2),
        "ratio_outside_seconds_train_over_function":
            round(train["outside_training_median_s"] / function["outside_training_median_s"], 2),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
