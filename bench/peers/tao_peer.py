"""tao:<brain>, NVIDIA TAO AutoML's own brains (PyPI nvidia-tao-automl 7.2.0, tao_automl/brain/*) through
its public loop: tao_automl.AutoML(...).next_recommendation() / report_result(rec.id, value) / is_complete().

The search space goes in as an external `search_schema` (TAO's JSON-schema leaves: minimum, maximum,
enum, automl_enabled) under a `train` block with `train.num_epochs`, the key TAO's multi-fidelity brains
rewrite per rung. A ResumeRecommendation (Hyperband promotion) continues the same trial from
`resume_from_epoch`; a plain recommendation starts a new trial. Settings are TAO's own defaults
(brain/factory.py AlgorithmParams) except automl_max_epochs = R, the fidelity every algorithm here shares.
TAO's Hyperband keeps only brackets s >= 1 and budgets int(R / eta^s) * eta^k, so with R = 52 its
largest budget is 51 epochs: a TAO trial counts for the target once it has trained its plan's largest
budget (`full_budget`), the rule our own multi-fidelity algorithms follow.

TAO persists its whole state as indented JSON files on every recommendation and result (tao_automl.state.
StateStore), which makes a simulated run of thousands of trials quadratic in disk writes (a censored
tao:asha run spent 93 % of its time there). The bench gives it `MemoryStateStore` instead: the same
JSON round trip, done only when a value is read back, so the brains decide exactly as with files
(tests/bench/test_peers.py compares both stores recommendation by recommendation).
"""
from __future__ import annotations

import collections
import contextlib
import json
import random
import tempfile
from typing import Any, Optional

import numpy as np

from bench.peers.clock import Start
from bench.peers.spaces import from_tao, to_tao_schema

_TAO_DEFAULTS = {"automl_reduction_factor": 3, "epoch_multiplier": 1}  # brain/factory.py AlgorithmParams
ALGORITHMS = {
    "bayesian": {"automl_max_recommendations": 20, "default_brain": True},
    "hyperband": {**_TAO_DEFAULTS, "default_brain": True},
    "bohb": {**_TAO_DEFAULTS, "automl_kde_samples": 64, "automl_top_n_percent": 15.0,
             "automl_min_points_in_model": 10},
    "asha": {**_TAO_DEFAULTS, "automl_max_concurrent": 4, "automl_min_top_configs": 5},
    "dehb": {**_TAO_DEFAULTS, "automl_mutation_factor": 0.5, "automl_crossover_prob": 0.5},
    "hyperband_es": {**_TAO_DEFAULTS, "automl_early_stop_threshold": 0.1, "automl_min_early_stop_epochs": 3},
}
PREFIX = "train"


def memory_state_store() -> Any:
    """tao_automl's StateStore kept in memory: a write keeps the object, a read returns its JSON round
    trip (tao_automl's own normalisation, then json), which is what the file store would have returned."""
    from tao_automl.state.state_store import StateStore
    from tao_automl.utils.value_utils import normalize_json_value

    class MemoryStateStore(StateStore):
        def __init__(self, workspace_path: str) -> None:
            super().__init__(workspace_path)
            self._memory: dict[tuple[str, ...], Any] = {}

        def _write_json(self, data: Any, *parts: str) -> None:
            self._memory[parts] = data  # TAO saves freshly built objects; nothing mutates them after

        def _read_json(self, *parts: str) -> Any:
            if parts not in self._memory:
                return None
            normalized = normalize_json_value(self._memory[parts], path="persisted_state")
            return json.loads(json.dumps(normalized, allow_nan=False))

    return MemoryStateStore


@contextlib.contextmanager
def _state_store(kind: str) -> Any:
    """While TAO's AutoML(...) is built, its StateStore is `kind` ("memory" or TAO's own "files")."""
    from tao_automl.state import state_store

    original = state_store.StateStore
    if kind == "memory":
        state_store.StateStore = memory_state_store()  # AutoML.__init__ imports the name at call time
    try:
        yield
    finally:
        state_store.StateStore = original


