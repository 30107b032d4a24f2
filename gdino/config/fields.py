"""TAO field metadata on pydantic fields, and the checks TAO's metadata implies.

TAO's dataclass fields carry `valid_min`, `valid_max`, `valid_options`, `math_cond`, `depends_on`, ...
(notes/tao.md §1.1). We keep the same metadata under the same names in each field's
`json_schema_extra`, so the schema generator (gdino.schema_gen) and the search-space reader can
rebuild TAO's schema from the config model alone. Keys starting with `x_` are ours (TAO ignores
unknown keys): `x_log_scale`, `x_search_min`, `x_search_max`, `x_note`.

The checks here run on load and on assignment:
  - numeric bounds (`valid_min` / `valid_max`, inclusive, `inf` = unbounded),
  - constant `math_cond` ("> 0.0", ">0", "!= 0"),
  - relational `math_cond` "> depends_on" against a sibling field of the same section.
They raise `PydanticCustomError`s whose type (`out_of_bounds`, `math_cond`) gdino.spec turns into
typed `SpecError`s.
"""
from __future__ import annotations

import math
import operator
import re
from typing import Any, Callable, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

INF = math.inf


_UNSET: Any = object()


def tao_field(default: Any = _UNSET, *, value_type: str, default_factory: Optional[Callable[[], Any]] = None,
              title: str | None = None, description: str | None = None,
              valid_min: float | None = None, valid_max: float | None = None,
              valid_options: list[Any] | None = None, option_weights: list[float] | None = None,
              math_cond: str | None = None, depends_on: str | None = None,
              parent_param: bool = False, automl_enabled: bool | None = None, popular: bool = False,
              pattern: str | None = None, required: bool = False, schema_default: Any = _UNSET,
              x_log_scale: bool | None = None, x_search_min: float | None = None,
              x_search_max: float | None = None, x_note: str | None = None, repr: bool = True) -> Any:
    """A pydantic Field carrying TAO's metadata (TAO names; `automl_enabled=None` = not flagged).

    `schema_default` is the default TAO's generated schema shows when it differs from the runtime
    default (TAO's dataclass default is None for a few fields whose schema shows a placeholder value,
    e.g. `dataset.eval_class_ids: [1]`; using the placeholder at run time would be a trap).
    """
    meta: dict[str, Any] = {"value_type": value_type}
    for key, value in (("title", title), ("description", description), ("valid_min", valid_min),
                       ("valid_max", valid_max), ("valid_options", valid_options),
                       ("option_weights", option_weights), ("math_cond", math_cond),
                       ("depends_on", depends_on), ("automl_enabled", automl_enabled),
                       ("pattern", pattern), ("x_log_scale", x_log_scale), ("x_search_min", x_search_min),
                       ("x_search_max", x_search_max), ("x_note", x_note)):
        if value is not None:
            meta[key] = value
    for key, flag in (("parent_param", parent_param), ("popular", popular), ("required", required)):
        if flag:
            meta[key] = True
    if schema_default is not _UNSET:
        meta["schema_default"] = schema_default
    kwargs: dict[str, Any] = {"json_schema_extra": meta, "repr": repr}
    if description:
        kwargs["description"] = description.strip()
    if title:
        kwargs["title"] = title
    if default_factory is not None:
        return Field(default_factory=default_factory, **kwargs)
    return Field(default=None if default is _UNSET else default, **kwargs)


def section(model: type[BaseModel], *, title: str | None = None, description: str | None = None,
            popular: bool = False, **extra: Any) -> Any:
    """A nested section (TAO `collection` built from a dataclass), default-constructed."""
    meta: dict[str, Any] = {"value_type": "collection", "automl_enabled": False, "section": True}
    if title:
        meta["title"] = title
    if description:
        meta["description"] = description
    if popular:
        meta["popular"] = True
    meta.update(extra)
    return Field(default_factory=model, json_schema_extra=meta, description=description, title=title)


