"""What one trial asks of the cluster, and how many trials fit at once.

Hang 2 of notes/stack.md §2: a trial that asks for more CPUs/GPUs than the cluster has never errors
in Ray 2.60 (the worker group times out and is retried forever), so the request is checked here,
before anything launches, and concurrency is capped by the limiting resource (notes/ray.md §7.2).
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from gdino.errors import SweepError

log = logging.getLogger(__name__)

# The Tune driver only waits on its TorchTrainer, so it takes a sliver of a CPU (notes/stack.md §2).
TRAIN_DRIVER_CPUS = 0.01


@dataclass(frozen=True)
class TrialResources:
    """One trial: `num_workers` Train workers, each with `cpus_per_worker` CPUs and `gpus_per_worker` GPUs.

    backend "train": a Tune driver (TRAIN_DRIVER_CPUS) + a TorchTrainer worker group.
    backend "function": training runs inside the Tune actor itself (one worker's worth of resources).
    """

    backend: str
    num_workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    driver_cpus: float

    @property
    def use_gpu(self) -> bool:
        return self.gpus_per_worker > 0

    @property
    def cpus(self) -> float:
        return self.driver_cpus + self.num_workers * self.cpus_per_worker * (self.backend == "train")

    @property
    def gpus(self) -> float:
        return self.num_workers * self.gpus_per_worker

    @property
    def accelerator_count(self) -> float:
        """What the gpu_hours budget charges per second of trial wall time (CPU-hours on CPU)."""
        return self.gpus if self.use_gpu else self.cpus

    def driver_resources(self) -> dict[str, float]:
        if self.backend == "train":
            return {"CPU": self.driver_cpus}
        return {"CPU": self.driver_cpus, "GPU": self.gpus_per_worker}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_trial_resources(spec: Mapping[str, Any], automl: Any, cluster: Mapping[str, float], *,
                         backend: str = "train") -> TrialResources:
    """GPU trials use train.num_gpus x train.num_nodes workers (one GPU each) when the cluster has GPUs;
    otherwise `automl.cpu_workers` CPU workers at `automl.cpus_per_worker`."""
    train = spec.get("train", {}) or {}
    wanted_gpus = int(train.get("num_gpus", 0) or 0) * max(1, int(train.get("num_nodes", 1) or 1))
    have_gpus = float(cluster.get("GPU", 0) or 0)
    if wanted_gpus > 0 and have_gpus > 0:
        workers, cpus, gpus = wanted_gpus, float(automl.cpus_per_worker), 1.0
    else:
        if wanted_gpus > 0:
            log.warning("the spec asks for %d GPU(s) but the Ray cluster has none: trials use %d CPU worker(s)",
                        wanted_gpus, automl.cpu_workers)
        workers, cpus, gpus = int(automl.cpu_workers), float(automl.cpus_per_worker), 0.0
    if backend == "function":
        return TrialResources("function", 1, cpus, gpus, driver_cpus=cpus)
    return TrialResources("train", workers, cpus, gpus, driver_cpus=TRAIN_DRIVER_CPUS)


def check_trial_fits(res: TrialResources, cluster: Mapping[str, float]) -> None:
    """Refuse a trial the cluster can never place (Ray would retry it silently forever)."""
    have_cpus = float(cluster.get("CPU", 0) or 0)
    have_gpus = float(cluster.get("GPU", 0) or 0)
    if res.cpus > have_cpus + 1e-9:
        raise SweepError(
            f"one trial needs {res.cpus:g} CPUs ({res.num_workers} worker(s) x {res.cpus_per_worker:g} + "
            f"{res.driver_cpus:g} for the trial driver) but the Ray cluster has {have_cpus:g}",
            hint="lower automl.cpu_workers or automl.cpus_per_worker (about 0.9 leaves room for the driver), "
                 "or add CPUs to the cluster")
    if res.gpus > have_gpus + 1e-9:
        raise SweepError(
            f"one trial needs {res.gpus:g} GPUs (train.num_gpus x train.num_nodes) but the cluster has {have_gpus:g}",
            hint="lower train.num_gpus / train.num_nodes or add GPU nodes")


def max_concurrent_trials(res: TrialResources, cluster: Mapping[str, float], requested: int | None) -> int:
    """Trials that fit side by side on the limiting resource, never above the user's cap."""
    fits = math.floor((float(cluster.get("CPU", 0) or 0) + 1e-9) / res.cpus) if res.cpus > 0 else 1 << 30
    if res.gpus > 0:
        fits = min(fits, math.floor((float(cluster.get("GPU", 0) or 0) + 1e-9) / res.gpus))
    fits = max(1, fits)
    return min(fits, requested) if requested else fits
