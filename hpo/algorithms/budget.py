"""The epoch budget of a sweep: which `automl` combinations cannot work, and the one line that says
what each trial trains and why.

    check_budget("asha", automl_cfg)        # SpecError naming the keys and the fix, or nothing
    epoch_plan_line(alg, spec_num_epochs)   # "epochs per trial: 1..27 (bohb fidelity, ...)"

Both run before Ray starts (hpo.algorithms.make_algorithm, hpo.sweep.engine.prepare).
Hyperband's plan (notes/tao.md §3.4): smax = floor(log_eta R); the s = 0 bracket is omitted, so
R < eta leaves no bracket at all.
"""
from __future__ import annotations

import math
from typing import Any, Optional

from gdino.config import AutoMLConfig
from gdino.errors import SpecError

HYPERBAND_FAMILY = frozenset({"hyperband", "bohb", "dehb", "hyperband_es"})
RUNG_ALGORITHMS = HYPERBAND_FAMILY | {"asha"}


def check_budget(name: str, automl: AutoMLConfig) -> None:
    """Raise SpecError for a budget combination the algorithm `name` cannot run."""
    R, eta, mult = int(automl.max_epochs), int(automl.reduction_factor), int(automl.epoch_multiplier)
    if name in RUNG_ALGORITHMS and R < eta:
        raise SpecError(
            f"automl.max_epochs={R} is smaller than automl.reduction_factor={eta}: {name} keeps 1/{eta} of "
            f"the trials at each rung and needs at least one rung below the full budget (max_epochs >= "
            f"reduction_factor)", key="automl.max_epochs",
            hint=f"set automl.max_epochs={eta} or more (e.g. {eta ** 2}), or automl.reduction_factor="
                 f"{max(2, min(R, eta - 1))}; or use a single-fidelity algorithm (random, bayesian, tpe)")
    trial_epochs = R * mult
    if name == "pbt":
        interval = int(automl.eval_interval) * mult
        if interval >= trial_epochs:
            raise SpecError(
                f"PBT exploits every automl.eval_interval={automl.eval_interval} x automl.epoch_multiplier={mult}"
                f" = {interval} epochs, but a member trains automl.max_epochs={R} x {mult} = {trial_epochs}: "
                f"no member would ever be exploited", key="automl.eval_interval",
                hint=f"set automl.eval_interval below {R} (e.g. {max(1, R // 3)}), or raise automl.max_epochs "
                     f"above {int(automl.eval_interval)}")
    if name == "hyperband_es" and int(automl.min_early_stop_epochs) >= trial_epochs:
        raise SpecError(
            f"automl.min_early_stop_epochs={automl.min_early_stop_epochs} >= the {trial_epochs} epochs of a full "
            f"trial (automl.max_epochs={R} x automl.epoch_multiplier={mult}): no learning curve is ever long "
            f"enough to stop a trial, so hyperband_es would be plain hyperband", key="automl.min_early_stop_epochs",
            hint=f"set automl.min_early_stop_epochs below {trial_epochs} (e.g. 2), or use algorithm=hyperband")


def epoch_plan_line(alg: Any, spec_num_epochs: Optional[int]) -> str:
    """One line: the epochs a trial trains, where the number comes from, and what it replaces."""
    automl = alg.automl
    source = f"automl.max_epochs={automl.max_epochs}"
    if int(automl.epoch_multiplier) != 1:
        source += f" x automl.epoch_multiplier={automl.epoch_multiplier}"
    budgets = list(alg.budgets)
    if alg.name == "pbt":
        span = str(alg.trial_epochs)
        why = (f"pbt: every member trains the full budget, {source}; exploit/explore at epochs "
               f"{', '.join(str(b) for b in budgets[:-1])}")
    elif alg.multi_fidelity:
        low = budgets[0] if budgets else alg.trial_epochs
        span = f"{low}..{alg.trial_epochs}"
        why = f"{alg.name} fidelity, {source}; rungs {', '.join(str(b) for b in budgets)}"
    elif "train.num_epochs" in alg.space:
        span = "searched"
        why = f"{alg.name}: train.num_epochs is a searched parameter"
        spec_num_epochs = None  # the spec's value is one point of the search, not replaced
    else:
        span, why = str(alg.trial_epochs), f"{alg.name}: {source}"
    if spec_num_epochs is not None and int(spec_num_epochs) != alg.trial_epochs:
        why += f"; train.num_epochs={spec_num_epochs} from the spec is replaced (set automl.max_epochs to change it)"
    notes = model_budget_notes(alg)
    return f"epochs per trial: {span} ({why})" + "".join(f"\n  note: {n}" for n in notes)


def model_budget_notes(alg: Any) -> list[str]:
    """Plans whose model never gets enough results at any budget: the sampler stays random."""
    searcher = alg.searcher
    min_points = getattr(searcher, "min_points", None)
    brackets = getattr(alg, "brackets", None)
    if min_points is None or not brackets:
        return []
    reached: dict[int, int] = {}
    for bracket in brackets:
        for size, budget in zip(bracket.sizes, bracket.budgets):
            reached[budget] = reached.get(budget, 0) + size
    most = max(reached.values())
    if most >= min_points:
        return []
    return [f"{alg.name}'s model needs {min_points} results at one budget and this plan has at most {most} "
            f"per round of brackets: its first round samples at random (lower automl.min_points_in_model, "
            f"or raise automl.max_epochs for more trials per round)"]


def largest_divisor_at_most(n: int, limit: int) -> int:
    """The largest divisor of n that is <= limit (>= 1)."""
    best = 1
    for d in range(1, int(math.isqrt(n)) + 1):
        if n % d == 0:
            for c in (d, n // d):
                if best < c <= limit:
                    best = c
    return best


def aligned_validation_interval(interval: int, milestones: list[int]) -> int:
    """The largest validation interval <= `interval` that lands a validation on every milestone (rung
    budget, PBT perturbation epoch): a divisor of their gcd. TAO sets the interval to r0 x
    epoch_multiplier for the same reason (notes/tao.md §3.6)."""
    if not milestones:
        return interval
    g = 0
    for m in milestones:
        g = math.gcd(g, int(m))
    return largest_divisor_at_most(g, max(1, int(interval)))
