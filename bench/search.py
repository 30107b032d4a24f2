"""Search efficiency on the LCBench surrogate, in simulated time, each algorithm beside random search.

    python bench/search.py --tasks 3945 7593 --seeds 10 [--algorithms asha bohb ...] [--workers 1]
                           [--max-time 300000] [--png search.png] [--json search.json]

The production algorithms (hpo.algorithms: the same searcher and scheduler objects a sweep hands to
Ray Tune) drive hpo.algorithms.simulator against YAHPO Gym's LCBench surrogate (an ONNX model, run with
ONNX Runtime; ../shared/benchmarks/yahpo-lcbench/). A trial's cost is the surrogate's `time` per epoch;
a resumed or promoted trial pays only for new epochs. Fidelity: epochs 1..52 (R = 52, eta = 3 for the
multi-fidelity algorithms; TAO's `bayesian` keeps its 20 recommendations).

Target per task: the top 0.1 % of 20 000 random configurations at 52 epochs (val_accuracy). For each
task and algorithm over the seeds: time to reach the target (a seed that never reaches it counts as
the time budget and is reported as unsolved), the speed-up over random search of the same seed
(median and quartiles), and the median regret over time (PNG).
Develop on tasks 3945, 7593, 34539, 126025, 126026, 126029, 146212, 167104; leave the others alone.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SURROGATE = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "yahpo-lcbench"
DEVELOPMENT_TASKS = ("3945", "7593", "34539", "126025", "126026", "126029", "146212", "167104")
METRIC = "val_accuracy"
MAX_EPOCH = 52
# YAHPO lcbench: input and output column orders of the ONNX model (yahpo_gym benchmarks/lcbench.py)
CONT_NAMES = ("epoch", "batch_size", "learning_rate", "momentum", "weight_decay", "num_layers", "max_units",
              "max_dropout")
Y_NAMES = ("time", "val_accuracy", "val_cross_entropy", "val_balanced_accuracy", "test_cross_entropy",
           "test_balanced_accuracy")
DEFAULT_ALGORITHMS = ("asha", "bohb", "dehb", "hyperband", "hyperband_es", "bayesian", "tpe")


def lcbench_space():
    """LCBench's 7 hyperparameters (config_space.json) as a SearchSpace."""
    from hpo.space import FloatDomain, IntDomain, Param, SearchSpace

    return SearchSpace((
        Param("batch_size", IntDomain(16, 512, log=True), default=91),
        Param("learning_rate", FloatDomain(1e-4, 1e-1, log=True), default=3.16e-3),
        Param("momentum", FloatDomain(0.1, 0.99), default=0.545),
        Param("weight_decay", FloatDomain(1e-5, 1e-1), default=0.05),
        Param("num_layers", IntDomain(1, 5), default=3),
        Param("max_units", IntDomain(64, 1024, log=True), default=256),
        Param("max_dropout", FloatDomain(0.0, 1.0), default=0.5),
    ))


class Surrogate:
    """The ONNX model; whole 52-epoch curves are computed in one call and cached per config."""

    def __init__(self, task: str) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(SURROGATE / "model.onnx"), options,
                                            providers=["CPUExecutionProvider"])
        encoding = json.loads((SURROGATE / "encoding.json").read_text())["OpenML_task_id"]
        if task not in encoding:
            raise SystemExit(f"unknown LCBench task {task}; known: {', '.join(sorted(encoding, key=str))}")
        self.task_code = int(encoding[task])
        self._curves: dict[tuple, np.ndarray] = {}
        self._last: tuple[Any, Optional[np.ndarray]] = (None, None)  # the config asked last, its curve

    def predict(self, configs: list[dict], epochs: np.ndarray) -> np.ndarray:
        """Outputs (Y_NAMES columns) for every (config, epoch) pair, configs repeated per epoch."""
        rows = np.array([[e] + [float(c[n]) for n in CONT_NAMES[1:]] for c in configs for e in epochs],
                        dtype=np.float32)
        cats = np.full((len(rows), 1), self.task_code, dtype=np.int32)
        return self.session.run(None, {"x_cat": cats, "x_cont": rows})[0]

    def curve(self, config: dict) -> np.ndarray:
        if self._last[0] is config:  # the simulator asks about one trial epoch after epoch
            return self._last[1]  # type: ignore[return-value]
        key = tuple(config[n] for n in CONT_NAMES[1:])
        if key not in self._curves:
            out = self.predict([config], np.arange(1, MAX_EPOCH + 1))
            out[:, 0] = np.maximum.accumulate(out[:, 0])  # cumulative time never goes back
            self._curves[key] = out
        self._last = (config, self._curves[key])
        return self._curves[key]


@dataclass
class LCBenchObjective:
    surrogate: Surrogate

    def evaluate(self, config: dict, epoch: int) -> dict:
        row = self.surrogate.curve(config)[min(epoch, MAX_EPOCH) - 1]
        return {name: float(v) for name, v in zip(Y_NAMES, row)}

    def epoch_cost(self, config: dict, epoch: int) -> float:
        curve = self.surrogate.curve(config)[:, 0]
        e = min(epoch, MAX_EPOCH)
        return float(curve[e - 1] - (curve[e - 2] if e >= 2 else 0.0))


def target_for(surrogate: Surrogate, space, n: int = 20_000, seed: int = 2024) -> tuple[float, float]:
    """(target = 99.9th percentile, best) of val_accuracy at 52 epochs over n random configs."""
    rng = np.random.default_rng(seed)
    configs = [space.sample(rng) for _ in range(n)]
    values = surrogate.predict(configs, np.array([MAX_EPOCH]))[:, Y_NAMES.index(METRIC)]
    return float(np.quantile(values, 0.999)), float(values.max())


