"""What one trial asks of the cluster, and how many trials fit at once.

Hang 2 of notes/stack.md §2: a trial that asks for more CPUs/GPUs than the cluster has never errors
in Ray 2.60 (the worker group times out and is retried forever), so the request is checked here,
before anything launches, and concurrency is capped by the limiting resource (notes/ray.md §7.2).
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
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
    # custom Ray resources each training process asks for (automl.trial_resources): how a sweep pins
    # its trials to a node type of a cluster, e.g. {"gpu_node": 1}
    custom: dict[str, float] = field(default_factory=dict)

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
        return {"CPU": self.driver_cpus, "GPU": self.gpus_per_worker, **self.custom}

    def worker_resources(self) -> dict[str, float]:
        """What one Train worker asks for (the function backend trains in the trial driver itself)."""
        return {"CPU": self.cpus_per_worker, **({"GPU": self.gpus_per_worker} if self.use_gpu else {}),
                **self.custom}

    def custom_total(self) -> dict[str, float]:
        """Custom resources one whole trial holds."""
        count = self.num_workers if self.backend == "train" else 1
        return {name: amount * count for name, amount in self.custom.items()}

    def single_process_resources(self) -> dict[str, float]:
        """One process with one trial's compute (promotion, zero-shot evaluation): its CPUs, one GPU
        when trials use GPUs, and its custom resources, so it lands on the same kind of node."""
        cpus = self.num_workers * self.cpus_per_worker if self.backend == "train" else self.driver_cpus
        out = {"CPU": cpus, **self.custom}
        if self.use_gpu:
            out["GPU"] = min(1.0, self.gpus_per_worker)
        return out

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
    custom = {str(k): float(v) for k, v in (getattr(automl, "trial_resources", None) or {}).items()}
    if backend == "function":
        return TrialResources("function", 1, cpus, gpus, driver_cpus=cpus, custom=custom)
    return TrialResources("train", workers, cpus, gpus, driver_cpus=TRAIN_DRIVER_CPUS, custom=custom)


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
    for name, amount in res.custom_total().items():
        have = float(cluster.get(name, 0) or 0)
        if amount > have + 1e-9:
            raise SweepError(
                f"one trial needs {amount:g} of the custom Ray resource {name!r} (automl.trial_resources) but "
                f"the cluster has {have:g}",
                hint=f"start a node with `ray start --resources='{{\"{name}\": N}}'` (cluster.yaml: the worker "
                     "type's resources), or change automl.trial_resources")


def max_concurrent_trials(res: TrialResources, cluster: Mapping[str, float], requested: int | None) -> int:
    """Trials that fit side by side on the limiting resource, never above the user's cap."""
    fits = math.floor((float(cluster.get("CPU", 0) or 0) + 1e-9) / res.cpus) if res.cpus > 0 else 1 << 30
    if res.gpus > 0:
        fits = min(fits, math.floor((float(cluster.get("GPU", 0) or 0) + 1e-9) / res.gpus))
    for name, amount in res.custom_total().items():
        if amount > 0:
            fits = min(fits, math.floor((float(cluster.get(name, 0) or 0) + 1e-9) / amount))
    fits = max(1, fits)
    return min(fits, requested) if requested else fits
