"""Search efficiency on the LCBench surrogate in simulated time: our algorithms beside random search and
beside the real peers (TAO AutoML's own brains, SMAC3, syne-tune, DEHB, Optuna), on one clock.

    python bench/search.py --tasks 3945 7593 --seeds 10 [--algorithms asha bohb ...]
                           [--peers tao smac synetune dehb optuna] [--workers 1 4] [--launch-cost 29.4]
                           [--objective lcbench|gdino-proxy] [--jobs 2] [--budget-trainings 200]
                           [--png search.png] [--json search.json]

Our production algorithms (hpo.algorithms: the same searcher and scheduler objects a sweep hands to Ray
Tune) drive hpo.algorithms.simulator; each peer library's own optimizer object is driven through its
ask/tell interface by bench/peers (one adapter per library) on bench/peers/clock.py, which keeps the
simulator's rules. Objective: YAHPO Gym's LCBench surrogate (an ONNX model, ONNX Runtime;
../shared/benchmarks/yahpo-lcbench/). A trial's cost is the surrogate's `time` per epoch plus
`--launch-cost` seconds for every start and every resume (default: Tune + Ray Train's measured time outside
training per trial, bench/overhead.py); a resumed trial pays only for new epochs. Fidelity: epochs 1..52
(R = 52, eta = 3 everywhere; TAO's `bayesian` keeps its 20 recommendations).

Target per task: the top 0.1 % of 20 000 random configurations at 52 epochs (val_accuracy). A trial
counts once it has trained its algorithm's largest budget, with the value of its best epoch. Per task
and algorithm over the seeds: the median time to the target (a seed that never reaches it is censored at
the time budget; a censored median is a lower bound, printed ">="), the speed-up over random search of
the same seed, and for our default algorithm the ratio of the best peer's median time to ours (>= 1: we
are no slower). `--objective gdino-proxy` adds a conditional parameter (optimizer in {sgd, adam};
momentum searched only with sgd, else the surrogate gets 0.9).
Develop on tasks 3945, 7593, 34539, 126025, 126026, 126029, 146212, 167104; leave the others alone.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

# one BLAS/OpenMP thread per process, set before numpy loads: `--jobs` processes share the cores, and the
# peers' GP and forest fits ran 2.5x slower oversubscribed (tao:bayesian, 2 cores, 2 jobs)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

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
# Tune + Ray Train time outside training per trial, median (bench/README.md, `overhead.py`, 2026-11-24)
LAUNCH_COST_S = 29.42
TAO_DEFAULTS = ("tao:bayesian", "tao:hyperband")
# compute per run in full trainings: our default needs 15-30 (10-seed medians, 2026-12-02), random search
# about 700 (top 0.1 %); 200 measures ratios up to ~7x exactly and keeps every library's run short
BUDGET_TRAININGS = 200.0


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


def full_training_cost(surrogate: Surrogate, space, n: int = 500, seed: int = 7) -> float:
    """Mean simulated seconds of one 52-epoch training over n random configurations (launch excluded)."""
    rng = np.random.default_rng(seed)
    configs = [space.sample(rng) for _ in range(n)]
    return float(surrogate.predict(configs, np.array([MAX_EPOCH]))[:, 0].mean())


def time_budget(training_s: float, launch_cost: float, trainings: float, workers: int) -> float:
    """Simulated seconds a run may take: `trainings` full trainings (with their launch) of compute,
    shared by `workers`. LCBench tasks differ 20x in epoch cost; a budget in trainings gives every task
    the same room, and 1 and 4 workers the same compute."""
    return trainings * (training_s + launch_cost) / workers


def target_for(surrogate: Surrogate, space, n: int = 20_000, seed: int = 2024) -> tuple[float, float]:
    """(target = 99.9th percentile, best) of val_accuracy at 52 epochs over n random configs."""
    rng = np.random.default_rng(seed)
    configs = [space.sample(rng) for _ in range(n)]
    values = surrogate.predict(configs, np.array([MAX_EPOCH]))[:, Y_NAMES.index(METRIC)]
    return float(np.quantile(values, 0.999)), float(values.max())


def gdino_proxy_space():
    """LCBench's space with a conditional parameter: `optimizer` in {sgd, adam}; `momentum` is searched
    only with sgd (hpo.space.Condition), the other six parameters as in `lcbench_space`."""
    from dataclasses import replace

    from hpo.space import CategoricalDomain, Condition, Param, SearchSpace

    plain = lcbench_space()
    params = [Param("optimizer", CategoricalDomain(("sgd", "adam")), default="sgd")]
    for p in plain.params:
        params.append(replace(p, condition=Condition("optimizer", ("sgd",))) if p.name == "momentum" else p)
    return SearchSpace(tuple(params))


@dataclass
class ProxyObjective:
    """The surrogate under the gdino-proxy space: with adam (momentum inactive) it gets momentum 0.9."""

    inner: LCBenchObjective

    @staticmethod
    def lcbench_config(config: dict) -> dict:
        out = {n: config[n] for n in CONT_NAMES[1:] if n != "momentum"}
        out["momentum"] = float(config["momentum"]) if config.get("optimizer", "sgd") == "sgd" else 0.9
        return out

    def evaluate(self, config: dict, epoch: int) -> dict:
        return self.inner.evaluate(self.lcbench_config(config), epoch)

    def epoch_cost(self, config: dict, epoch: int) -> float:
        return self.inner.epoch_cost(self.lcbench_config(config), epoch)


def space_for(objective: str):
    return gdino_proxy_space() if objective == "gdino-proxy" else lcbench_space()


def make(name: str, space, seed: int) -> Any:
    from gdino.config.automl import AutoMLConfig
    from hpo.algorithms import make_algorithm

    knobs: dict[str, Any] = {"max_epochs": MAX_EPOCH, "reduction_factor": 3, "seed": seed}
    if "+" in name:  # e.g. asha+tpe: ASHA sampling from `automl.searcher` (AutoMLConfig.searcher)
        name, knobs["searcher"] = name.split("+", 1)
    if name == "bayesian":
        knobs["max_recommendations"] = 20  # TAO's default
    return make_algorithm(name, space, AutoMLConfig(algorithm=name, **knobs), METRIC, seed=seed)


@dataclass
class Outcome:
    time_to_target: Optional[float]
    trace: list
    trials: int
    starts: int
    wall_s: float


@dataclass(frozen=True)
class Unit:
    """One run: an algorithm (ours, or `<peer>:<algorithm>`) on one task, seed and worker count."""

    task: str
    name: str
    seed: int
    workers: int
    objective: str
    max_time: float
    target: float
    launch_cost: float


_SURROGATES: dict[str, Any] = {}


def _objective(task: str, kind: str) -> Any:
    if task not in _SURROGATES:
        _SURROGATES[task] = Surrogate(task)
    inner = LCBenchObjective(_SURROGATES[task])
    return ProxyObjective(inner) if kind == "gdino-proxy" else inner


def run_unit(u: Unit) -> Outcome:
    from hpo.algorithms.simulator import Simulator

    objective, space = _objective(u.task, u.objective), space_for(u.objective)
    started = time.perf_counter()
    if ":" in u.name:
        from bench import peers
        from bench.peers.clock import run_peer

        peer = peers.make(u.name, space, u.seed, MAX_EPOCH)
        run = run_peer(peer, objective, METRIC, workers=u.workers, max_time=u.max_time, target=u.target,
                       launch_cost=u.launch_cost)
        return Outcome(run.time_to_target, run.trace, run.trials, run.starts, time.perf_counter() - started)
    alg = make(u.name, space, u.seed)
    limit = alg.num_samples if u.name == "bayesian" else 1_000_000  # others run until the time budget
    # a run stops at the target: its regret curve is flat from there (the time to target is what counts)
    sim = Simulator(alg, objective, workers=u.workers, max_time=u.max_time, target=u.target, max_trials=limit,
                    launch_cost=u.launch_cost)
    run = sim.run()
    starts = sum(t.starts for t in run.trials.values())
    return Outcome(run.time_to(u.target, "max"), run.trace, len(run.trials), starts,
                   time.perf_counter() - started)


def regret_curve(trace: list, best: float, grid: np.ndarray) -> np.ndarray:
    out = np.full(len(grid), np.nan)
    j, current = 0, math.nan
    for i, t in enumerate(grid):
        while j < len(trace) and trace[j][0] <= t:
            current = trace[j][1]
            j += 1
        # before a seed's first eligible trial it has nothing to hand over: regret as if it scored 0
        out[i] = best - current if not math.isnan(current) else best
    return out


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q = np.quantile(np.array(values, dtype=float), [0.25, 0.5, 0.75])
    return float(q[1]), float(q[0]), float(q[2])


def censored_median(times: list[Optional[float]], budget: float) -> tuple[float, bool]:
    """(median time to target, whether it is only a lower bound: it falls on a censored seed)."""
    values = np.array([math.inf if t is None else t for t in times])
    med = float(np.median(values))
    return (float(np.median(np.minimum(values, budget))), True) if not math.isfinite(med) else (med, False)


def summarize(runs: list[Outcome], baseline: list[Outcome], budget: float) -> dict[str, Any]:
    times = [o.time_to_target for o in runs]
    med, lower = censored_median(times, budget)
    capped = [budget if t is None else t for t in times]
    speedups = [(b.time_to_target or budget) / t for b, t in zip(baseline, capped)]
    s_med, s_lo, s_hi = quartiles(speedups)
    random_lower = censored_median([b.time_to_target for b in baseline], budget)[1]
    return {"median_time_to_target_s": med, "median_is_lower_bound": lower,
            "time_q25_s": quartiles(capped)[1], "time_q75_s": quartiles(capped)[2],
            "solved": sum(t is not None for t in times), "censored": sum(t is None for t in times),
            "times_s": [None if t is None else round(t, 1) for t in times],
            "median_speedup_vs_random": s_med, "speedup_q25": s_lo, "speedup_q75": s_hi,
            # random censored -> its true time is longer -> the speed-up is at least this; ours censored -> at most
            "speedup_bound": "lower" if random_lower and not lower else "upper" if lower and not random_lower
            else "none" if not lower else "unknown",
            "median_trials": statistics.median(o.trials for o in runs),
            "median_starts": statistics.median(o.starts for o in runs),
            "wall_s": round(sum(o.wall_s for o in runs), 2)}


def ratio(theirs: dict, ours: dict) -> dict[str, Any]:
    """Their median time over ours (>= 1: ours is no slower), with what censoring allows to say."""
    value = theirs["median_time_to_target_s"] / ours["median_time_to_target_s"]
    bound = "exact"
    if theirs["median_is_lower_bound"] and ours["median_is_lower_bound"]:
        bound = "unknown"
    elif theirs["median_is_lower_bound"]:
        bound = "lower"
    elif ours["median_is_lower_bound"]:
        bound = "upper"
    return {"ratio": value, "bound": bound}


def compare(task_report: dict, default: str) -> dict[str, Any]:
    """Our default against the best peer and TAO's default brains on one task."""
    algs = task_report["algorithms"]
    peers = {a: r for a, r in algs.items() if ":" in a}
    out: dict[str, Any] = {"default": default}
    if not peers or default not in algs:
        return out
    key = lambda a: (peers[a]["median_time_to_target_s"], -peers[a]["solved"])  # noqa: E731
    best = min(peers, key=key)
    out["best_peer"] = best
    # every algorithm of ours against the same rivals: which one the figures support as the default
    out["ours"] = {a: _rivals(algs, best, a) for a in algs if ":" not in a and a != "random"}
    out.update(out["ours"].get(default, {}))
    return out