def field_meta(model: type[BaseModel], name: str) -> dict[str, Any]:
    """The TAO/our metadata of one field (empty for fields declared without tao_field/section)."""
    extra = model.model_fields[name].json_schema_extra
    return dict(extra) if isinstance(extra, dict) else {}


_COMPARATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
    ">": operator.gt, "<": operator.lt,
}
_MATH_COND = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(depends_on|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


def parse_math_cond(cond: str) -> tuple[str, str | float] | None:
    """'> 0.0' -> ('>', 0.0); '> depends_on' -> ('>', 'depends_on'); other forms (TAO quantizers such
    as '^ 2' or '/ 8') -> None: they shape sampled values, they do not restrict user values."""
    match = _MATH_COND.match(cond or "")
    if not match:
        return None
    op, rhs = match.groups()
    return op, rhs if rhs == "depends_on" else float(rhs)


def check_math_cond(value: Any, cond: str, other: Any = None) -> bool:
    """True when `value` satisfies `cond` (with `other` standing for depends_on)."""
    parsed = parse_math_cond(cond)
    if parsed is None or value is None:
        return True
    op, rhs = parsed
    rhs_value = other if rhs == "depends_on" else rhs
    if rhs_value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return True
    return _COMPARATORS[op](value, rhs_value)


def _fmt(bound: float) -> str:
    return "inf" if bound == INF else repr(bound)


class StrictModel(BaseModel):
    """Unknown keys are errors (a typo'd key must not silently run defaults)."""

    # NaN passes every bound check, and an infinite rate is never meant: both are rejected.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class TaoSection(StrictModel):
    """A config section whose fields' TAO metadata (bounds, math_cond) is enforced."""

    @model_validator(mode="before")
    @classmethod
    def _empty_sections_mean_defaults(cls, data: Any) -> Any:
        """`evaluate:` with nothing under it is YAML null: TAO treats it as the section's defaults."""
        if isinstance(data, dict):
            empty = [k for k, v in data.items() if v is None and isinstance(k, str) and k in cls.model_fields
                     and field_meta(cls, k).get("section")]
            if empty:
                data = {k: v for k, v in data.items() if k not in empty}
        return data

    @field_validator("*", mode="after")
    @classmethod
    def _check_tao_bounds(cls, value: Any, info: Any) -> Any:
        meta = field_meta(cls, info.field_name) if info.field_name in cls.model_fields else {}
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return value
        low, high = meta.get("valid_min"), meta.get("valid_max")
        if (low is not None and value < low) or (high is not None and value > high):
            raise PydanticCustomError(
                "out_of_bounds", "{value} is out of bounds: allowed {allowed}",
                {"value": value, "valid_min": low, "valid_max": high,
                 "allowed": f"[{_fmt(low) if low is not None else '-inf'}, "
                            f"{_fmt(high) if high is not None else 'inf'}]"})
        cond = meta.get("math_cond")
        if cond and "depends_on" not in cond and not check_math_cond(value, cond):
            raise PydanticCustomError(
                "math_cond", "{value} violates math_cond '{math_cond}'",
                {"value": value, "math_cond": cond, "allowed": f"a value {cond.strip()}"})
        return value

    @model_validator(mode="after")
    def _check_relations(self) -> "TaoSection":
        """'> depends_on' between siblings, e.g. train_random_crop_max > train_random_crop_min."""
        for name in type(self).model_fields:
            meta = field_meta(type(self), name)
            cond, depends_on = meta.get("math_cond"), meta.get("depends_on")
            if not cond or "depends_on" not in cond or not depends_on:
                continue
            sibling = depends_on.rsplit(".", 1)[-1]
            if sibling not in type(self).model_fields:
                continue
            value, other = getattr(self, name), getattr(self, sibling)
            if not check_math_cond(value, cond, other):
                raise PydanticCustomError(
                    "math_cond", "{field}={value} violates math_cond '{math_cond}' ({depends_on}={other})",
                    {"field": name, "value": value, "math_cond": cond, "depends_on": depends_on,
                     "other": other, "allowed": f"a value {cond.replace('depends_on', f'{depends_on} ({other})')}"})
        return self
