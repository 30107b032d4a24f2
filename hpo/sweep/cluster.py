"""Starting or joining the Ray cluster a sweep runs on, and the checks that turn Ray's silent hangs
into errors (notes/stack.md §2, notes/ray.md §7.1):

1. no dashboard / `ray[default]` missing: the placement-group cleaner needs the State API;
2. a trial asking for more than the cluster has (hpo.sweep.resources.check_trial_fits);
3. a second Ray instance on the host: the cleaner, running inside a worker, finds the cluster from
   RAY_ADDRESS, else by scanning processes ("Found multiple active Ray instances"), and dies.

The fix for 3 is to make RAY_ADDRESS point at *our* cluster in every Ray process: for a local
instance the GCS port is chosen up front and exported before the raylet starts, so every worker
inherits it; for a given address it is also passed as a job-level runtime env variable. The check
for 1 and 3 is one probe run inside a worker: the same State API call the cleaner makes.
"""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from gdino.errors import DependencyMissing, SweepError

log = logging.getLogger(__name__)

# A worker group that cannot be placed fails after this long instead of Ray's default of retrying
# a 60 s timeout forever (controller_failure_limit=-1).
WORKER_GROUP_START_TIMEOUT_S = 120
# Ray's unix sockets live at <temp dir>/session_<YYYY-MM-DD_HH-MM-SS_ffffff>_<pid>/sockets/plasma_store[.N]
# (ray/_private/node.py: _session_name, _sockets_dir, _prepare_socket_file); Linux caps an AF_UNIX path at
# 107 bytes (ray/_private/utils.py validate_socket_filepath). The session part is up to 66 bytes (7-digit
# pid, a ".N" suffix); 4 more for safety leave 37 bytes for the temp dir itself.
AF_UNIX_MAX_BYTES = 107
RAY_SOCKET_SUFFIX_BYTES = 66 + 4
MAX_RAY_TEMP_DIR_BYTES = AF_UNIX_MAX_BYTES - RAY_SOCKET_SUFFIX_BYTES
_SWEEP_ENV = {
    "RAY_AUTH_MODE": "disabled",            # concurrent local clusters overwrite ~/.ray/auth_token (§7.3)
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": str(WORKER_GROUP_START_TIMEOUT_S),
}


@dataclass
class RayCluster:
    address: str
    started_here: bool
    connected_here: bool = False  # ray.init(address=...) was ours: disconnect when done
    temp_dir: Optional[str] = None
    _saved_env: dict[str, Optional[str]] = field(default_factory=dict)

    def resources(self) -> dict[str, float]:
        import ray

        return {k: float(v) for k, v in ray.cluster_resources().items()}


def require_ray_default() -> None:
    """`ray[default]` brings the dashboard whose State API the placement-group cleaner needs."""
    missing = [m for m in ("aiohttp", "aiohttp_cors", "opencensus", "prometheus_client")
               if importlib.util.find_spec(m) is None]
    if missing:
        raise DependencyMissing(
            f"Ray's dashboard packages are missing ({', '.join(missing)}): without the dashboard, a Ray Train "
            "trial stopped early leaks its placement group and the next trial waits forever",
            hint="pip install 'ray[default,tune,train]'")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ray_temp_dir_fits(path: str | Path) -> bool:
    """Ray's socket paths under `path` stay within AF_UNIX's 107 bytes."""
    return len(str(path).encode("utf-8")) <= MAX_RAY_TEMP_DIR_BYTES


def private_temp_dir(sweep_dir: Path) -> str:
    """Ray's temp dir: `<sweep dir>/ray` when it is short enough for Ray's unix sockets (then the Ray
    logs sit beside the sweep), else a fresh `/tmp/gdray-XXXXXXXX` (/tmp itself, not $TMPDIR, which
    may be long)."""
    candidate = Path(sweep_dir).resolve() / "ray"
    if ray_temp_dir_fits(candidate):
        candidate.mkdir(parents=True, exist_ok=True)
        return str(candidate)
    fresh = tempfile.mkdtemp(prefix="gdray-", dir="/tmp")
    log.info("Ray's temp dir is %s (%s is too long for Ray's unix sockets)", fresh, candidate)
    return fresh


def _set_env(values: dict[str, str], saved: dict[str, Optional[str]]) -> None:
    for key, value in values.items():
        saved.setdefault(key, os.environ.get(key))
        os.environ[key] = value