def _rivals(algs: dict, best_peer: str, ours: str) -> dict[str, Any]:
    out = {"vs_best_peer": ratio(algs[best_peer], algs[ours])}
    for tao in TAO_DEFAULTS:
        if tao in algs:
            out[f"vs_{tao}"] = ratio(algs[tao], algs[ours])
    return out


def _fmt_time(r: dict) -> str:
    return ("≥" if r["median_is_lower_bound"] else "") + f"{r['median_time_to_target_s']:.0f}"


def _fmt_ratio(c: Optional[dict]) -> str:
    if not c:
        return "-"
    mark = {"lower": "≥", "upper": "≤", "unknown": "?"}.get(c["bound"], "")
    return f"{mark}{c['ratio']:.2f}"


def goal_summary(per_task: dict, algorithm: Optional[str] = None) -> dict[str, Any]:
    """Issue 14's goal on these tasks: ratio >= 1.0 vs the best peer on >= 6 of 8, >= 1.5 vs TAO's defaults;
    for our default, or for `algorithm` (one of ours)."""
    comps = [rep["comparison"] if algorithm is None else rep["comparison"].get("ours", {}).get(algorithm, {})
             for rep in per_task.values()]
    comps = [c for c in comps if "vs_best_peer" in c]
    ok = lambda c, need: c["ratio"] >= need and c["bound"] in ("exact", "lower")  # noqa: E731
    out = {"tasks": len(comps), "no_slower_than_best_peer": sum(ok(c["vs_best_peer"], 1.0) for c in comps)}
    for tao in TAO_DEFAULTS:
        key = f"vs_{tao}"
        out[f"at_least_1.5x_faster_than_{tao}"] = sum(ok(c[key], 1.5) for c in comps if key in c)
    return out


