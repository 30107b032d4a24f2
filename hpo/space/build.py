"""`build_search_space`: a train schema + the spec's `automl` section -> the effective `SearchSpace`.

The steps, in order (notes/tao.md §3.2–§3.3 for TAO's versions of each):
  1. select: `automl.hyperparameters` or the schema's `automl_default_parameters`, plus
     `add_hyperparameters`, minus `remove_hyperparameters`, minus disabled params (unless
     `override_automl_disabled_params`), minus params the user removed from the spec, minus what the
     caller excludes (the epoch budget when epochs are the fidelity). Unknown or unsearchable names
     are SpecErrors naming the list they came from.
  2. override: `automl.range_override` entries (TAO's shape) replace the leaf's metadata.
  3. range: `tao` mode applies TAO's `get_valid_range` (missing min 0, infinite bound -> default,
     linear floats; ints without a max -> [max(1, d//2), 2d]); `default` mode uses the schema's
     `x_search_min/x_search_max/x_log_scale`, else the built-in table for rate-like params, else a
     finite range around the default. (`tao` mode reproduces TAO's ranges and linear sampling, not
     its post-sampling clamping of values towards the bounds.)
  4. constraints: numeric `math_cond` narrows the domain, `^ k` / `/ k` / `!= k` shape integer
     domains, relational `math_cond` + `depends_on` become `Relation`s (or narrow the domain now
     when the parent is not searched), the DETR num_select rule, and the conditional rules.
"""
from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence

from gdino.errors import SchemaError, SpecError
from hpo.schema_reader import SchemaLeaf, TrainSchema, default_schema_path, read_schema
from hpo.space import gdino_rules as rules
from hpo.space.domains import BoolDomain, CategoricalDomain, Domain, EmptyDomain, FloatDomain, IntDomain
from hpo.space.space import Condition, Excluded, Param, Relation, SearchSpace

EPOCH_PARAMS = rules.EPOCH_PARAMS

# TAO's spec shorthand keys (skill_info.yaml `spec_shorthand_keys`) that stand for a dotted leaf.
SHORTHANDS = {
    "num_epochs": "train.num_epochs", "batch_size": "dataset.batch_size", "learning_rate": "train.optim.lr",
    "num_queries": "model.num_queries", "num_select": "model.num_select", "max_text_len": "model.max_text_len",
}

_MATH_TOKEN = re.compile(
    r"\s*(?P<op>>=|<=|!=|==|>|<|\^|/)\s*"
    r"(?P<operand>depends_on|[-+]?(?:inf|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|[A-Za-z_][\w.\[\]]*)\s*")


# --- the spec side -------------------------------------------------------------------------------
def _automl_section(cfg: Any) -> Any:
    """The validated AutoMLConfig of `cfg` (pydantic model or raw mapping)."""
    from gdino.config.automl import AutoMLConfig

    section = cfg.get("automl") if isinstance(cfg, Mapping) else getattr(cfg, "automl", None)
    if section is None:
        return AutoMLConfig()
    if isinstance(section, AutoMLConfig):
        return section
    if hasattr(section, "model_dump"):
        section = section.model_dump()
    if not isinstance(section, Mapping):
        raise SpecError("must be a mapping", key="automl")
    from pydantic import ValidationError

    try:
        return AutoMLConfig.model_validate(dict(section))
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ()))
        raise SpecError(first.get("msg", str(err)), key=f"automl.{where}" if where else "automl") from err


def _spec_dict(cfg: Any) -> dict[str, Any]:
    if isinstance(cfg, Mapping):
        return dict(cfg)
    if hasattr(cfg, "model_dump"):
        return cfg.model_dump(mode="json")
    raise SpecError(f"expected an ExperimentConfig or a spec mapping, got {type(cfg).__name__}")


