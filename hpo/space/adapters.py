"""Adapters from `SearchSpace` to Optuna (define-by-run) and HyperOpt (native space).

Neither library has weighted categoricals or bounds that move with another parameter, so:
  * a weighted categorical is a hyperopt `pchoice`; in Optuna it is asked as a unit coordinate
    `<name>#u` decoded through the weights' cumulative distribution (Optuna has no weights);
  * a parameter with relations to other searched params (crop_max > crop_min) is asked as its
    relative position `<name>#u` in the range its parents leave, so it is feasible by construction;
  * conditional params: Optuna only asks for active ones; hyperopt nests them inside the branches
    of their parent's choice (tree-structured, which TPE models natively).
Decoding always ends in the space's own domains, so the weights, conditions and constraints of the
adapter output are exactly those of `SearchSpace.sample`.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping, cast

from hpo.space.domains import BoolDomain, CategoricalDomain, Domain, FloatDomain, IntDomain, _same

if TYPE_CHECKING:  # pragma: no cover
    import optuna

    from hpo.space.space import Param, SearchSpace

UNIT_SUFFIX = "#u"
BRANCH_VALUE = "__value__"
_MAX_ENUMERATED = 256
_OPTUNA_CHOICE_TYPES = (type(None), bool, int, float, str)


def _plain_int(domain: IntDomain) -> bool:
    return domain.power_base is None and not domain.exclude


def _from_suggestion(domain: Domain, value: Any) -> Any:
    """Snap an external suggestion onto the domain (open ends, int casts) without clamping piles."""
    if isinstance(domain, IntDomain) and isinstance(value, float) and value.is_integer():
        value = int(value)
    if domain.contains(value):
        return value
    return domain.decode(domain.encode(value))


# --- Optuna ----------------------------------------------------------------------------------------
def suggest_optuna(space: "SearchSpace", trial: "optuna.Trial") -> dict[str, Any]:
    """Ask `trial` for every active param in dependency order; returns the flat configuration."""
    config: dict[str, Any] = {}
    for p in space.params:
        if not space._is_active(p, config):  # noqa: SLF001 - the adapter is part of the space
            continue
        domain = space._domain_for(p, config)  # noqa: SLF001
        config[p.name] = _suggest_one(p, domain, trial)
    return config


def _suggest_one(p: "Param", domain: Domain, trial: "optuna.Trial") -> Any:
    name = p.name
    if p.relations:
        return domain.decode(trial.suggest_float(name + UNIT_SUFFIX, 0.0, 1.0))
    if isinstance(domain, FloatDomain):
        return _from_suggestion(domain, trial.suggest_float(name, domain.low, domain.high, log=domain.log))
    if isinstance(domain, IntDomain):
        if _plain_int(domain):
            values = domain.values(limit=2)
            start = values[0]
            last = domain.decode(1.0)
            if domain.step:
                return trial.suggest_int(name, start, last, step=domain.step)
            return trial.suggest_int(name, start, last, log=domain.log and start >= 1)
        values = domain.values(limit=_MAX_ENUMERATED + 1)
        if len(values) <= _MAX_ENUMERATED:
            return trial.suggest_categorical(name, values)
        return domain.decode(trial.suggest_float(name + UNIT_SUFFIX, 0.0, 1.0))
    if isinstance(domain, BoolDomain):
        return trial.suggest_categorical(name, [False, True])
    if isinstance(domain, CategoricalDomain):
        plain = all(isinstance(o, _OPTUNA_CHOICE_TYPES) for o in domain.options)
        if domain.weights is None and plain:
            return trial.suggest_categorical(name, list(domain.options))
        return domain.decode(trial.suggest_float(name + UNIT_SUFFIX, 0.0, 1.0))
    raise TypeError(f"no Optuna mapping for {type(domain).__name__}")


# --- HyperOpt --------------------------------------------------------------------------------------
def _expression(p: "Param", hp: Any) -> Any:
    domain, name = p.domain, p.name
    if p.relations:
        return hp.uniform(name + UNIT_SUFFIX, 0.0, 1.0)
    if isinstance(domain, FloatDomain):
        if domain.log:
            return hp.loguniform(name, math.log(domain.low), math.log(domain.high))
        return hp.uniform(name, domain.low, domain.high)
    if isinstance(domain, IntDomain):
        if _plain_int(domain) and not domain.step and not domain.log:
            return hp.uniformint(name, domain.low, domain.high)
        values = domain.values(limit=_MAX_ENUMERATED + 1)
        if len(values) <= _MAX_ENUMERATED:
            return hp.choice(name, values)
        return hp.uniform(name + UNIT_SUFFIX, 0.0, 1.0)
    if isinstance(domain, BoolDomain):
        return hp.choice(name, [False, True])
    if isinstance(domain, CategoricalDomain):
        if domain.weights is None:
            return hp.choice(name, list(domain.options))
        return hp.pchoice(name, [(float(w), o) for w, o in zip(domain.probabilities, domain.options)])
    raise TypeError(f"no HyperOpt mapping for {type(domain).__name__}")


def _branching(p: "Param", hp: Any, children: list["Param"], by_parent: dict) -> Any:
    """A choice whose branches carry the conditional children active under each option."""
    domain = p.domain
    # a parent of conditional params is a bool or a categorical (gdino_rules / Condition)
    options = [False, True] if isinstance(domain, BoolDomain) else list(cast(CategoricalDomain, domain).options)
    branches = []
    for option in options:
        branch: dict[str, Any] = {BRANCH_VALUE: option}
        for child in children:
            if child.condition is not None and any(_same(option, v) for v in child.condition.values):
                branch[child.name] = _subtree(child, hp, by_parent)
        branches.append(branch)
    if isinstance(domain, CategoricalDomain) and domain.weights is not None:
        return hp.pchoice(p.name, list(zip((float(w) for w in domain.probabilities), branches)))
    return hp.choice(p.name, branches)


def _subtree(p: "Param", hp: Any, by_parent: dict) -> Any:
    children = by_parent.get(p.name, [])
    if children and isinstance(p.domain, (CategoricalDomain, BoolDomain)) and not p.relations:
        return _branching(p, hp, children, by_parent)
    return _expression(p, hp)


def hyperopt_space(space: "SearchSpace") -> dict[str, Any]:
    """A native hyperopt space (a dict of expressions; conditional params nested in choices)."""
    from hyperopt import hp

    by_parent: dict[str, list] = {}
    nested: set[str] = set()
    for p in space.params:
        if p.condition is not None:
            parent = space[p.condition.parent]
            if isinstance(parent.domain, (CategoricalDomain, BoolDomain)) and not parent.relations:
                by_parent.setdefault(parent.name, []).append(p)
                nested.add(p.name)
    return {p.name: _subtree(p, hp, by_parent) for p in space.params if p.name not in nested}


def _flatten_sample(sample: Mapping[str, Any], out: dict[str, Any]) -> None:
    for key, value in sample.items():
        if isinstance(value, Mapping) and BRANCH_VALUE in value:
            out[key] = value[BRANCH_VALUE]
            _flatten_sample({k: v for k, v in value.items() if k != BRANCH_VALUE}, out)
        else:
            out[key] = value


def decode_hyperopt(space: "SearchSpace", sample: Mapping[str, Any]) -> dict[str, Any]:
    """Flat configuration from a hyperopt sample (`space_eval` output, nested or already flat)."""
    flat: dict[str, Any] = {}
    _flatten_sample(sample, flat)
    config: dict[str, Any] = {}
    for p in space.params:
        if not space._is_active(p, config):  # noqa: SLF001
            continue
        domain = space._domain_for(p, config)  # noqa: SLF001
        if p.name + UNIT_SUFFIX in flat:
            config[p.name] = domain.decode(float(flat[p.name + UNIT_SUFFIX]))
        elif p.name in flat:
            config[p.name] = _from_suggestion(domain, flat[p.name])
        else:
            config[p.name] = domain.decode(0.5)  # absent from the sample: the middle of its range
    return config
