"""`SearchSpace`: the one description of what a sweep searches, read by every algorithm.

A space is an ordered tuple of `Param`s. Each has a `Domain` (hpo.space.domains), an optional
`Condition` (the parameter only has an effect for some values of another one, e.g. momentum only with
SGD) and `Relation`s to other searched parameters (`crop_max > crop_min`, `num_select <= num_queries`).
Params are topologically ordered so that parents are always decided before their dependants.

Everything goes through the unit cube: `from_unit(u)` decodes coordinate i with param i's domain,
narrowed by the relations to the parents already decoded. So every decoded configuration satisfies
every constraint *by construction* (never by clamping values onto a bound), and `sample(rng)` is simply
`from_unit(rng.random(d))`. At construction the space narrows parents' ranges so that every parent
value leaves its dependants a non-empty range (a parameter with no feasible value is a SchemaError).

Configurations are flat dicts keyed by dotted TAO names; inactive conditional params are absent.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from gdino.errors import SchemaError, SpecError
from hpo.space.domains import BoolDomain, CategoricalDomain, Domain, EmptyDomain, FloatDomain, IntDomain, _same

if TYPE_CHECKING:  # pragma: no cover - typing only
    pass

OPS = (">", ">=", "<", "<=")


@dataclass(frozen=True)
class Condition:
    """The param is active only when `parent`'s value is one of `values` (and the parent is active)."""

    parent: str
    values: tuple

    def holds(self, config: Mapping[str, Any]) -> bool:
        if self.parent not in config:
            return False
        return any(_same(config[self.parent], v) for v in self.values)

    def describe(self) -> str:
        shown = " or ".join(str(v) for v in self.values)
        return f"{self.parent} = {shown}"


@dataclass(frozen=True)
class Relation:
    """`param <op> scale * parent + offset`, with op in >, >=, <, <= and scale > 0."""

    parent: str
    op: str
    scale: float = 1.0
    offset: float = 0.0
    source: str = ""  # where it comes from, for the table (e.g. "math_cond '> depends_on'")

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise SchemaError(f"unsupported relational operator {self.op!r}", parameter=self.parent)
        if not (math.isfinite(self.scale) and self.scale > 0 and math.isfinite(self.offset)):
            raise SchemaError("a relation needs a finite positive scale and a finite offset",
                              parameter=self.parent)

    @property
    def is_lower(self) -> bool:
        return self.op in (">", ">=")

    @property
    def strict(self) -> bool:
        return self.op in (">", "<")

    def bound(self, parent_value: float) -> float:
        return self.scale * float(parent_value) + self.offset

    def describe(self) -> str:
        rhs = self.parent if self.scale == 1 else f"{self.scale:g}*{self.parent}"
        if self.offset:
            rhs += f" {'+' if self.offset > 0 else '-'} {abs(self.offset):g}"
        return f"{self.op} {rhs}"


@dataclass(frozen=True)
class Param:
    """One searched parameter: dotted `name`, `domain`, TAO `value_type`, spec `default`."""

    name: str
    domain: Domain
    value_type: str = ""
    default: Any = None
    condition: Condition | None = None
    relations: tuple[Relation, ...] = ()
    note: str = ""  # e.g. "schema range [1, 1000]; capped at num_queries"

    @property
    def depends_on(self) -> tuple[str, ...]:
        parents = [r.parent for r in self.relations]
        if self.condition is not None:
            parents.append(self.condition.parent)
        return tuple(dict.fromkeys(parents))


@dataclass(frozen=True)
class Excluded:
    """A parameter that was considered but is not searched, and why (shown by `table`)."""

    name: str
    reason: str


def _topological(params: Sequence[Param]) -> list[Param]:
    """Parents before children (stable: keeps the given order where free). A cycle is a SchemaError."""
    by_name = {p.name: p for p in params}
    for p in params:
        for parent in p.depends_on:
            if parent not in by_name:
                raise SchemaError(f"depends on {parent!r}, which is not a searched parameter",
                                  parameter=p.name)
    ordered: list[Param] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(p: Param, path: tuple[str, ...]) -> None:
        if state.get(p.name) == 2:
            return
        if state.get(p.name) == 1:
            cycle = " -> ".join(path[path.index(p.name):] + (p.name,))
            raise SchemaError(f"dependency cycle: {cycle}", parameter=p.name,
                              hint="remove one depends_on of the cycle")
        state[p.name] = 1
        for parent in p.depends_on:
            visit(by_name[parent], path + (p.name,))
        state[p.name] = 2
        ordered.append(p)

    for p in params:
        visit(p, ())
    return ordered