def _lookup(spec: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = spec
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def written_keys(cfg: Any) -> dict[str, Any] | None:
    """The keys the user gave (spec file, shorthands and overrides) of a pydantic config, nested.

    Pydantic records them in `model_fields_set`; values are irrelevant to the removed-param rule.
    """
    fields_set = getattr(cfg, "model_fields_set", None)
    if fields_set is None:
        return None
    out: dict[str, Any] = {}
    for key in fields_set:
        value = getattr(cfg, key, None)
        out[key] = written_keys(value) if hasattr(value, "model_fields_set") else True
    return out


def removed_from_spec(name: str, user_spec: Mapping[str, Any] | None) -> bool:
    """TAO's rule: the user wrote the param's section but left the param out.

    A section the user did not write at all keeps its defaults (partial specs are normal here), and a
    shorthand key (e.g. `learning_rate`) counts as writing the param.
    """
    if not isinstance(user_spec, Mapping) or "." not in name:
        return False
    if any(short in user_spec for short, target in SHORTHANDS.items() if target == name):
        return False
    section, leaf = name.rsplit(".", 1)
    found, node = _lookup(user_spec, section)
    return found and isinstance(node, Mapping) and leaf not in node


# --- selection -----------------------------------------------------------------------------------
@dataclass
class Selection:
    names: list[str] = field(default_factory=list)
    explicit: set[str] = field(default_factory=set)
    excluded: list[Excluded] = field(default_factory=list)


def _did_you_mean(name: str, doc: TrainSchema) -> str | None:
    close = difflib.get_close_matches(name, list(doc.leaves), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def _check_known(name: Any, doc: TrainSchema, key: str) -> str:
    if not isinstance(name, str) or not name:
        raise SpecError(f"parameter names must be dotted strings, got {name!r}", key=key)
    if name not in doc.leaves:
        what = "is a section, not a parameter" if name in doc.sections() else "is not in the train schema"
        raise SpecError(f"{name!r} {what}", key=key,
                        hint=_did_you_mean(name, doc) or f"see the leaves of {doc.source}")
    return name


def select_parameters(doc: TrainSchema, automl: Any, user_spec: Mapping[str, Any] | None,
                      exclude: Iterable[str] = ()) -> Selection:
    """Which schema leaves are searched (step 1 of the module docstring)."""
    selection = Selection()
    requested = automl.hyperparameters
    for name in requested or ():
        _check_known(name, doc, "automl.hyperparameters")
    for name in automl.add_hyperparameters:
        _check_known(name, doc, "automl.add_hyperparameters")
    for name in automl.remove_hyperparameters:
        _check_known(name, doc, "automl.remove_hyperparameters")
    if requested is not None:
        base = list(requested)
        selection.explicit.update(requested)
    else:
        base = list(doc.default_parameters) or [n for n, leaf in doc.leaves.items() if leaf.automl_enabled]
        unknown = [n for n in base if n not in doc.leaves]
        if unknown:
            raise SchemaError("listed in automl_default_parameters but not a leaf of the schema",
                              parameter=unknown[0])
    selection.explicit.update(automl.add_hyperparameters)
    removed = set(automl.remove_hyperparameters)
    excluded_by_caller = set(exclude)
    for name in dict.fromkeys(base + list(automl.add_hyperparameters)):
        leaf = doc.leaves[name]
        explicit = name in selection.explicit
        key = "automl.add_hyperparameters" if name in automl.add_hyperparameters else "automl.hyperparameters"
        if name in removed:
            selection.excluded.append(Excluded(name, "removed by automl.remove_hyperparameters"))
            continue
        if name in excluded_by_caller:
            if explicit:
                raise SpecError(f"{name!r} is set by the algorithm (its epoch budget is the fidelity), "
                                "so it cannot also be searched", key=key,
                                hint="remove it from the automl lists, or use a non multi-fidelity algorithm")
            selection.excluded.append(Excluded(name, "set by the algorithm (epoch budget / fidelity)"))
            continue
        if not leaf.searchable:
            raise SpecError(f"{name!r} has type {leaf.value_type!r}, which cannot be searched"
                            " (searchable: float, int, bool, categorical, ordered_int)", key=key)
        if doc.is_disabled(name) and not automl.override_automl_disabled_params:
            if explicit:
                raise SpecError(f"{name!r} is disabled for AutoML in the schema", key=key,
                                hint="set automl.override_automl_disabled_params: true to search it anyway")
            selection.excluded.append(Excluded(name, "disabled for AutoML in the schema"))
            continue
        if not explicit and removed_from_spec(name, user_spec):
            selection.excluded.append(Excluded(name, "removed from the spec (its section omits it)"))
            continue
        selection.names.append(name)
    return selection


# --- overrides -----------------------------------------------------------------------------------
def _override_entries(automl: Any, doc: TrainSchema, selected: Sequence[str]) -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(automl.range_override):
        data = entry.model_dump(exclude_none=True) if hasattr(entry, "model_dump") else dict(entry)
        key = f"automl.range_override[{i}]"
        name = _check_known(data.get("parameter"), doc, f"{key}.parameter")
        if name not in selected:
            raise SpecError(f"{name!r} has a range override but is not searched", key=key,
                            hint="add it to automl.add_hyperparameters (or drop the override)")
        if name in entries:
            raise SpecError(f"{name!r} has two range overrides", key=key)
        entries[name] = data
    return entries


def apply_override(leaf: SchemaLeaf, override: Mapping[str, Any] | None) -> tuple[SchemaLeaf, bool | None, bool]:
    """(leaf with TAO-shaped override applied, log_scale override, whether the range was overridden)."""
    if not override:
        return leaf, None, False
    changes: dict[str, Any] = {}
    ranged = False
    if "valid_min" in override:
        changes["minimum"] = changes["x_search_min"] = float(override["valid_min"])
        ranged = True
    if "valid_max" in override:
        changes["maximum"] = changes["x_search_max"] = float(override["valid_max"])
        changes["has_maximum"] = True
        ranged = True
    options = list(leaf.enum) if leaf.enum is not None else None
    weights = list(leaf.option_weights) if leaf.option_weights is not None else None
    if "valid_options" in override:
        custom = list(override["valid_options"])
        if options is not None:  # TAO intersects custom options with the schema's
            kept = [o for o in custom if o in options]
            if not kept:
                raise SchemaError(f"valid_options {custom} share nothing with the schema's {options}",
                                  parameter=leaf.name)
            custom = kept
        options, weights = custom, None
        if leaf.value_type in {"int", "float"}:
            changes["value_type"] = "ordered_int" if leaf.value_type == "int" else "categorical"
    if "option_weights" in override:
        weights = [float(w) for w in override["option_weights"]]
    if "disable_list" in override and options is not None:
        disabled = list(override["disable_list"])
        pairs = [(o, weights[i] if weights is not None and i < len(weights) else None)
                 for i, o in enumerate(options) if o not in disabled]
        if not pairs:
            raise SchemaError("disable_list removes every option", parameter=leaf.name)
        if weights is not None and len(weights) != len(options):
            raise SchemaError(f"{len(weights)} option_weights for {len(options)} options", parameter=leaf.name)
        options = [o for o, _ in pairs]
        weights = [w for _, w in pairs] if weights is not None else None
    if options is not None:
        changes["enum"] = tuple(options)
        if leaf.value_type == "string":
            changes["value_type"] = "categorical"
    changes["option_weights"] = tuple(weights) if weights is not None else None
    for key in ("math_cond", "depends_on"):
        if key in override:
            changes[key] = override[key] or None
    if "parent_param" in override:
        changes["parent_param"] = bool(override["parent_param"])
    return replace(leaf, **changes), override.get("log_scale"), ranged


# --- math_cond -----------------------------------------------------------------------------------
def parse_math_cond(text: str | None, name: str) -> list[tuple[str, Any]]:
    """TAO's math_cond strings as (op, operand) pairs: '> 0.0', '>0', '!= 0', '^ 2', '/ 8',
    '> depends_on', '> 0.0 <= 1.0', '<50'. Anything else is a SchemaError naming the param."""
    if not text:
        return []
    pos, out = 0, []
    while pos < len(text):
        match = _MATH_TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise SchemaError(f"cannot read math_cond {text!r}", parameter=name,
                              hint="use forms like '> 0.0', '>= 1', '!= 0', '^ 2', '/ 8' or '> depends_on'")
        operand = match.group("operand")
        try:
            value: Any = float(operand)
        except ValueError:
            value = operand  # 'depends_on' or a dotted parameter name
        out.append((match.group("op"), value))
        pos = match.end()
    return out


# --- ranges ----------------------------------------------------------------------------------------
def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _numeric_default(leaf: SchemaLeaf) -> float:
    value = leaf.default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SchemaError(f"needs a numeric default to derive its range, got {value!r}", parameter=leaf.name,
                          hint="give finite minimum/maximum in the schema or an automl.range_override")
    return float(value)


def _check_bounds(leaf: SchemaLeaf) -> None:
    if _finite(leaf.minimum) and _finite(leaf.maximum) and leaf.minimum > leaf.maximum:
        raise SchemaError(f"minimum {leaf.minimum:g} > maximum {leaf.maximum:g}", parameter=leaf.name)
    if leaf.minimum is not None and leaf.minimum == math.inf:
        raise SchemaError("minimum is +inf", parameter=leaf.name)
    if leaf.maximum is not None and leaf.maximum == -math.inf:
        raise SchemaError("maximum is -inf", parameter=leaf.name)


def tao_range(leaf: SchemaLeaf, integral: bool) -> tuple[float, float]:
    """TAO's `get_valid_range` (notes/tao.md §3.3), including its inf -> default rule."""
    if integral and not leaf.has_maximum:  # no max at all: TAO's default-based int range
        d = int(_numeric_default(leaf))
        return float(max(1, d // 2)), float(max(d * 2, max(1, d // 2)))
    lo = 0.0 if leaf.minimum is None else leaf.minimum
    hi = math.inf if leaf.maximum is None else leaf.maximum
    if not math.isfinite(lo):
        lo = _numeric_default(leaf)
    if not math.isfinite(hi):
        hi = _numeric_default(leaf)
    if lo > hi or (lo == hi and not integral):  # no usable range: TAO's default/10 .. default*10
        d = _numeric_default(leaf)
        lo, hi = (d / 10, d * 10) if d > 0 else ((d * 10, d / 10) if d < 0 else (-1.0, 1.0))
    return lo, hi


def default_range(leaf: SchemaLeaf, integral: bool, ranged_by_user: bool) -> tuple[float, float, bool | None]:
    """Our finite range: schema x_search_* (or a user override), the built-in table, or around the
    default. Returns (low, high, log or None when not decided here)."""
    lo_given, hi_given = leaf.x_search_min, leaf.x_search_max
    if not ranged_by_user and lo_given is None and hi_given is None and leaf.name in rules.DEFAULT_MODE_RANGES:
        lo, hi, log = rules.DEFAULT_MODE_RANGES[leaf.name]
        return lo, hi, log
    if lo_given is not None and _finite(leaf.minimum) and lo_given < leaf.minimum and not ranged_by_user:
        raise SchemaError(f"x_search_min {lo_given:g} is below the schema minimum {leaf.minimum:g}",
                          parameter=leaf.name)
    if hi_given is not None and _finite(leaf.maximum) and hi_given > leaf.maximum and not ranged_by_user:
        raise SchemaError(f"x_search_max {hi_given:g} is above the schema maximum {leaf.maximum:g}",
                          parameter=leaf.name)
    lo = lo_given if _finite(lo_given) else leaf.minimum
    hi = hi_given if _finite(hi_given) else leaf.maximum
    if not (_finite(lo) and _finite(hi)):  # centre a finite range on the default
        d = _numeric_default(leaf)
        if integral:
            around_lo, around_hi = max(1.0, float(int(d) // 2)), float(max(int(d) * 2, 2))
        elif d > 0:
            around_lo, around_hi = d / 10, d * 10
        else:
            around_lo, around_hi = (d * 10, d / 10) if d < 0 else (-1.0, 1.0)
        if _finite(lo):
            lo = lo if _finite(lo_given) else max(lo, around_lo)
            hi = max(around_hi, lo + 1)
        elif _finite(hi):
            hi = hi if _finite(hi_given) else min(hi, around_hi)
            lo = min(around_lo, hi - 1)
        else:
            lo, hi = around_lo, around_hi
    if lo > hi:
        raise SchemaError(f"search range [{lo:g}, {hi:g}] is empty", parameter=leaf.name)
    return float(lo), float(hi), None


def _numeric_domain(leaf: SchemaLeaf, mode: str, log_override: bool | None, ranged: bool,
                    conds: list[tuple[str, Any]]) -> Domain:
    integral = leaf.value_type == "int"
    _check_bounds(leaf)
    if mode == "tao":
        lo, hi = tao_range(leaf, integral)
        log_from_range = None
        log = False if log_override is None else bool(log_override)
    else:
        lo, hi, log_from_range = default_range(leaf, integral, ranged)
        explicit_log = log_override if log_override is not None else leaf.x_log_scale
        if explicit_log is not None:
            log = bool(explicit_log)
            if log and lo <= 0:
                raise SchemaError(f"log scale needs a positive lower bound, range is [{lo:g}, {hi:g}]",
                                  parameter=leaf.name)
        else:
            implied = log_from_range if log_from_range is not None else rules.is_rate_like(leaf.name)
            log = bool(implied) and lo > 0 and not integral
    step = power = None
    exclude: set[int] = set()
    for op, operand in conds:
        if op in {"^", "/"}:
            if not integral or not isinstance(operand, float) or operand != int(operand):
                raise SchemaError(f"math_cond '{op} {operand}' needs an integer parameter and operand",
                                  parameter=leaf.name)
            if op == "^":
                power = int(operand)
            else:
                step = int(operand)
        elif op == "!=" and isinstance(operand, float) and integral:
            exclude.add(int(operand))
    try:
        if integral:
            lo_i, hi_i = math.ceil(lo), math.floor(hi)
            domain: Domain = IntDomain(int(lo_i), int(hi_i), log=log and power is None and lo_i >= 1,
                                       step=step, power_base=power, exclude=frozenset(exclude))
        else:
            domain = FloatDomain(lo, hi, log=log)
        for op, operand in conds:  # numeric relational conditions narrow the domain
            if isinstance(operand, float) and op in {">", ">=", "<", "<="}:
                if op in {">", ">="}:
                    domain = domain.restricted(low=operand, low_open=op == ">")
                else:
                    domain = domain.restricted(high=operand, high_open=op == "<")
            elif op == "==":
                raise SchemaError(f"math_cond '== {operand}' pins the value; it cannot be searched",
                                  parameter=leaf.name)
    except EmptyDomain as err:
        raise SchemaError(f"empty feasible set ({err})", parameter=leaf.name,
                          hint="check minimum/maximum/math_cond or the automl.range_override") from err
    return domain


def _choice_domain(leaf: SchemaLeaf) -> Domain:
    if leaf.value_type == "bool":
        return BoolDomain()
    options = leaf.enum
    if not options:
        raise SchemaError("a categorical parameter needs a non-empty enum", parameter=leaf.name)
    if len(set(map(repr, options))) != len(options):
        raise SchemaError(f"enum has repeated options {list(options)}", parameter=leaf.name)
    weights = leaf.option_weights
    if weights is not None:
        if len(weights) != len(options):
            raise SchemaError(f"{len(weights)} option_weights for {len(options)} options "
                              "(weights are positional with the options)", parameter=leaf.name)
        if any(not math.isfinite(w) or w <= 0 for w in weights):
            raise SchemaError(f"option_weights must be finite and positive, got {list(weights)}",
                              parameter=leaf.name)
    if leaf.value_type == "ordered_int" and not all(isinstance(o, int) and not isinstance(o, bool)
                                                    for o in options):
        raise SchemaError(f"ordered_int options must be integers, got {list(options)}", parameter=leaf.name)
    try:
        return CategoricalDomain(tuple(options), tuple(weights) if weights is not None else None,
                                 ordered=leaf.value_type == "ordered_int")
    except EmptyDomain as err:
        raise SchemaError(str(err), parameter=leaf.name) from err


# --- the builder ---------------------------------------------------------------------------------
def _schema_source(schema: Any, automl: Any) -> Any:
    if schema is not None:
        return schema
    if getattr(automl, "schema_path", None):
        return automl.schema_path
    return default_schema_path()


def build_search_space(cfg: Any, *, schema: Mapping[str, Any] | str | None = None,
                       exclude: Iterable[str] = (), epochs_are_fidelity: bool = False,
                       user_spec: Mapping[str, Any] | None = None) -> SearchSpace:
    """The effective search space of `cfg` (ExperimentConfig or nested spec dict).

    Args:
        cfg: the resolved experiment (its `automl` section selects params, mode, overrides).
        schema: a schema dict, a path to one, or None for `cfg.automl.schema_path` / ours
            (schemas/train.schema.json).
        exclude: dotted names never searched (e.g. what an algorithm controls itself).
        epochs_are_fidelity: drop `train.num_epochs` (the algorithm sets the epoch budget).
        user_spec: the spec as the user wrote it, to honour params they removed (TAO: a param of the
            schema's defaults that the user's spec leaves out is not searched). Default: `cfg`
            itself when it is a mapping, else the keys the user set on the ExperimentConfig (file,
            shorthands and overrides: pydantic's fields_set), so every caller agrees.

    Raises:
        SpecError: a name in the automl section is unknown, unsearchable or disabled.
        SchemaError: metadata that gives no usable domain (names the parameter).
    """
    automl = _automl_section(cfg)
    spec = _spec_dict(cfg)
    if user_spec is None:
        user_spec = cfg if isinstance(cfg, Mapping) else written_keys(cfg)
    doc = read_schema(_schema_source(schema, automl))
    mode = automl.space_mode
    excluded_names = set(exclude) | (set(EPOCH_PARAMS) if epochs_are_fidelity else set())
    selection = select_parameters(doc, automl, user_spec, excluded_names)
    drop_architecture_params(selection, spec)
    overrides = _override_entries(automl, doc, selection.names)
    return _assemble(doc, spec, mode, selection, overrides)


def drop_architecture_params(selection: Selection, spec: Mapping[str, Any]) -> list[str]:
    """When the sweep starts from a pretrained checkpoint, parameters that change the network's tensors
    (gdino_rules.ARCHITECTURE_PARAMS) are not searched: the checkpoint fixes them. Each one dropped is
    listed under "not searched" with the reason (and printed by `automl space` and at launch)."""
    found, checkpoint = _lookup(spec, "train.pretrained_model_path")
    if not found or checkpoint in (None, "", "???"):
        return []
    dropped = [n for n in selection.names if rules.is_architecture_param(n)]
    for name in dropped:
        selection.names.remove(name)
        selection.explicit.discard(name)
        selection.excluded.append(Excluded(name, f"starting from the pretrained checkpoint {checkpoint}: "
                                                 f"{rules.ARCHITECTURE_PARAMS[name]}, so the checkpoint fixes it"))
    return dropped


def _spec_value(doc: TrainSchema, spec: Mapping[str, Any], name: str) -> Any:
    found, value = _lookup(spec, name)
    if found and value is not None:
        return value
    leaf = doc.leaves.get(name)
    return leaf.default if leaf is not None else None


def _assemble(doc: TrainSchema, spec: Mapping[str, Any], mode: str, selection: Selection,
              overrides: Mapping[str, Mapping[str, Any]]) -> SearchSpace:
    selected = set(selection.names)
    excluded = list(selection.excluded)
    fixed: dict[str, Any] = {}
    params: list[Param] = []
    for name in selection.names:
        leaf = doc.leaves[name]
        if leaf.problems:
            raise SchemaError("; ".join(leaf.problems), parameter=name)
        leaf, log_override, ranged = apply_override(leaf, overrides.get(name))
        conds = parse_math_cond(leaf.math_cond, name)
        if leaf.depends_on is not None and leaf.depends_on not in doc.leaves:
            raise SchemaError(f"depends_on {leaf.depends_on!r} is not a parameter of the schema", parameter=name)
        if leaf.depends_on == name:
            raise SchemaError("depends on itself", parameter=name)
        relational = [(op, operand) for op, operand in conds if isinstance(operand, str)]
        numeric = [(op, operand) for op, operand in conds if not isinstance(operand, str)]
        if leaf.value_type in {"int", "float"}:
            domain = _numeric_domain(leaf, mode, log_override, ranged, numeric)
        else:
            if relational or any(op in {"^", "/"} for op, _ in numeric):
                raise SchemaError(f"math_cond {leaf.math_cond!r} needs a numeric parameter", parameter=name)
            domain = _choice_domain(leaf)
        default = _spec_value(doc, spec, name)
        domain, spec_note = include_spec_value(domain, default, mode=mode, ranged_by_user=ranged)
        relations: list[Relation] = []
        note = ""
        for op, operand in relational:
            parent = leaf.depends_on if operand == "depends_on" else operand
            if parent is None:
                raise SchemaError(f"math_cond {leaf.math_cond!r} refers to depends_on, which is not set",
                                  parameter=name)
            if parent not in doc.leaves:
                raise SchemaError(f"math_cond names {parent!r}, which is not a parameter", parameter=name)
            if op in {"^", "/"}:
                raise SchemaError(f"math_cond '{op} {parent}' derives the value from its parent; "
                                  "a derived value cannot be searched", parameter=name)
            if op in {"!=", "=="}:
                raise SchemaError(f"math_cond '{op} {parent}' is not supported", parameter=name)
            if parent in selected:
                relations.append(Relation(parent, op, 1.0, 0.0, f"math_cond '{leaf.math_cond}'"))
                continue
            # parent fixed: TAO uses the param's own default (a quirk); we use the parent's spec value
            anchor = leaf.default if mode == "tao" else _spec_value(doc, spec, parent)
            if isinstance(anchor, bool) or not isinstance(anchor, (int, float)):
                raise SchemaError(f"cannot resolve '{op} {parent}': value {anchor!r} is not numeric",
                                  parameter=name)
            fixed.setdefault(parent, anchor)
            domain = _narrow(domain, Relation(parent, op), anchor, name)
            note = (f"{op} {parent} resolved at {anchor!r}" +
                    (" (TAO uses the param's own default)" if mode == "tao" else ""))
        note = "; ".join(x for x in (leaf.x_note, note, spec_note) if x)
        param = Param(name, domain, leaf.value_type, default, relations=tuple(relations), note=note)
        params.append(param)
    params = _apply_num_select_rule(params, doc, spec, mode, selected, fixed)
    params, excluded = _apply_conditions(params, doc, spec, mode, selected, selection.explicit, excluded, fixed)
    return SearchSpace(tuple(params), excluded=tuple(excluded), fixed=fixed, mode=mode)


def include_spec_value(domain: Domain, value: Any, *, mode: str, ranged_by_user: bool) -> tuple[Domain, str]:
    """The domain widened to contain the spec's own `value` (default mode: the baseline trial, the spec
    as written, must lie in the space the sweep searches), with a note for `automl space`. In `tao` mode
    and for a user's range override the range stays as given and the note says the value lies outside."""
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or domain.contains(value):
        return domain, ""
    outside = f"the spec's value {value!r} lies outside {domain.describe()}"
    if mode == "tao" or ranged_by_user:
        return domain, outside + (" (tao mode keeps TAO's range)" if mode == "tao" else " (range override kept)")
    if isinstance(domain, FloatDomain) and numeric and not (domain.log and float(value) <= 0):
        v = float(value)
        low, high = min(domain.low, v), max(domain.high, v)
        widened = FloatDomain(low, high, log=domain.log, low_open=domain.low_open and low == domain.low,
                              high_open=domain.high_open and high == domain.high)
        return widened, f"widened from {domain.describe()} to include the spec's value {value!r}"
    if isinstance(domain, IntDomain) and numeric and float(value) == int(value) and domain.step is None \
            and domain.power_base is None and int(value) not in domain.exclude:
        v = int(value)
        widened = replace(domain, low=min(domain.low, v), high=max(domain.high, v))
        if widened.contains(v):
            return widened, f"widened from {domain.describe()} to include the spec's value {value!r}"
    return domain, outside + " (it cannot be widened to include it)"


def _narrow(domain: Domain, relation: Relation, anchor: float, name: str) -> Domain:
    try:
        bound = relation.bound(anchor)
        if relation.is_lower:
            return domain.restricted(low=bound, low_open=relation.strict)
        return domain.restricted(high=bound, high_open=relation.strict)
    except EmptyDomain as err:
        raise SchemaError(f"empty feasible set: {relation.op} {relation.parent} at {anchor!r} leaves nothing "
                          f"in {domain.describe()}", parameter=name) from err
    except TypeError as err:
        raise SchemaError(f"{relation.op} {relation.parent} needs a numeric parameter", parameter=name) from err


def _apply_num_select_rule(params: list[Param], doc: TrainSchema, spec: Mapping[str, Any], mode: str,
                           selected: set[str], fixed: dict[str, Any]) -> list[Param]:
    """num_select <= min(num_queries, num_queries * num_classes - 1), by construction."""
    if rules.NUM_SELECT not in selected:
        return params
    num_classes, source = rules.num_classes_for(spec, mode)
    out = []
    for p in params:
        if p.name != rules.NUM_SELECT:
            out.append(p)
            continue
        if not (isinstance(p.domain, (IntDomain, FloatDomain))
                or (isinstance(p.domain, CategoricalDomain) and p.domain.numeric)):
            raise SchemaError("the num_select <= num_queries rule needs numeric values", parameter=p.name)
        relations = rules.num_select_relations(num_classes)
        note = f"num_classes = {num_classes} ({source})"
        if rules.NUM_QUERIES in selected:
            out.append(replace(p, relations=p.relations + relations,
                               note="; ".join(x for x in (p.note, note) if x)))
            continue
        queries = _spec_value(doc, spec, rules.NUM_QUERIES)
        if isinstance(queries, bool) or not isinstance(queries, (int, float)):
            queries = rules.TAO_DEFAULT_NUM_QUERIES
        fixed.setdefault(rules.NUM_QUERIES, queries)
        cap = rules.num_select_cap(int(queries), num_classes)
        domain = _narrow(p.domain, Relation(rules.NUM_QUERIES, "<=", 1.0, 0.0), float(cap), p.name)
        note = f"capped at {cap} = min(num_queries {int(queries)}, num_queries*num_classes - 1); {note}"
        out.append(replace(p, domain=domain, note="; ".join(x for x in (p.note, note) if x)))
    return out


def _apply_conditions(params: list[Param], doc: TrainSchema, spec: Mapping[str, Any], mode: str,
                      selected: set[str], explicit: set[str], excluded: list[Excluded],
                      fixed: dict[str, Any]) -> tuple[list[Param], list[Excluded]]:
    """Conditional params (default mode): active only where the trainer reads them.

    tao mode keeps them unconditional, as TAO does, with a note saying they may have no effect.
    """
    out = []
    for p in params:
        rule = rules.CONDITIONS.get(p.name)
        if rule is None:
            out.append(p)
            continue
        parent, values, why = rule
        if mode == "tao":
            out.append(replace(p, note="; ".join(x for x in (p.note, f"TAO searches it even where it has no "
                                                             f"effect ({why})") if x)))
            continue
        if parent in selected:
            parent_domain = next(q.domain for q in params if q.name == parent)
            reachable = [v for v in values if parent_domain.contains(v)]
            if reachable:
                out.append(replace(p, condition=Condition(parent, tuple(reachable))))
                continue
            reason = f"no effect: {parent} never takes {' or '.join(map(str, values))} ({why})"
        else:
            value = _spec_value(doc, spec, parent)
            if any(value == v for v in values):
                fixed.setdefault(parent, value)
                out.append(p)
                continue
            fixed.setdefault(parent, value)
            reason = f"no effect with {parent} = {value!r} ({why})"
        if p.name in explicit:
            raise SpecError(f"{p.name!r} is requested but has no effect: {reason}", key="automl.hyperparameters",
                            hint=f"set {parent} to {' or '.join(map(str, values))}, or search {parent} too")
        excluded.append(Excluded(p.name, reason))
    return out, excluded
