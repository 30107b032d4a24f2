"""The bench's peer adapters (bench/peers) on a cheap synthetic objective: each drives its library's own
optimizer through the shared clock and finds a better configuration than its first one. A peer whose
library is not installed (a bench extra: pip install -e ".[bench]") is skipped with the reason."""
from __future__ import annotations

import math

import pytest

from bench import peers
from bench.peers.clock import Start, run_peer
from hpo.space import CategoricalDomain, Condition, FloatDomain, IntDomain, Param, SearchSpace

MAX_EPOCH = 9


def _space(conditional: bool = False) -> SearchSpace:
    params = [Param("alpha", FloatDomain(1e-3, 1.0, log=True), default=0.03),
              Param("beta", FloatDomain(0.0, 1.0), default=0.5),
              Param("width", IntDomain(1, 8), default=4)]
    if conditional:
        params = [Param("opt", CategoricalDomain(("a", "b")), default="a")] + \
            [Param(p.name, p.domain, default=p.default, condition=Condition("opt", ("a",))) if p.name == "beta" else p
             for p in params]
    return SearchSpace(tuple(params))


class Quadratic:
    """(Names are no substrings of "train_config": TAO 7.2.0's HyperBand.override_num_epochs tests
    `key in ("train_config")`, a substring test, and fails on such a spec key.)
    val_accuracy rises with epochs towards 100 - distance to the optimum (alpha=0.1, beta=0.3, width=5)."""

    def __init__(self) -> None:
        self.seen: list[dict] = []

    def evaluate(self, config: dict, epoch: int) -> dict:
        self.seen.append(dict(config))
        y = config.get("beta", 0.9)  # inactive beta (conditional space) means the worse default
        distance = (math.log10(config["alpha"]) + 1) ** 2 + (y - 0.3) ** 2 + ((config["width"] - 5) / 4) ** 2
        return {"val_accuracy": 100.0 - 10 * distance - 5.0 / epoch}

    def epoch_cost(self, config: dict, epoch: int) -> float:
        return 1.0


ALL = [name for peer in peers.PEERS for name in (peers.algorithms(peer) if not peers.missing(peer) else
                                                  {f"{peer}:?": None})]


@pytest.mark.parametrize("name", ALL)
def test_peer_improves_on_its_first_configuration(name: str) -> None:
    peer_name = name.split(":")[0]
    if peers.missing(peer_name):
        pytest.skip(peers.missing(peer_name))
    objective = Quadratic()
    peer = peers.make(name, _space(), seed=0, max_epoch=MAX_EPOCH)
    run = run_peer(peer, objective, "val_accuracy", workers=2, max_time=400.0, target=None, launch_cost=1.0)
    assert run.trace, f"{name}: no trial reached its largest budget ({peer.full_budget} epochs)"
    first = objective.evaluate(objective.seen[0], MAX_EPOCH)["val_accuracy"]
    assert run.trace[-1][1] > first
    assert all(b[1] > a[1] for a, b in zip(run.trace, run.trace[1:]))  # the incumbent only improves
    assert run.starts >= run.trials >= 2


@pytest.mark.parametrize("peer_name", ["optuna", "smac", "dehb"])
def test_native_conditionals_leave_the_inactive_child_out(peer_name: str) -> None:
    if peers.missing(peer_name):
        pytest.skip(peers.missing(peer_name))
    objective = Quadratic()
    name = next(iter(peers.algorithms(peer_name)))
    peer = peers.make(name, _space(conditional=True), seed=1, max_epoch=MAX_EPOCH)
    run_peer(peer, objective, "val_accuracy", workers=1, max_time=300.0, target=None)
    with_b = [c for c in objective.seen if c["opt"] == "b"]
    assert with_b and all("beta" not in c for c in with_b)
    assert all("beta" in c for c in objective.seen if c["opt"] == "a")


class _Scripted:
    """A fake peer: two trials; the second resumes the first's curve (a promotion)."""

    per_epoch, full_budget = False, 4

    def __init__(self) -> None:
        self.plan = [Start("t0", {"v": 1}, 0, 2), Start("t1", {"v": 2}, 0, 2), Start("t0", {"v": 1}, 2, 4)]
        self.ended: list[tuple] = []

    def ask(self):
        return self.plan.pop(0) if self.plan and len(self.ended) >= 2 - len(self.plan) + 1 else None

    def on_epoch(self, start, epoch, value):
        return True

    def on_end(self, start, epoch, value):
        self.ended.append((start.trial, epoch, value))


def test_clock_charges_launches_and_only_new_epochs_and_counts_full_budget_trials() -> None:
    from hpo.algorithms.simulator import FunctionObjective

    objective = FunctionObjective(lambda c, e: {"m": 10.0 * c["v"] + e}, cost=3.0)
    peer = _Scripted()
    run = run_peer(peer, objective, "m", workers=1, max_time=1e9, target=None, launch_cost=5.0)
    # three launches (5 s each) and 2 + 2 + 2 epochs of 3 s: t0 reaches epoch 4 at 33 s
    assert run.starts == 3 and run.epochs == 6 and run.trials == 2
    assert run.trace == [(33.0, 14.0)]
    assert peer.ended == [("t0", 2, 12.0), ("t1", 2, 22.0), ("t0", 4, 14.0)]


@pytest.mark.parametrize("brain", ["hyperband", "hyperband_es", "bohb", "asha", "dehb", "bayesian"])
def test_tao_brains_decide_the_same_with_the_memory_state_store_as_with_files(brain: str) -> None:
    if peers.missing("tao"):
        pytest.skip(peers.missing("tao"))
    from bench.peers import tao_peer

    def decisions(store: str) -> list[tuple]:
        objective = Quadratic()
        peer = tao_peer.make(brain, _space(), seed=3, max_epoch=MAX_EPOCH, to_objective=dict, store=store)
        run = run_peer(peer, objective, "val_accuracy", workers=2, max_time=250.0, target=None, launch_cost=1.0)
        return [tuple(sorted(c.items())) for c in objective.seen] + [("trials", run.trials, run.starts)]

    on_files = decisions("files")
    assert len(on_files) > 20
    assert decisions("memory") == on_files


@pytest.mark.parametrize("name", ["optuna:tpe-hyperband", "synetune:asha", "dehb:dehb", "tao:hyperband"])
def test_same_seed_same_run(name: str) -> None:
    peer_name = name.split(":")[0]
    if peers.missing(peer_name):
        pytest.skip(peers.missing(peer_name))

    def seen() -> list[tuple]:
        objective = Quadratic()
        run_peer(peers.make(name, _space(), seed=4, max_epoch=MAX_EPOCH), objective, "val_accuracy", workers=2,
                 max_time=300.0, target=None, launch_cost=1.0)
        return [tuple(sorted(c.items())) for c in objective.seen]

    assert seen() == seen()


def test_a_bare_peer_name_leaves_out_its_on_request_algorithms() -> None:
    """`--peers synetune` runs synetune:asha; synetune:bohb runs when named, with the reason printed."""
    assert "synetune:bohb" not in peers.algorithms("synetune", named=False)
    assert "synetune:asha" in peers.algorithms("synetune", named=False)
    assert "synetune:bohb" in peers.algorithms("synetune") and "bohb" in peers.on_request("synetune")