def _restrict(domain: Domain, relations: Iterable[Relation], values: Mapping[str, Any]) -> Domain:
    """Narrow a numeric domain by its relations evaluated at the parents' values."""
    for rel in relations:
        if rel.parent not in values:
            continue
        bound = rel.bound(values[rel.parent])
        if rel.is_lower:
            domain = domain.restricted(low=bound, low_open=rel.strict)
        else:
            domain = domain.restricted(high=bound, high_open=rel.strict)
    return domain


def _is_numeric(domain: Domain) -> bool:
    return isinstance(domain, (FloatDomain, IntDomain)) or (isinstance(domain, CategoricalDomain)
                                                            and domain.numeric)


def _numeric_extremes(domain: Domain) -> tuple[float, float]:
    """Smallest and largest member of a numeric domain."""
    if isinstance(domain, FloatDomain):
        return domain.low, domain.high
    if isinstance(domain, IntDomain):
        return float(domain.decode(0.0)), float(domain.decode(1.0))
    if isinstance(domain, CategoricalDomain) and domain.numeric:
        return float(min(domain.options)), float(max(domain.options))
    raise TypeError(f"{domain.kind} domain has no numeric extremes")


def _check_two_sided(child: Param, by_name: Mapping[str, Param]) -> None:
    """A param bounded from below and above by parents: its range must be non-empty at every parent
    value. Bounds are affine and increasing in each parent, so the worst cases are the extremes."""
    lowers = {r.parent for r in child.relations if r.is_lower}
    uppers = {r.parent for r in child.relations if not r.is_lower}
    if not (lowers and uppers):
        return
    extremes = {name: _numeric_extremes(by_name[name].domain) for name in lowers | uppers}
    shared = sorted(lowers & uppers)
    worst = {name: extremes[name][1] for name in lowers} | {name: extremes[name][0] for name in uppers}
    for combo in itertools.product(*(extremes[name] for name in shared)):
        values = {**worst, **dict(zip(shared, combo))}
        try:
            _restrict(child.domain, child.relations, values)
        except EmptyDomain as err:
            raise SchemaError(f"its lower and upper bounds ({', '.join(r.describe() for r in child.relations)}) "
                              f"leave no value when the parents are at {values}", parameter=child.name,
                              hint="widen the ranges (automl.range_override) or drop one dependency") from err


def _propagate(params: list[Param]) -> list[Param]:
    """Narrow parents so every parent value leaves each dependant a non-empty feasible range.

    Walks children before parents (reverse topological order) so narrowing flows up chains.
    """
    by_name = {p.name: p for p in params}
    for child_name in [p.name for p in reversed(params)]:
        child = by_name[child_name]
        if not child.relations:
            continue
        if not _is_numeric(child.domain):
            raise SchemaError("a relational constraint needs a numeric parameter", parameter=child.name)
        lo, hi = _numeric_extremes(child.domain)
        for rel in child.relations:
            parent = by_name[rel.parent]
            if not _is_numeric(parent.domain):
                raise SchemaError(f"depends_on {rel.parent!r} must be numeric for {rel.op!r}",
                                  parameter=child.name)
            # child >= s*p + b needs s*p + b <= hi (strict: <);  child <= s*p + b needs s*p + b >= lo
            integral = isinstance(child.domain, IntDomain) or (
                isinstance(child.domain, CategoricalDomain) and all(isinstance(o, int) for o in child.domain.options))
            try:
                if rel.is_lower:
                    limit = (hi - rel.offset - (1 if (rel.strict and integral) else 0)) / rel.scale
                    narrowed = parent.domain.restricted(high=limit, high_open=rel.strict and not integral)
                else:
                    limit = (lo - rel.offset + (1 if (rel.strict and integral) else 0)) / rel.scale
                    narrowed = parent.domain.restricted(low=limit, low_open=rel.strict and not integral)
            except EmptyDomain as err:
                raise SchemaError(f"empty feasible set: no value of {rel.parent} leaves "
                                  f"{child.name} {rel.describe()} inside {child.domain.describe()}",
                                  parameter=child.name,
                                  hint="widen the ranges (automl.range_override) or drop the dependency") from err
            by_name[parent.name] = replace(parent, domain=narrowed)
        _check_two_sided(child, by_name)
    return [by_name[p.name] for p in params]