def supported_default(runs: dict[str, Any]) -> Optional[dict[str, Any]]:
    """The algorithm of ours these figures support as the default: the most tasks no slower than the best
    peer, summed over the worker counts run; ties broken by the tasks >= 1.5x faster than TAO's defaults."""
    points: dict[str, list[int]] = {}
    for run in runs.values():
        for name, goal in run["goal_by_algorithm"].items():
            if not goal["tasks"]:
                continue
            tao = sum(goal[f"at_least_1.5x_faster_than_{t}"] for t in TAO_DEFAULTS)
            mine = points.setdefault(name, [0, 0])
            mine[0] += goal["no_slower_than_best_peer"]
            mine[1] += tao
    if not points:
        return None
    best = max(points, key=lambda n: tuple(points[n]))
    return {"algorithm": best, "points": {n: {"no_slower_than_best_peer": p[0], "at_least_1.5x_faster_than_tao": p[1]}
                                          for n, p in points.items()}}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["3945", "7593"])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--algorithms", nargs="+", default=list(DEFAULT_ALGORITHMS), help="ours")
    parser.add_argument("--peers", nargs="*", default=[], help="tao smac synetune dehb optuna, or peer:algorithm")
    parser.add_argument("--workers", nargs="+", type=int, default=[1])
    parser.add_argument("--launch-cost", type=float, default=LAUNCH_COST_S,
                        help="simulated seconds per trial start and per resume (default: Tune + Train, measured)")
    parser.add_argument("--objective", choices=("lcbench", "gdino-proxy"), default="lcbench")
    parser.add_argument("--budget-trainings", type=float, default=BUDGET_TRAININGS,
                        help="compute per run, in full 52-epoch trainings of the task (launch included), "
                             "shared by the workers (default %(default)s)")
    parser.add_argument("--max-time", type=float, default=None,
                        help="simulated seconds per run, the same for every task (instead of --budget-trainings)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="runs in parallel processes")
    parser.add_argument("--png", default="search.png")
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument("--from-units", nargs="+", default=None, metavar="JSONL",
                        help="no runs: report the units logged in these FILE.units.jsonl (a cut or merged run)")
    args = parser.parse_args(argv)
    loaded = _load_units(args.from_units) if args.from_units else None
    if loaded:
        args.tasks = list(dict.fromkeys(u.task for u in loaded))
        args.workers = sorted({u.workers for u in loaded})
        args.seeds = max(u.seed for u in loaded) + 1
        first = next(iter(loaded))
        args.objective, args.launch_cost = first.objective, first.launch_cost
        args.algorithms = list(dict.fromkeys(u.name for u in loaded if ":" not in u.name))
        args.peers = list(dict.fromkeys(u.name for u in loaded if ":" in u.name))
    held_out = [t for t in args.tasks if t not in DEVELOPMENT_TASKS]
    if held_out:
        print(f"note: tasks {held_out} are held out for independent checks", file=sys.stderr)
    from gdino.config.automl import DEFAULT_ALGORITHM

    peer_algs = _peer_algorithms(args.peers)
    ours = ["random"] + [a for a in args.algorithms if a != "random"]
    names = ours + list(peer_algs)
    report: dict[str, Any] = {"objective": args.objective, "seeds": args.seeds,
                              "budget": (f"{args.max_time:.0f} simulated s per run" if args.max_time else
                                         f"{args.budget_trainings:g} full trainings of compute per run"),
                              "launch_cost_s": args.launch_cost, "default_algorithm": DEFAULT_ALGORITHM,
                              "peer_settings": peer_algs, "runs": {}}
    started = time.perf_counter()
    targets, budgets = {}, {}
    for task in args.tasks:
        surrogate = Surrogate(task)
        targets[task] = target_for(surrogate, lcbench_space())
        training_s = full_training_cost(surrogate, lcbench_space())
        for w in args.workers:
            budgets[task, w] = args.max_time or time_budget(training_s, args.launch_cost, args.budget_trainings, w)
    if loaded:
        budgets = {(u.task, u.workers): u.max_time for u in loaded}
    # task by task, seed by seed: a run cut short still has every algorithm on its first tasks and seeds
    units = [Unit(task, name, seed, w, args.objective, budgets[task, w], targets[task][0], args.launch_cost)
             for task in args.tasks for seed in range(args.seeds) for w in args.workers for name in names]
    outcomes = loaded if loaded is not None else \
        _run_all(units, args.jobs, args.json_path + ".units.jsonl" if args.json_path else None)
    curves: dict[int, dict[str, dict[str, np.ndarray]]] = {}
    for w in args.workers:
        per_task: dict[str, Any] = {}
        curves[w] = {}
        for task in args.tasks:
            target, best = targets[task]
            budget = budgets[task, w]
            grid = np.geomspace(100.0, budget, 200)

            def key(n: str, s: int, task: str = task, w: int = w, target: float = target,
                    budget: float = budget) -> Unit:
                return Unit(task, n, s, w, args.objective, budget, target, args.launch_cost)

            # a merged or cut log: the algorithms run here, on the seeds all of them finished
            here = [n for n in names if any(key(n, s) in outcomes for s in range(args.seeds))]
            seeds = [s for s in range(args.seeds) if all(key(n, s) in outcomes for n in here)]
            if not seeds or "random" not in here:
                continue
            runs = {n: [outcomes[key(n, s)] for s in seeds] for n in here}
            rep: dict[str, Any] = {"target": target, "best_of_20000": best, "seeds_used": seeds,
                                   "max_time_s": round(budget, 1),
                                   "regret_grid_s": [round(float(g), 1) for g in grid], "algorithms": {}}
            curves[w][task] = {"grid": grid}
            for n in here:
                entry = summarize(runs[n], runs["random"], budget)
                entry["default"] = n == DEFAULT_ALGORITHM
                if ":" in n:
                    entry["settings"] = peer_algs[n]
                regrets = np.array([regret_curve(o.trace, best, grid) for o in runs[n]])
                bands = np.nanpercentile(regrets, [25, 50, 75], axis=0) if np.isfinite(regrets).any() \
                    else np.full((3, len(grid)), np.nan)
                curves[w][task][n] = bands
                entry["median_regret_on_grid"] = [None if not math.isfinite(v) else round(float(v), 4)
                                                  for v in bands[1]]
                rep["algorithms"][n] = entry
            rep["comparison"] = compare(rep, DEFAULT_ALGORITHM)
            per_task[task] = rep
        report["runs"][f"workers={w}"] = {
            "workers": w, "tasks": per_task, "goal": goal_summary(per_task),
            "goal_by_algorithm": {a: goal_summary(per_task, a) for a in ours if a != "random"}}
    report["supported_default"] = supported_default(report["runs"])
    report["wall_s"] = time.perf_counter() - started
    _print_table(report)
    _plot(curves, args.png, DEFAULT_ALGORITHM, report)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=1))
    return 0


