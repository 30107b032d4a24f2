"""dehb:dehb, the authors' DEHB (github.com/automl/DEHB, PyPI `dehb` 0.1.2) through its ask/tell interface.

Recommended multi-fidelity settings (DEHB's README / constructor defaults): eta = 3, mutation_factor 0.5,
crossover_prob 0.5, strategy rand1_bin, fidelities min_fidelity..max_fidelity = 1..R epochs. DEHB
trains each (config, fidelity) job from scratch (it has no checkpoint promotion), so every job is a new
learning curve here and pays the whole budget. Fidelities are geometric floats (R / eta^k): a job trains
round(fidelity) epochs, at least one.
"""
from __future__ import annotations

import itertools
import tempfile
from typing import Any, Optional

from bench.peers.clock import Start
from bench.peers.spaces import to_configspace

ALGORITHMS = {"dehb": {"eta": 3, "mutation_factor": 0.5, "crossover_prob": 0.5, "strategy": "rand1_bin",
                       "min_fidelity": 1, "async_strategy": "immediate"}}


def missing() -> Optional[str]:
    try:
        import dehb  # noqa: F401
    except ImportError as err:
        return f"dehb not installed ({err}); pip install --no-deps dehb==0.1.2 loguru ConfigSpace (bench/README.md)"
    return None


class DEHBPeer:
    per_epoch = False

    def __init__(self, space: Any, seed: int, max_epoch: int, settings: dict, to_objective: Any) -> None:
        from dehb import DEHB

        self._dir = tempfile.TemporaryDirectory(prefix="bench-dehb-")
        self.space, self.to_objective = space, to_objective
        self.full_budget = max_epoch
        cs = to_configspace(space, seed)
        self.opt = DEHB(cs=cs, dimensions=len(list(cs.values())), min_fidelity=settings["min_fidelity"],
                        max_fidelity=max_epoch, eta=settings["eta"], mutation_factor=settings["mutation_factor"],
                        crossover_prob=settings["crossover_prob"], strategy=settings["strategy"],
                        async_strategy=settings["async_strategy"], n_workers=1, seed=seed,
                        output_path=self._dir.name, save_freq="end", log_level="ERROR")
        self._ids = itertools.count()

    def ask(self) -> Optional[Start]:
        job = self.opt.ask()
        epochs = max(1, min(self.full_budget, int(round(float(job["fidelity"])))))
        config = self.to_objective(dict(job["config"]))
        return Start(trial=next(self._ids), config=config, from_epoch=0, to_epoch=epochs, token=job)

    def on_epoch(self, start: Start, epoch: int, value: float) -> bool:
        return True

    def on_end(self, start: Start, epoch: int, value: float) -> None:
        # DEHB minimises `fitness`; cost is what the job trained (epochs), which DEHB only logs
        self.opt.tell(start.token, {"fitness": -value, "cost": float(epoch)})


def make(algorithm: str, space: Any, seed: int, max_epoch: int, to_objective: Any) -> DEHBPeer:
    return DEHBPeer(space, seed, max_epoch, ALGORITHMS[algorithm], to_objective)