@dataclass(frozen=True)
class SearchSpace:
    """The effective search space of a sweep (see the module docstring).

    Attributes:
        params: searched parameters, topologically ordered (parents first).
        excluded: parameters considered but not searched, with the reason (for the table).
        fixed: values of non-searched parameters that constraints were resolved against.
        mode: "default" (ours) or "tao" (TAO's effective ranges).
    """

    params: tuple[Param, ...]
    excluded: tuple[Excluded, ...] = ()
    fixed: Mapping[str, Any] = field(default_factory=dict)
    mode: str = "default"

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SchemaError("parameter listed twice", parameter=duplicates[0])
        ordered = _propagate(_topological(list(self.params)))
        object.__setattr__(self, "params", tuple(ordered))
        object.__setattr__(self, "_index", {p.name: i for i, p in enumerate(ordered)})

    # --- basics --------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Dotted names in coordinate order."""
        return [p.name for p in self.params]

    @property
    def dim(self) -> int:
        return len(self.params)

    def __len__(self) -> int:
        return len(self.params)

    def __contains__(self, name: object) -> bool:
        return name in self._index  # type: ignore[attr-defined]

    def __getitem__(self, name: str) -> Param:
        return self.params[self._index[name]]  # type: ignore[attr-defined]

    def without(self, names: Iterable[str], reason: str = "excluded by the algorithm") -> "SearchSpace":
        """A copy without `names` (e.g. `train.num_epochs` when epochs are the fidelity).

        A removed parent's dependants keep working: relations fall back to its spec default.
        """
        drop = {n for n in names if n in self}
        if not drop:
            return self
        fixed = dict(self.fixed)
        kept = []
        for p in self.params:
            if p.name in drop:
                fixed.setdefault(p.name, p.default)
                continue
            kept.append(p)
        rebuilt = []
        for p in kept:
            domain, relations, condition = p.domain, [], p.condition
            for rel in p.relations:
                if rel.parent in drop:
                    try:
                        domain = _restrict(domain, [rel], fixed)
                    except EmptyDomain as err:
                        raise SchemaError(f"empty feasible set once {rel.parent} is fixed at "
                                          f"{fixed[rel.parent]!r}", parameter=p.name) from err
                else:
                    relations.append(rel)
            if condition is not None and condition.parent in drop:
                if not condition.holds(fixed):
                    continue  # no effect at the fixed parent value
                condition = None
            rebuilt.append(replace(p, domain=domain, relations=tuple(relations), condition=condition))
        excluded = self.excluded + tuple(Excluded(n, reason) for n in sorted(drop))
        return SearchSpace(tuple(rebuilt), excluded=excluded, fixed=fixed, mode=self.mode)

    # --- decoding ------------------------------------------------------------------------------
    def _domain_for(self, p: Param, config: Mapping[str, Any]) -> Domain:
        """`p`'s domain narrowed by its relations at the parents' values in `config`."""
        values = {}
        for rel in p.relations:  # an inactive parent constrains through its default, if numeric
            value = config.get(rel.parent, self[rel.parent].default)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values[rel.parent] = value
        return _restrict(p.domain, p.relations, values)

    def _is_active(self, p: Param, config: Mapping[str, Any]) -> bool:
        return p.condition is None or p.condition.holds(config)

    def from_unit(self, u: Sequence[float] | np.ndarray) -> dict[str, Any]:
        """Decode a point of [0, 1]^dim into a configuration (inactive params left out).

        Out-of-cube or NaN coordinates are clipped into the cube; constraints hold by construction.
        """
        u = np.asarray(u, dtype=float).reshape(-1)
        if u.shape[0] != self.dim:
            raise ValueError(f"expected {self.dim} unit coordinates, got {u.shape[0]}")
        config: dict[str, Any] = {}
        for i, p in enumerate(self.params):
            if not self._is_active(p, config):
                continue
            try:
                config[p.name] = self._domain_for(p, config).decode(float(u[i]))
            except EmptyDomain as err:  # construction guarantees a value; say so if it ever does not
                raise SchemaError(f"no feasible value given its parents ({err})", parameter=p.name) from err
        return config

    def to_unit(self, config: Mapping[str, Any]) -> np.ndarray:
        """Encode a configuration into [0, 1]^dim (inactive or missing params encode as 0.5)."""
        out = np.full(self.dim, 0.5)
        for i, p in enumerate(self.params):
            if p.name not in config or not self._is_active(p, config):
                continue
            try:
                out[i] = self._domain_for(p, config).encode(config[p.name])
            except (KeyError, ValueError, TypeError, EmptyDomain):
                out[i] = 0.5
        return out

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """One configuration drawn from the space's distribution (weights, log scales, conditions)."""
        return self.from_unit(rng.random(self.dim))

    def sample_trial(self, seed: int, trial_index: int) -> dict[str, Any]:
        """Trial `trial_index`'s configuration of a sweep seeded with `seed` (reproducible anywhere)."""
        return self.sample(trial_rng(seed, trial_index))

    # --- checking ------------------------------------------------------------------------------
    def active(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The searched params of `config` that have an effect (inactive conditionals dropped)."""
        out: dict[str, Any] = {}
        for p in self.params:  # parents come first, so `out` already holds the active parents
            if p.name in config and self._is_active(p, out):
                out[p.name] = config[p.name]
        return out

    def validate(self, config: Mapping[str, Any]) -> None:
        """Raise SpecError (key = the parameter) unless `config` is a feasible configuration.

        Keys must be searched params; every active param must be present and inside its domain as
        narrowed by its parents' values; inactive params may be present (they are ignored).
        """
        unknown = [k for k in config if k not in self]
        if unknown:
            raise SpecError("not a searched parameter", key=unknown[0],
                            hint=f"searched: {', '.join(self.names)}")
        decided: dict[str, Any] = {}
        for p in self.params:
            if not self._is_active(p, decided):
                continue
            if p.name not in config:
                raise SpecError("missing from the configuration", key=p.name)
            value = config[p.name]
            try:
                domain = self._domain_for(p, {**decided})
            except EmptyDomain as err:
                raise SpecError(f"no feasible value given its parents ({err})", key=p.name) from err
            if not domain.contains(value):
                raise SpecError(f"value {value!r} is outside {domain.describe()}"
                                + (f" ({', '.join(r.describe() for r in p.relations)})" if p.relations else ""),
                                key=p.name)
            decided[p.name] = value

    def is_feasible(self, config: Mapping[str, Any]) -> bool:
        """`validate` as a predicate."""
        try:
            self.validate(config)
        except SpecError:
            return False
        return True

    # --- exploration ---------------------------------------------------------------------------
    def perturb(self, config: Mapping[str, Any], rng: np.random.Generator, factor: float = 1.2,
                resample_prob: float = 0.2, fixed: Iterable[str] | None = None) -> dict[str, Any]:
        """PBT's explore step: each active param is resampled with `resample_prob`, else numeric ones
        are multiplied or divided by `factor` and ordered choices move to a neighbour.

        A move that would leave the feasible range goes the other way (a reflection, not a pile on
        the bound); dependants whose range changed under them are redrawn inside their new range.
        `fixed` params keep their value (default: the architecture parameters of
        hpo.space.gdino_rules, which change the network's tensors: the exploited member must load its
        donor's checkpoint, so it keeps the population member's architecture).
        """
        if fixed is None:
            from hpo.space.gdino_rules import ARCHITECTURE_PARAMS

            fixed = ARCHITECTURE_PARAMS
        keep = self._with_ancestors(frozenset(fixed) & frozenset(self.names))
        out: dict[str, Any] = {}
        for p in self.params:
            if not self._is_active(p, out):
                continue
            domain = self._domain_for(p, out)
            current = config.get(p.name)
            if p.name in keep and current is not None:
                out[p.name] = current
                continue
            if current is None or not domain.contains(current) or rng.random() < resample_prob:
                out[p.name] = domain.decode(rng.random())
                continue
            out[p.name] = _explore(domain, current, rng, factor)
        return out

    def _with_ancestors(self, names: frozenset[str]) -> frozenset[str]:
        """`names` plus every parameter they depend on, transitively: a fixed parameter's range depends
        on its parents' values, so holding it means holding them too."""
        out, todo = set(names), list(names)
        while todo:
            for parent in self[todo.pop()].depends_on:
                if parent in self.names and parent not in out:
                    out.add(parent)
                    todo.append(parent)
        return frozenset(out)

    def grid(self, points_per_dim: int, *, max_configs: int = 100_000) -> list[dict[str, Any]]:
        """A grid in unit space (so log params get log-spaced points; choices give all options).

        Dependants are gridded inside the range their parents leave, inactive params drop out, and
        duplicates are removed. Raises SpecError if the grid would exceed `max_configs` points.
        """
        if points_per_dim < 1:
            raise SpecError("points per dimension must be >= 1", key="automl.grid_points")
        axes = [p.domain.unit_grid(points_per_dim) for p in self.params]
        total = math.prod(len(a) for a in axes) if axes else 1
        if total > max_configs:
            raise SpecError(f"the grid would have {total} points (limit {max_configs})",
                            key="automl.grid_points", hint="use fewer points per dimension or fewer parameters")
        seen: set[tuple] = set()
        configs: list[dict[str, Any]] = []
        for point in itertools.product(*axes):
            config = self.from_unit(np.asarray(point, dtype=float))
            key = tuple(sorted((k, repr(v)) for k, v in config.items()))
            if key not in seen:
                seen.add(key)
                configs.append(config)
        return configs

    # --- adapters: the Optuna / HyperOpt conversions live in hpo.space.adapters ---------------
    # --- presentation and application -----------------------------------------------------------
    def table(self) -> list[dict[str, Any]]:
        """One row per searched param: parameter, type, range, scale, weights, condition, dependency."""
        from hpo.space.table import table_rows

        return table_rows(self)

    def apply(self, spec_dict: Mapping[str, Any], flat: Mapping[str, Any], *,
              trial_epochs: int | None = None) -> dict[str, Any]:
        """`apply_config` (and, with `trial_epochs`, the epoch budget with lr_steps rescaled)."""
        from hpo.space.apply import apply_config, apply_epoch_budget

        spec = apply_config(spec_dict, flat)
        return apply_epoch_budget(spec, trial_epochs) if trial_epochs is not None else spec


def trial_rng(seed: int, trial_index: int) -> np.random.Generator:
    """The generator of trial `trial_index` in a sweep seeded `seed`: SeedSequence((seed, index))."""
    mask = (1 << 64) - 1  # SeedSequence needs non-negative entropy; keep negative seeds distinct
    return np.random.default_rng(np.random.SeedSequence((int(seed) & mask, int(trial_index) & mask)))


def _explore(domain: Domain, current: Any, rng: np.random.Generator, factor: float) -> Any:
    """One PBT move of a single value inside `domain` (see SearchSpace.perturb)."""
    if isinstance(domain, CategoricalDomain):
        if not domain.ordered:
            return current
        i = domain.index(current)
        step = 1 if rng.random() < 0.5 else -1
        for j in (i + step, i - step):
            if 0 <= j < len(domain.options):
                return domain.options[j]
        return current
    if isinstance(domain, BoolDomain):
        return current
    up = rng.random() < 0.5
    value = float(current)
    if value == 0:  # a multiplicative move cannot leave zero: redraw instead
        return domain.decode(rng.random())
    for direction_up in (up, not up):
        target = value * factor if (direction_up == (value > 0)) else value / factor
        if isinstance(domain, IntDomain):
            moved = int(round(target))
            if moved == int(current):  # small ints would never move: step to the next integer
                moved = int(current) + (1 if target > value else -1)
            if not (domain.low <= moved <= domain.high):
                continue  # leaving the range: go the other way (no pile on the bound)
            between = domain.restricted(low=min(moved, int(current)), high=max(moved, int(current)))
            candidate = between.decode(1.0 if moved > int(current) else 0.0)
            if candidate != int(current):
                return candidate
        elif domain.contains(target):
            return target
    return domain.decode(rng.random())
