"""CPU / memory (and GPU where NVML is present) samples for trial runs.

MLflow's own monitor needs psutil, which `ray[default]` does not always bring; without it we read
/proc ourselves. Metric names follow MLflow's (`system/cpu_utilization_percentage`, ...), so the MLflow
UI's "System metrics" tab shows them either way.
"""
from __future__ import annotations

import os
from typing import Optional

PREFIX = "system/"


class SystemSampler:
    """`sample()` returns the current metrics; CPU utilisation is measured since the previous sample."""

    def __init__(self) -> None:
        self._previous_cpu: Optional[tuple[int, int]] = _proc_cpu_times()
        try:
            import psutil  # noqa: F401

            self._psutil = True
        except ImportError:
            self._psutil = False
        self._gpu = _gpu_monitor()

    def sample(self) -> dict[str, float]:
        metrics = self._psutil_sample() if self._psutil else self._proc_sample()
        if self._gpu is not None:
            try:
                self._gpu.collect_metrics()
                metrics.update(self._gpu.aggregate_metrics())
                self._gpu.clear_metrics()
            except Exception:  # noqa: BLE001 - a GPU query failing must not stop CPU sampling
                self._gpu = None
        return {f"{PREFIX}{k}": float(v) for k, v in metrics.items()}

    def _psutil_sample(self) -> dict[str, float]:
        import psutil

        memory = psutil.virtual_memory()
        return {"cpu_utilization_percentage": psutil.cpu_percent(),
                "system_memory_usage_megabytes": memory.used / 1e6,
                "system_memory_usage_percentage": memory.used / memory.total * 100}

    def _proc_sample(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        current = _proc_cpu_times()
        if current and self._previous_cpu:
            busy, total = current[0] - self._previous_cpu[0], current[1] - self._previous_cpu[1]
            metrics["cpu_utilization_percentage"] = 100.0 * busy / total if total > 0 else 0.0
        self._previous_cpu = current
        memory = _proc_meminfo()
        if memory:
            used = memory["MemTotal"] - memory.get("MemAvailable", memory.get("MemFree", 0))
            metrics["system_memory_usage_megabytes"] = used * 1024 / 1e6
            metrics["system_memory_usage_percentage"] = 100.0 * used / memory["MemTotal"]
        return metrics


def _proc_cpu_times() -> Optional[tuple[int, int]]:
    """(busy jiffies, total jiffies) over all CPUs, from the first line of /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _proc_meminfo() -> dict[str, int]:
    """kB values from /proc/meminfo."""
    info: dict[str, int] = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                info[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        return {}
    return info if "MemTotal" in info else {}


def _gpu_monitor():
    if os.environ.get("CUDA_VISIBLE_DEVICES") == "":
        return None
    try:
        from mlflow.system_metrics.metrics.gpu_monitor import GPUMonitor

        return GPUMonitor()
    except Exception:  # noqa: BLE001 - no pynvml, no driver, no GPU: CPU metrics only
        return None
