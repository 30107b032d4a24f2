"""Read a TAO-format train schema (TAO's real ones, ours, or a user's) into flat dotted leaves.

TAO's generated schemas are not JSON Schema (notes/tao.md §2): `type` holds TAO value types
(`float, int, bool, string, categorical, ordered_int, list, collection, subset_list, optional_list`),
unions are `anyOf`, unbounded maxima are bare `Infinity`, missing values are `"???"`, and `properties`
holds one non-dict entry (the `automl_disabled_parameters` quirk). This reader accepts all of that, plus
plain JSON-Schema spellings (`number`, `integer`, `boolean`, `object`, `array`, type lists).

Reading is tolerant, use is strict: a leaf's malformed metadata is recorded in `SchemaLeaf.problems`
and only becomes a `SchemaError` naming the parameter when that parameter is actually searched.
A schema whose overall shape is unusable (not an object, no `properties`) is a SchemaError at once.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from gdino.errors import SchemaError
from gdino.resources import resources

MISSING = "???"  # omegaconf's MISSING as TAO's schemas print it

SEARCHABLE_TYPES = frozenset({"float", "int", "bool", "categorical", "ordered_int"})
CONTAINER_TYPES = frozenset({"object", "collection", "dict"})
_TYPE_ALIASES = {
    "number": "float", "integer": "int", "boolean": "bool", "str": "string", "ordered": "categorical",
    "array": "list", "object": "collection", "dict": "collection", "null": "null",
}
MAX_DEPTH = 32  # deeper nesting than any real spec: refuse instead of recursing without bound


def default_schema_path() -> Path:
    """Our train schema as packaged in gdino/resources (importlib.resources; the same file in a checkout
    and in an installed wheel). Packages are installed unzipped, so the resource is a real file."""
    return Path(str(resources().joinpath("schemas", "train.schema.json")))


@dataclass(frozen=True)
class SchemaLeaf:
    """One dotted parameter of the schema with the metadata the search space needs.

    Numbers are floats (inf allowed; NaN read as "not given"); `problems` lists metadata that could
    not be read (raised only if the leaf is searched).
    """

    name: str
    value_type: str
    default: Any = None
    has_default: bool = False
    minimum: float | None = None
    maximum: float | None = None
    has_maximum: bool = False
    enum: tuple | None = None
    option_weights: tuple | None = None
    math_cond: str | None = None
    depends_on: str | None = None
    parent_param: bool = False
    automl_enabled: bool | None = None
    popular: bool = False
    title: str = ""
    description: str = ""
    x_log_scale: bool | None = None
    x_search_min: float | None = None
    x_search_max: float | None = None
    x_note: str = ""
    problems: tuple[str, ...] = ()

    @property
    def searchable(self) -> bool:
        if self.value_type in SEARCHABLE_TYPES:
            return True
        return self.value_type == "string" and bool(self.enum)

    @property
    def missing_default(self) -> bool:
        return self.default == MISSING


@dataclass(frozen=True)
class TrainSchema:
    """A flattened schema: leaves by dotted name and the top-level AutoML lists."""

    leaves: Mapping[str, SchemaLeaf]
    default_parameters: tuple[str, ...] = ()
    disabled_parameters: frozenset[str] = frozenset()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    source: str = "<dict>"
    network_arch: str | None = None

    def leaf(self, name: str) -> SchemaLeaf | None:
        return self.leaves.get(name)

    def is_disabled(self, name: str) -> bool:
        leaf = self.leaves.get(name)
        return name in self.disabled_parameters or (leaf is not None and leaf.automl_enabled is False)

    def sections(self) -> set[str]:
        """Dotted names of every non-leaf level (e.g. `train`, `train.optim`)."""
        out: set[str] = set()
        for name in self.leaves:
            parts = name.split(".")
            out.update(".".join(parts[:i]) for i in range(1, len(parts)))
        return out


# --- parsing helpers ---------------------------------------------------------------------------
def parse_schema_text(text: str, *, source: str = "<text>") -> Any:
    """JSON with bare Infinity/-Infinity/NaN (Python's json accepts them; TAO emits them)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as err:
        raise SchemaError(f"{source} is not valid JSON: {err}",
                          hint="TAO schemas are JSON; bare Infinity/NaN are accepted") from err


def _number(value: Any, what: str, problems: list[str]) -> float | None:
    """A bound as float; "inf"/"Infinity" strings accepted; NaN and None mean "not given"."""
    if value is None or isinstance(value, bool):
        if isinstance(value, bool):
            problems.append(f"{what} must be a number, got {value!r}")
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if text in {"inf", "+inf", "infinity", "+infinity"}:
            return math.inf
        if text in {"-inf", "-infinity"}:
            return -math.inf
        if text in {"", "none", "null", "nan"}:
            return None
        try:
            number = float(text)
        except ValueError:
            problems.append(f"{what} must be a number, got {value!r}")
            return None
    else:
        problems.append(f"{what} must be a number, got {type(value).__name__}")
        return None
    return None if math.isnan(number) else number


def _literal(text: str) -> Any:
    """'4' -> 4, '0.5' -> 0.5, anything else stays a string (TAO casts options to the field type)."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text


def _truthy(value: Any) -> bool | None:
    """TAO writes flags as booleans or as "TRUE"/"FALSE"/"yes" strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in {"true", "yes", "1"}:
            return True
        if text in {"false", "no", "0"}:
            return False
    return None


def _resolve_type(node: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """(normalised TAO type, the node that carries the metadata) — anyOf/type lists take the first
    non-null branch, as TAO does."""
    branch: Mapping[str, Any] = node
    raw = node.get("type")
    alternatives = node.get("anyOf") or node.get("oneOf")
    if raw is None and isinstance(alternatives, list):
        options = [b for b in alternatives if isinstance(b, dict)]
        chosen = next((b for b in options if b.get("type") not in (None, "null")), None)
        if chosen is not None:
            merged = {**chosen, **{k: v for k, v in node.items() if k not in ("anyOf", "oneOf")}}
            merged["type"] = chosen.get("type")
            return _resolve_type(merged)
        return "null", node
    if isinstance(raw, list):
        raw = next((t for t in raw if isinstance(t, str) and t != "null"), "null")
    if not isinstance(raw, str):
        if isinstance(node.get("properties"), dict):
            return "collection", branch
        return "unknown", branch
    value_type = _TYPE_ALIASES.get(raw.strip().lower(), raw.strip().lower())
    enum = node.get("enum", node.get("valid_options"))
    if (isinstance(enum, list) and enum) or (isinstance(enum, str) and enum.strip()):
        if value_type == "int":
            value_type = "ordered_int"
        elif value_type == "string":
            value_type = "categorical"
        elif value_type == "float":
            value_type = "categorical"
    if raw.strip().lower() == "ordered":
        value_type = "categorical"
    return value_type, branch


def _leaf(name: str, node: Mapping[str, Any], value_type: str, inherited_default: Any,
          has_inherited: bool) -> SchemaLeaf:
    problems: list[str] = []
    minimum = _number(node.get("minimum", node.get("valid_min")), "minimum", problems)
    has_max = "maximum" in node or "valid_max" in node
    maximum = _number(node.get("maximum", node.get("valid_max")), "maximum", problems)
    enum = node.get("enum", node.get("valid_options"))
    if isinstance(enum, str):  # TAO's dataclass metadata spells options as a comma-separated string
        enum = [_literal(e.strip()) for e in enum.split(",") if e.strip()]
    if enum is not None and not isinstance(enum, list):
        problems.append(f"enum must be a list, got {type(enum).__name__}")
        enum = None
    weights = node.get("option_weights")
    if weights is not None:
        if not isinstance(weights, list):
            problems.append(f"option_weights must be a list, got {type(weights).__name__}")
            weights = None
        else:
            parsed = [_number(w, "option_weights entry", problems) for w in weights]
            weights = tuple(math.nan if w is None else w for w in parsed)
    text_fields = {}
    for key in ("math_cond", "depends_on"):
        value = node.get(key)
        if value is not None and not isinstance(value, str):
            problems.append(f"{key} must be a string, got {value!r}")
            value = None
        text_fields[key] = value.strip() if isinstance(value, str) and value.strip() else None
    x_log = node.get("x_log_scale")
    if x_log is not None and not isinstance(x_log, bool):
        problems.append(f"x_log_scale must be true or false, got {x_log!r}")
        x_log = None
    has_default = "default" in node or has_inherited
    default = node["default"] if "default" in node else inherited_default
    return SchemaLeaf(
        name=name, value_type=value_type, default=default, has_default=has_default,
        minimum=minimum, maximum=maximum, has_maximum=has_max,
        enum=tuple(enum) if enum is not None else None,
        option_weights=tuple(weights) if weights is not None else None,
        math_cond=text_fields["math_cond"], depends_on=text_fields["depends_on"],
        parent_param=bool(_truthy(node.get("parent_param"))),
        automl_enabled=_truthy(node.get("automl_enabled")),
        popular=bool(_truthy(node.get("popular"))),
        title=str(node.get("title") or ""), description=str(node.get("description") or ""),
        x_log_scale=x_log,
        x_search_min=_number(node.get("x_search_min"), "x_search_min", problems),
        x_search_max=_number(node.get("x_search_max"), "x_search_max", problems),
        x_note=node["x_note"] if isinstance(node.get("x_note"), str) else "",
        problems=tuple(problems),
    )


def flatten_properties(properties: Mapping[str, Any], prefix: str = "", defaults: Any = None,
                       depth: int = 0) -> dict[str, SchemaLeaf]:
    """Dotted leaves of a `properties` mapping; non-dict entries (TAO's quirk) are skipped."""
    if depth > MAX_DEPTH:
        raise SchemaError(f"schema nesting deeper than {MAX_DEPTH} levels at {prefix!r}")
    leaves: dict[str, SchemaLeaf] = {}
    for key, node in properties.items():
        if not isinstance(node, dict) or not isinstance(key, str) or not key:
            continue
        name = f"{prefix}{key}"
        value_type, branch = _resolve_type(node)
        inherited = defaults.get(key) if isinstance(defaults, dict) else None
        has_inherited = isinstance(defaults, dict) and key in defaults
        children = branch.get("properties")
        if isinstance(children, dict) and value_type in CONTAINER_TYPES | {"collection", "unknown"}:
            child_defaults = branch.get("default") if isinstance(branch.get("default"), dict) else inherited
            leaves.update(flatten_properties(children, f"{name}.", child_defaults, depth + 1))
            continue
        leaves[name] = _leaf(name, branch, value_type, inherited, has_inherited)
    return leaves


def _name_list(doc: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = doc.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SchemaError(f"top-level {key!r} must be a list of dotted names")
    return tuple(dict.fromkeys(value))


def read_schema(source: Mapping[str, Any] | str | Path) -> TrainSchema:
    """Load and flatten a schema from a dict, a JSON file path, or JSON text."""
    label = "<dict>"
    if isinstance(source, (str, Path)):
        text_source = str(source)
        if isinstance(source, Path) or not text_source.lstrip().startswith("{"):
            path = Path(text_source).expanduser()
            label = str(path)
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError as err:
                raise SchemaError(f"schema file {path} not found",
                                  hint="run `grounding_dino schema --write`, or pass --schema FILE") from err
            except (OSError, UnicodeDecodeError) as err:
                raise SchemaError(f"cannot read schema file {path}: {err}") from err
        else:
            text, label = text_source, "<text>"
        doc = parse_schema_text(text, source=label)
    elif isinstance(source, Mapping):
        doc = source
    else:
        raise SchemaError(f"a schema must be a mapping, a path or JSON text, got {type(source).__name__}")
    if not isinstance(doc, Mapping):
        raise SchemaError(f"schema {label} must be a JSON object, got {type(doc).__name__}")
    properties = doc.get("properties")
    if not isinstance(properties, Mapping):
        raise SchemaError(f"schema {label} has no 'properties' object")
    given_defaults = doc.get("default")
    defaults: dict[str, Any] = given_defaults if isinstance(given_defaults, dict) else {}
    leaves = flatten_properties(dict(properties), "", defaults)
    default_parameters = _name_list(doc, "automl_default_parameters")
    disabled = frozenset(_name_list(doc, "automl_disabled_parameters"))
    given_meta = doc.get("x_tao_schema")
    meta: Mapping[str, Any] = given_meta if isinstance(given_meta, dict) else {}
    arch = meta.get("network_arch")
    return TrainSchema(leaves=leaves, default_parameters=default_parameters, disabled_parameters=disabled,
                       defaults=defaults, source=label,
                       network_arch=arch if isinstance(arch, str) else None)
