"""Our SearchSpace in each peer's own space language.

Conditionals (hpo.space.Condition: a param active only for some values of a categorical parent):
ConfigSpace (SMAC, DEHB) and Optuna (define-by-run) express them natively; syne-tune's dict spaces and
TAO's schema have no conditionals, so there the child is always sampled (flattened) and the objective
ignores it when inactive (`SearchSpace.active`).
"""
from __future__ import annotations

import math
from typing import Any

from hpo.space import CategoricalDomain, FloatDomain, IntDomain, SearchSpace


def handles_conditionals(peer: str) -> str:
    """How `peer` sees a conditional parameter: "native" or "flattened"."""
    return "native" if peer in ("smac", "dehb", "optuna") else "flattened"


def to_configspace(space: SearchSpace, seed: int) -> Any:
    """A ConfigSpace.ConfigurationSpace (native EqualsCondition / InCondition for conditionals)."""
    from ConfigSpace import Categorical, ConfigurationSpace, EqualsCondition, Float, InCondition, Integer

    cs = ConfigurationSpace(seed=seed)
    hps = {}
    for p in space.params:
        d = p.domain
        if isinstance(d, FloatDomain):
            hp = Float(p.name, (d.low, d.high), log=d.log)
        elif isinstance(d, IntDomain):
            hp = Integer(p.name, (int(d.low), int(d.high)), log=d.log)
        elif isinstance(d, CategoricalDomain):
            hp = Categorical(p.name, list(d.options))
        else:
            raise TypeError(f"{p.name}: no ConfigSpace form for {type(d).__name__}")
        hps[p.name] = hp
        cs.add(hp)
    for p in space.params:
        c = p.condition
        if c is not None:
            values = list(c.values)
            cs.add(EqualsCondition(hps[p.name], hps[c.parent], values[0]) if len(values) == 1
                   else InCondition(hps[p.name], hps[c.parent], values))
    return cs


def to_synetune(space: SearchSpace) -> dict[str, Any]:
    """A syne-tune config space (flat: no conditionals)."""
    from syne_tune.config_space import choice, lograndint, loguniform, randint, uniform

    out: dict[str, Any] = {}
    for p in space.params:
        d = p.domain
        if isinstance(d, FloatDomain):
            out[p.name] = (loguniform if d.log else uniform)(d.low, d.high)
        elif isinstance(d, IntDomain):
            out[p.name] = (lograndint if d.log else randint)(int(d.low), int(d.high))
        elif isinstance(d, CategoricalDomain):
            out[p.name] = choice(list(d.options))
        else:
            raise TypeError(f"{p.name}: no syne-tune form for {type(d).__name__}")
    return out


def to_tao_schema(space: SearchSpace, prefix: str, max_epochs: int) -> tuple[dict, dict]:
    """(search_schema, train_specs) for tao_automl.AutoML; `from_tao` turns its values back.

    TAO's schema has no log scale: its brains sample a float linearly over [minimum, maximum] (the one
    exception, list-valued ranges read as log-uniform learning rates, makes its bohb brain fail:
    get_valid_range calls float() on the list). A TAO user searching a learning rate over three decades
    would therefore search its exponent, so every log-scaled param goes to TAO as its log10, linear."""
    props: dict[str, Any] = {"num_epochs": {"type": "integer", "default": max_epochs, "automl_enabled": False}}
    spec: dict[str, Any] = {"num_epochs": max_epochs}
    for p in space.params:
        d, key = p.domain, p.name
        if isinstance(d, (FloatDomain, IntDomain)) and d.log:
            low, high = math.log10(d.low), math.log10(d.high)
            props[key] = {"type": "number", "minimum": low, "maximum": high, "automl_enabled": True,
                          "default": math.log10(p.default) if p.default else (low + high) / 2}
        elif isinstance(d, FloatDomain):
            props[key] = {"type": "number", "minimum": d.low, "maximum": d.high, "default": p.default,
                          "automl_enabled": True}
        elif isinstance(d, IntDomain):
            props[key] = {"type": "integer", "minimum": int(d.low), "maximum": int(d.high),
                          "default": p.default, "automl_enabled": True}
        elif isinstance(d, CategoricalDomain):
            props[key] = {"type": "string", "enum": list(d.options), "default": p.default,
                          "automl_enabled": True}
        else:
            raise TypeError(f"{p.name}: no TAO schema form for {type(d).__name__}")
        spec[key] = props[key]["default"]
    schema = {"type": "object", "default": {prefix: spec},
              "properties": {prefix: {"type": "object", "properties": props}}}
    return schema, {prefix: spec}


def from_tao(space: SearchSpace, flat: dict[str, Any]) -> dict[str, Any]:
    """TAO's values (log-scaled params as log10) -> a configuration of `space`."""
    out = dict(flat)
    for p in space.params:
        d = p.domain
        if p.name in out and isinstance(d, (FloatDomain, IntDomain)) and d.log:
            value = 10.0 ** float(out[p.name])
            out[p.name] = int(min(max(round(value), d.low), d.high)) if isinstance(d, IntDomain) \
                else float(min(max(value, d.low), d.high))
        elif p.name in out and isinstance(d, IntDomain):
            out[p.name] = int(min(max(round(float(out[p.name])), d.low), d.high))
    return out
