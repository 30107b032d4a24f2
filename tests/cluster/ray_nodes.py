"""Ray nodes started with `ray start --block` on loopback for the cluster tests (private temp dir, free
ports), stopped through the PIDs the test started: `ray start --block` runs in its own session, so its
process group is exactly our node; any straggler is found by our unique temp dir in its command line.
Never `ray stop` (other people's Ray may be running on the machine)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

import requests
from waiting import wait_for  # noqa: E402

RAY = Path(sys.executable).with_name("ray")
START_TIMEOUT_S = 180
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "MLFLOW_ENABLE_TELEMETRY": "false"}


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class LocalRayNode:
    """A head node (`head_of=None`) or a worker node joining `head_of`, all on 127.0.0.1."""

    def __init__(self, *, num_cpus: int, resources: Optional[dict[str, float]] = None,
                 head_of: Optional["LocalRayNode"] = None) -> None:
        self.head_of = head_of
        self.num_cpus = num_cpus
        self.resources = resources or {}
        # short: Ray's socket paths under it must stay below 107 characters
        self.temp_dir = head_of.temp_dir if head_of else tempfile.mkdtemp(prefix="rj", dir="/tmp")
        self.marker = tempfile.mkdtemp(prefix="rjn", dir="/tmp")  # ours alone: finds our processes
        (self.gcs, self.dashboard, self.client, self.agent_http, self.agent_grpc, self.runtime_env,
         self.metrics, self.node_manager, self.object_manager) = free_ports(9)
        if head_of:
            self.gcs, self.dashboard = head_of.gcs, head_of.dashboard
        self.dashboard_url = f"http://127.0.0.1:{self.dashboard}"
        self.address = f"127.0.0.1:{self.gcs}"
        self.process: Optional[subprocess.Popen] = None
        self.node_id: Optional[str] = None

    def command(self) -> list[str]:
        common = ["--block", "--node-ip-address=127.0.0.1", f"--num-cpus={self.num_cpus}",
                  "--object-store-memory=150000000", f"--resources={json.dumps(self.resources)}",
                  f"--dashboard-agent-listen-port={self.agent_http}", f"--dashboard-agent-grpc-port={self.agent_grpc}",
                  f"--runtime-env-agent-port={self.runtime_env}", f"--metrics-export-port={self.metrics}",
                  f"--node-manager-port={self.node_manager}", f"--object-manager-port={self.object_manager}",
                  "--disable-usage-stats"]
        if self.head_of:
            return [str(RAY), "start", f"--address={self.address}", *common]
        return [str(RAY), "start", "--head", f"--port={self.gcs}", "--include-dashboard=true",
                "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard}",
                f"--ray-client-server-port={self.client}", f"--temp-dir={self.temp_dir}", *common]

    def start(self) -> None:
        env = {**os.environ, **RAY_ENV, "RAY_ADDRESS": self.address, "GDINO_TEST_NODE_MARKER": self.marker}
        log = open(Path(self.marker) / "ray-start.log", "ab")
        self.process = subprocess.Popen(self.command(), env=env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        if not self.head_of:
            wait_for(self._dashboard_up, START_TIMEOUT_S, "the Ray head's dashboard")
        self.node_id = str(wait_for(self._registered_node_id, START_TIMEOUT_S, "the node's registration"))

    def _dashboard_up(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError((Path(self.marker) / "ray-start.log").read_text()[-3000:])
        try:
            return requests.get(f"{self.dashboard_url}/api/version", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def _registered_node_id(self) -> Optional[str]:
        """This node's id, read from the cluster's node table by its node-manager port."""
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError((Path(self.marker) / "ray-start.log").read_text()[-3000:])
        try:
            nodes = requests.get(f"{self.dashboard_url}/nodes?view=summary", timeout=5).json()
        except (requests.RequestException, ValueError):
            return None
        for node in nodes.get("data", {}).get("summary", []):
            raylet = node.get("raylet", {})
            if raylet.get("nodeManagerPort") == self.node_manager and raylet.get("state") == "ALIVE":
                return raylet.get("nodeId")
        return None

    def our_pids(self) -> list[int]:
        """Processes of this node: their environment or command line names our marker or temp dir."""
        pids = []
        needles = [self.marker.encode()] + ([] if self.head_of else [self.temp_dir.encode()])
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                blob = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
            except OSError:
                continue
            if any(n in blob for n in needles):
                pids.append(int(entry.name))
        return [p for p in pids if p != os.getpid()]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)  # `ray start --block` exits once its processes are gone
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        for pid in self.our_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