def make(name: str, space, seed: int) -> Any:
    from gdino.config.automl import AutoMLConfig
    from hpo.algorithms import make_algorithm

    knobs: dict[str, Any] = {"max_epochs": MAX_EPOCH, "reduction_factor": 3, "seed": seed}
    if name == "bayesian":
        knobs["max_recommendations"] = 20  # TAO's default
    return make_algorithm(name, space, AutoMLConfig(algorithm=name, **knobs), METRIC, seed=seed)


@dataclass
class Outcome:
    time_to_target: Optional[float]
    trace: list
    trials: int
    wall_s: float


def run_one(name: str, space, objective: LCBenchObjective, seed: int, workers: int, max_time: float,
            target: float) -> Outcome:
    from hpo.algorithms.simulator import Simulator

    alg = make(name, space, seed)
    limit = alg.num_samples if name == "bayesian" else 1_000_000  # others run until the time budget
    started = time.perf_counter()
    # a run stops at the target: its regret curve is flat from there (the time to target is what counts)
    run = Simulator(alg, objective, workers=workers, max_time=max_time, target=target, max_trials=limit).run()
    return Outcome(run.time_to(target, "max"), run.trace, len(run.trials), time.perf_counter() - started)


def regret_curve(trace: list, best: float, grid: np.ndarray) -> np.ndarray:
    out = np.full(len(grid), np.nan)
    j, current = 0, math.nan
    for i, t in enumerate(grid):
        while j < len(trace) and trace[j][0] <= t:
            current = trace[j][1]
            j += 1
        out[i] = best - current if not math.isnan(current) else np.nan
    return out


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q = np.quantile(np.array(values, dtype=float), [0.25, 0.5, 0.75])
    return float(q[1]), float(q[0]), float(q[2])


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["3945", "7593"])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--algorithms", nargs="+", default=list(DEFAULT_ALGORITHMS))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-time", type=float, default=300_000.0, help="simulated seconds per run")
    parser.add_argument("--png", default="search.png")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args(argv)
    held_out = [t for t in args.tasks if t not in DEVELOPMENT_TASKS]
    if held_out:
        print(f"note: tasks {held_out} are held out for independent checks", file=sys.stderr)

    space = lcbench_space()
    algorithms = ["random"] + [a for a in args.algorithms if a != "random"]
    grid = np.geomspace(100.0, args.max_time, 200)
    report: dict[str, Any] = {"max_time_s": args.max_time, "workers": args.workers, "seeds": args.seeds,
                              "tasks": {}}
    curves: dict[str, dict[str, np.ndarray]] = {}
    started = time.perf_counter()
    for task in args.tasks:
        surrogate = Surrogate(task)
        objective = LCBenchObjective(surrogate)
        target, best = target_for(surrogate, space)
        outcomes = {a: [run_one(a, space, objective, s, args.workers, args.max_time, target)
                        for s in range(args.seeds)] for a in algorithms}
        task_report: dict[str, Any] = {"target": target, "best_of_20000": best, "algorithms": {}}
        curves[task] = {}
        baseline = outcomes["random"]
        for a in algorithms:
            runs = outcomes[a]
            times = [o.time_to_target if o.time_to_target is not None else args.max_time for o in runs]
            speedups = [(b.time_to_target or args.max_time) / t for b, t in zip(baseline, times)]
            med, lo, hi = quartiles(speedups)
            solved = sum(o.time_to_target is not None for o in runs)
            task_report["algorithms"][a] = {
                "median_time_to_target_s": quartiles(times)[0], "solved": solved,
                "median_speedup_vs_random": med, "speedup_q25": lo, "speedup_q75": hi,
                "median_trials": statistics.median(o.trials for o in runs),
                "wall_s": sum(o.wall_s for o in runs)}
            curves[task][a] = np.nanmedian(np.array([regret_curve(o.trace, best, grid) for o in runs]), axis=0)
        report["tasks"][task] = task_report
    report["wall_s"] = time.perf_counter() - started
    _print_table(report)
    _plot(curves, grid, args.png)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=1))
    return 0


def _print_table(report: dict) -> None:
    print(f"LCBench surrogate, simulated time, {report['seeds']} seeds, {report['workers']} worker(s), "
          f"budget {report['max_time_s']:.0f} s per run (unsolved seeds count as the budget)")
    print(f"{'task':>7} {'algorithm':<13} {'solved':>7} {'median t->target':>17} "
          f"{'speed-up vs random (median [q25, q75])':>40}")
    for task, rep in report["tasks"].items():
        for a, r in rep["algorithms"].items():
            print(f"{task:>7} {a:<13} {r['solved']:>4}/{report['seeds']:<2} {r['median_time_to_target_s']:>17.0f} "
                  f"{r['median_speedup_vs_random']:>22.2f}x [{r['speedup_q25']:.2f}, {r['speedup_q75']:.2f}]")
    print(f"wall time {report['wall_s']:.0f} s")


def _plot(curves: dict, grid: np.ndarray, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 4.5), squeeze=False)
    for ax, (task, per_alg) in zip(axes[0], curves.items()):
        for a, values in per_alg.items():
            ax.plot(grid, np.maximum(values, 1e-3), label=a, lw=2.2 if a == "random" else 1.4)
        ax.set(xscale="log", yscale="log", title=f"LCBench task {task}", xlabel="simulated time (s)",
               ylabel="median regret (val_accuracy points)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