def _load_units(paths: list[str]) -> dict[Unit, Outcome]:
    out: dict[Unit, Outcome] = {}
    for path in paths:
        for line in Path(path).read_text().splitlines():
            row = json.loads(line)
            unit = Unit(**{k: row[k] for k in Unit.__dataclass_fields__})
            out[unit] = Outcome(row["time_to_target"], [tuple(p) for p in row["trace"]], row["trials"],
                                row["starts"], row["wall_s"])
    return out


def _peer_algorithms(requested: list[str]) -> dict[str, dict]:
    from bench import peers

    out: dict[str, dict] = {}
    for item in requested:
        peer = item.split(":", 1)[0]
        why = peers.missing(peer)
        if why:
            print(f"peer {peer} skipped: {why}", file=sys.stderr)
            continue
        algs = peers.algorithms(peer, named=":" in item)
        if ":" in item:
            if item not in algs:
                raise SystemExit(f"unknown peer algorithm {item}; {peer} has {', '.join(algs)}")
            algs = {item: algs[item]}
        else:
            for name, why in peers.on_request(peer).items():
                print(f"{peer}:{name} runs only when named (--peers {peer}:{name}): {why}", file=sys.stderr)
        out.update(algs)
    return out


def _run_all(units: list[Unit], jobs: int, log_path: Optional[str] = None) -> dict[Unit, Outcome]:
    """Every unit's outcome; with `log_path`, one JSON line per finished unit (what survives a cut run)."""
    total, done, out = len(units), 0, {}
    started = time.perf_counter()
    log = open(log_path, "a") if log_path else None

    def progress(u: Unit, o: Outcome) -> None:
        nonlocal done
        done += 1
        if log:
            log.write(json.dumps({**u.__dict__, "time_to_target": o.time_to_target, "trials": o.trials,
                                  "starts": o.starts, "wall_s": round(o.wall_s, 2), "trace": o.trace}) + "\n")
            log.flush()
        if done % 20 == 0 or o.wall_s > 60:
            print(f"[{done}/{total}] {time.perf_counter() - started:.0f}s  {u.name} task {u.task} seed {u.seed} "
                  f"w={u.workers}: {o.wall_s:.1f}s", file=sys.stderr, flush=True)

    if jobs <= 1:
        for u in units:
            out[u] = run_unit(u)
            progress(u, out[u])
        return out
    # slow peers first, so the pool does not end on one long straggler
    order = sorted(units, key=lambda u: (not u.name.startswith(("smac", "tao:bayesian", "synetune:bohb")),))
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for u, o in zip(order, pool.map(run_unit, order, chunksize=1)):
            out[u] = o
            progress(u, o)
    return out