def _restore_env(saved: dict[str, Optional[str]]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def connect(address: Optional[str], sweep_dir: Path, *, num_cpus: Optional[int] = None,
            object_store_memory: Optional[int] = None, secret_env: Optional[dict[str, str]] = None) -> RayCluster:
    """Join `address`, or start a private local instance (all CPUs, dashboard on) when it is None.

    `secret_env` (hpo.secrets: e.g. TAO_ENCRYPTION_KEY) is set in this process only, until disconnect.
    Not in Ray's runtime_env: Ray's runtime_env agent logs env_vars in plain text into
    <temp dir>/session_*/logs/runtime_env_agent.log on every node ("Creating runtime env: {...}", Ray 2.60),
    so trials get their secrets in memory instead (hpo.sweep.driver.TrialContext.secret_values).
    Ray already initialised in this process (a test fixture, a notebook) is used as it is.
    """
    import ray

    require_ray_default()
    saved: dict[str, Optional[str]] = {}
    _set_env(_SWEEP_ENV, saved)
    secret_env = dict(secret_env or {})
    _set_env(secret_env, saved)  # this process too (promotion, the tracker), until disconnect restores it
    if ray.is_initialized():
        gcs = ray.get_runtime_context().gcs_address
        _set_env({"RAY_ADDRESS": gcs}, saved)
        return RayCluster(gcs, started_here=False, _saved_env=saved)
    if address:
        _set_env({"RAY_ADDRESS": address}, saved)
        try:
            ray.init(address=address, runtime_env={"env_vars": {"RAY_ADDRESS": address, **_SWEEP_ENV}},
                     log_to_driver=False)
        except Exception as err:  # ConnectionError, ValueError, TimeoutError from Ray's connect
            _restore_env(saved)
            raise SweepError(f"cannot connect to the Ray cluster at {address}: {err}",
                             hint="check automl.ray_address / --ray-address (host:port of the GCS, "
                                  "e.g. 10.0.0.1:6379) and that the cluster runs Ray 2.60") from err
        return RayCluster(address, started_here=False, connected_here=True, _saved_env=saved)
    return _start_local(sweep_dir, num_cpus, object_store_memory, saved)


def _start_local(sweep_dir: Path, num_cpus: Optional[int], object_store_memory: Optional[int],
                 saved: dict[str, Optional[str]]) -> RayCluster:
    import ray
    from ray._private.services import get_node_ip_address

    temp_dir = private_temp_dir(sweep_dir)
    port = _free_port()
    gcs = f"{get_node_ip_address()}:{port}"
    # Exported before the raylet starts, so every worker (and the placement-group cleaner) inherits it.
    _set_env({"RAY_GCS_SERVER_PORT": str(port), "RAY_ADDRESS": gcs}, saved)
    # The raylet warns ("N worker processes have been started ... 4x the maximum expected startup
    # concurrency") once the workers reach 4x this value, which defaults to the CPU count: on a small machine
    # a sweep's drivers, Train controllers, workers and queue actors pass it as a matter of course
    # (https://github.com/ray-project/ray/issues/3644). Raised for the raylet we start, unless the user set it.
    if "RAY_worker_maximum_startup_concurrency" not in os.environ:
        _set_env({"RAY_worker_maximum_startup_concurrency": str(max(16, num_cpus or os.cpu_count() or 1))}, saved)
    try:
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=True,
                 dashboard_port=_free_port(), _temp_dir=temp_dir, object_store_memory=object_store_memory,
                 log_to_driver=False)
    except Exception as err:
        _restore_env(saved)
        raise SweepError(f"could not start a local Ray instance: {err}",
                         hint="see the Ray logs under " + temp_dir) from err
    finally:
        os.environ.pop("RAY_GCS_SERVER_PORT", None)  # only this start may use the fixed port
        saved.pop("RAY_GCS_SERVER_PORT", None)
    actual = ray.get_runtime_context().gcs_address
    if actual != gcs:  # RAY_ADDRESS would point elsewhere: exactly hang 3
        _set_env({"RAY_ADDRESS": actual}, saved)
        log.warning("Ray's GCS came up on %s, not %s; workers may not find it", actual, gcs)
    return RayCluster(actual, started_here=True, temp_dir=temp_dir, _saved_env=saved)


def disconnect(cluster: RayCluster) -> None:
    """Shut down what we started (only this process's instance, never `ray stop`) and restore the env."""
    import ray

    if (cluster.started_here or cluster.connected_here) and ray.is_initialized():
        ray.shutdown()  # our instance, or our connection to a cluster (the cluster itself lives on)
    _restore_env(cluster._saved_env)


def _state_api_probe() -> str:
    """Runs inside a Ray worker: the call the placement-group cleaner depends on."""
    from ray.util.state import list_actors

    list_actors(limit=1, timeout=20, raise_on_missing_output=False)
    return os.environ.get("RAY_ADDRESS", "")


def preflight(cluster: RayCluster) -> None:
    """Hangs 1 and 3: a worker must reach the State API of *this* cluster, or trials stopped early
    leak their placement groups and the sweep waits forever."""
    import ray

    probe = ray.remote(num_cpus=0)(_state_api_probe)
    try:
        worker_address = ray.get(probe.remote(), timeout=120)
    except Exception as err:
        text = str(err)
        if "multiple active Ray instances" in text:
            raise SweepError(
                "Ray workers cannot tell which Ray cluster to use: several Ray instances run on this host",
                hint="export RAY_ADDRESS=<host:port> of the sweep's cluster before `ray start`, or let the "
                     "sweep start its own private instance (no ray_address)") from err
        raise SweepError(
            f"the Ray State API is unreachable from the workers ({text.splitlines()[-1] if text else err})",
            hint="start the cluster with the dashboard (`ray start --head --include-dashboard=true`, "
                 "ray[default] installed); without it trials stopped early leak their resources") from err
    if worker_address and worker_address != cluster.address:
        log.warning("Ray workers see RAY_ADDRESS=%s but the sweep uses %s", worker_address, cluster.address)


@contextlib.contextmanager
def ray_cluster(address: Optional[str], sweep_dir: Path, **kwargs) -> Iterator[RayCluster]:
    cluster = connect(address, sweep_dir, **kwargs)
    try:
        preflight(cluster)
        yield cluster
    finally:
        disconnect(cluster)
