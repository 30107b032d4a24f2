"""Peer HPO libraries on the bench's simulated clock (bench/search.py --peers ...).

Each adapter module drives one library's own optimizer object through its ask/tell (or suggest/result)
interface; `run_peer` (clock.py) gives them the same objective, workers, launch cost and target rule as
our algorithms get from hpo.algorithms.simulator. Peer packages are a bench extra
(`pip install -e ".[bench]"`, bench/README.md), never a dependency of the product.
"""
from __future__ import annotations

import importlib
from typing import Any, Optional

PEERS = {"tao": "bench.peers.tao_peer", "smac": "bench.peers.smac_peer", "synetune": "bench.peers.synetune_peer",
         "dehb": "bench.peers.dehb_peer", "optuna": "bench.peers.optuna_peer"}


def module(peer: str) -> Any:
    if peer not in PEERS:
        raise SystemExit(f"unknown peer {peer!r}; known: {', '.join(PEERS)}")
    return importlib.import_module(PEERS[peer])


def missing(peer: str) -> Optional[str]:
    """Why `peer` cannot run here (None: it can)."""
    return module(peer).missing()


def algorithms(peer: str, named: bool = True) -> dict[str, dict]:
    """`<peer>:<algorithm>` -> the settings it runs with (recorded in the JSON). `named=False` is what a
    bare peer name (`--peers synetune`) runs: without the module's ON_REQUEST algorithms."""
    mod = module(peer)
    left_out = on_request(peer) if not named else {}
    return {f"{peer}:{name}": dict(settings) for name, settings in mod.ALGORITHMS.items() if name not in left_out}


def on_request(peer: str) -> dict[str, str]:
    """Algorithms of `peer` that run only when named (`--peers peer:algorithm`), with the reason."""
    return dict(getattr(module(peer), "ON_REQUEST", {}))


def make(qualified: str, space: Any, seed: int, max_epoch: int, to_objective: Any = dict) -> Any:
    peer, algorithm = qualified.split(":", 1)
    return module(peer).make(algorithm, space, seed, max_epoch, to_objective)