def _print_table(report: dict) -> None:
    print(f"LCBench surrogate ({report['objective']}), simulated time, up to {report['seeds']} seeds, "
          f"launch cost {report['launch_cost_s']:.1f} s per start/resume, budget {report['budget']} "
          f"(>= : median censored at the budget, a lower bound)")
    for key, run in report["runs"].items():
        print(f"\n== {key}")
        print(f"{'task':>7} {'algorithm':<22} {'solved':>7} {'median t->target':>17} "
              f"{'speed-up vs random (median [q25, q75])':>40} {'best peer/ours':>14}")
        for task, rep in run["tasks"].items():
            comp = rep["comparison"]
            for a, r in rep["algorithms"].items():
                tag = "*" if r["default"] else " "
                extra = _fmt_ratio(comp.get("vs_best_peer")) if r["default"] else ""
                if not r["default"] and a in comp.get("ours", {}):
                    extra = f"({comp['ours'][a]['vs_best_peer']['ratio']:.2f})"
                print(f"{task:>7} {tag}{a:<21} {r['solved']:>4}/{r['solved'] + r['censored']:<2} {_fmt_time(r):>17} "
                      f"{r['median_speedup_vs_random']:>22.2f}x [{r['speedup_q25']:.2f}, {r['speedup_q75']:.2f}]"
                      f" {extra:>14}")
            print(f"{'':>7} -> budget {rep['max_time_s']:.0f} simulated s")
            if "best_peer" in comp:
                tao = "  ".join(f"{t}/ours {_fmt_ratio(comp.get('vs_' + t))}" for t in TAO_DEFAULTS)
                print(f"{'':>7} -> best peer {comp['best_peer']}: best peer/ours {_fmt_ratio(comp['vs_best_peer'])}"
                      f"  {tao}")
        print(f"goal ({key}): {run['goal']}")
        for a, goal in run["goal_by_algorithm"].items():
            if goal["tasks"]:
                print(f"    {a:<14} no slower than the best peer on {goal['no_slower_than_best_peer']}/{goal['tasks']}"
                      f", >= 1.5x tao:bayesian on {goal['at_least_1.5x_faster_than_tao:bayesian']}"
                      f", >= 1.5x tao:hyperband on {goal['at_least_1.5x_faster_than_tao:hyperband']}")
    chosen = report.get("supported_default")
    if chosen:
        tally = chosen["points"][chosen["algorithm"]]
        print(f"the default these figures support: {chosen['algorithm']} (no slower than the best peer on "
              f"{tally['no_slower_than_best_peer']} task-runs, >= 1.5x TAO's defaults on "
              f"{tally['at_least_1.5x_faster_than_tao']}); the product's default: {report['default_algorithm']}")
    print(f"wall time {report['wall_s']:.0f} s")