def missing() -> Optional[str]:
    try:
        import tao_automl  # noqa: F401
    except ImportError as err:
        return (f"nvidia-tao-automl not installed ({err}); pip install --no-deps nvidia-tao-automl==7.2.0 "
                "(bench/README.md)")
    return None


class TAOPeer:
    per_epoch = False

    def __init__(self, algorithm: str, space: Any, seed: int, max_epoch: int, settings: dict,
                 to_objective: Any, store: str = "memory") -> None:
        self._store = store
        self._dir = tempfile.TemporaryDirectory(prefix="bench-tao-")
        self.algorithm, self.seed, self.to_objective, self._max_epoch = algorithm, seed, to_objective, max_epoch
        self.settings = {k: v for k, v in settings.items() if k != "default_brain"}
        self.space = space
        self._session, self._running = -1, 0
        self._queue: collections.deque = collections.deque()
        self._new_session()
        brain = self.automl._controller.brain
        rungs = getattr(brain, "ri", None)
        self.full_budget = max(r[-1] for r in rungs.values()) if rungs else max_epoch

    def _new_session(self) -> None:
        """A fresh AutoML session. TAO's multi-fidelity brains run their plan once and are done; a user
        with time left relaunches, so those restart with the next seed (bayesian keeps its 20)."""
        import logging

        from tao_automl import AutoML

        self._session += 1
        seed = self.seed + 10_007 * self._session
        schema, spec = to_tao_schema(self.space, PREFIX, self._max_epoch)
        logging.getLogger("tao_automl").setLevel(logging.WARNING)
        with _state_store(self._store):
            self.automl = AutoML(workspace=f"{self._dir.name}/{self._session}", network="lcbench", train_specs=spec,
                                 settings={"algorithm": self.algorithm, "metric": "val_accuracy",
                                           "session_id": f"bench-{seed}", "automl_max_epochs": self._max_epoch,
                                           **self.settings},
                                 automl_hyperparameters=[f"{PREFIX}.{p.name}" for p in self.space.params],
                                 search_schema=schema)
        np.random.seed(seed)  # the brains draw from the global generators, seeded from hash(session id)
        random.seed(seed)

    def ask(self) -> Optional[Start]:
        for _ in range(3):  # a finished plan is noticed one call late (Hyperband's done() bookkeeping)
            if self._queue:
                break
            if self.automl.is_complete():
                if self.algorithm == "bayesian" or self._running:
                    return None
                self._new_session()
            self._queue.extend(self.automl.next_recommendation())
            if not self._queue and self._running:
                return None  # the brain waits for running recommendations
        if not self._queue:
            return None
        rec = self._queue.popleft()
        self._running += 1
        flat = {k.split(".", 1)[1]: v for k, v in rec.specs.items() if k.startswith(PREFIX + ".")}
        to_epoch = int(flat.pop("num_epochs", self._max_epoch))
        from_epoch = int(rec.resume_from_epoch or 0)
        return Start(trial=(self._session, rec.id), config=self.to_objective(from_tao(self.space, flat)),
                     from_epoch=from_epoch,
                     to_epoch=max(to_epoch, from_epoch + 1), token=rec)

    def on_epoch(self, start: Start, epoch: int, value: float) -> bool:
        return True

    def on_end(self, start: Start, epoch: int, value: float) -> None:
        session, rec_id = start.trial
        self._running -= 1
        if session == self._session:
            self.automl.report_result(rec_id, value, best_epoch=epoch)


def make(algorithm: str, space: Any, seed: int, max_epoch: int, to_objective: Any,
         store: str = "memory") -> TAOPeer:
    return TAOPeer(algorithm, space, seed, max_epoch, ALGORITHMS[algorithm], to_objective, store)