def _plot(curves: dict, path: str, default: str, report: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [w for w in curves if curves[w]]
    tasks = list(dict.fromkeys(t for w in rows for t in curves[w]))
    if not rows:
        return
    fig, axes = plt.subplots(len(rows), len(tasks), figsize=(4.2 * len(tasks), 3.6 * len(rows)), squeeze=False)
    for i, w in enumerate(rows):
        for j, task in enumerate(tasks):
            ax, per_alg = axes[i][j], curves[w].get(task)
            if per_alg is None:
                ax.set_visible(False)
                continue
            grid = per_alg["grid"]
            comp = report["runs"][f"workers={w}"]["tasks"][task]["comparison"]
            shown = [(default, f"ours: {default}", "C0"), ("random", "random", "0.6")]
            if comp.get("best_peer"):
                shown.append((comp["best_peer"], f"best peer: {comp['best_peer']}", "C3"))
            shown += [(t, f"TAO default: {t}", c) for t, c in zip(TAO_DEFAULTS, ("C2", "C1")) if t in per_alg]
            for a, label, color in shown:
                if a not in per_alg:
                    continue
                lo, med, hi = (np.maximum(b, 1e-3) for b in per_alg[a])
                ax.plot(grid, med, label=label, color=color, lw=1.8 if a == default else 1.2)
                ax.fill_between(grid, lo, hi, color=color, alpha=0.15, lw=0)
            ax.set(xscale="log", yscale="log", title=f"task {task}, {w} worker(s)", xlabel="simulated time (s)",
                   ylabel="regret (val_accuracy points)")
            ax.legend(fontsize=6)
    fig.suptitle("median regret, quartile bands (JSON: all)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def run_with_fixed_hash_seed() -> None:
    """Re-execute this process with PYTHONHASHSEED=0 unless it already has it. SMAC3's runs depend on
    str hashes (its set orders), so one seed gave a different smac:hyperband run in every invocation
    (76 of 80 units differed between two runs of the same command); the worker processes inherit it."""
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], {**os.environ, "PYTHONHASHSEED": "0"})


if __name__ == "__main__":
    run_with_fixed_hash_seed()
    raise SystemExit(main())
