"""Spec loading: YAML file -> shorthand keys -> dotted overrides -> validated ExperimentConfig.

    cfg = load_spec("spec.yaml", ["train.optim.lr=1e-4", "dataset.train_data_sources[0].image_dir=/data",
                                  "num_epochs=3"], action="train")

Every problem a user can make is reported at once as `SpecErrors`, each entry a typed `SpecError`
naming the dotted key, the value given and what is allowed (see the subclasses below). TAO's
omegaconf placeholder `"???"` is accepted where a string is allowed and only reported as missing for
the sections the requested `action` needs.
"""
from __future__ import annotations

import copy
import difflib
import logging
import re
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, Union

import yaml
from pydantic import BaseModel, ValidationError

from gdino.actions import SPEC_ACTIONS
from gdino.config import ExperimentConfig
from gdino.config.fields import field_meta
from gdino.errors import SpecError, SpecErrors

log = logging.getLogger(__name__)

MISSING = "???"
REDACTED = "***"

# The seed's spec_shorthand_keys (references/skill_info.yaml): short name -> dotted TAO key.
SHORTHAND_KEYS: dict[str, str] = {
    "num_epochs": "train.num_epochs",
    "batch_size": "dataset.batch_size",
    "learning_rate": "train.optim.lr",
    "num_queries": "model.num_queries",
    "num_select": "model.num_select",
    "max_text_len": "model.max_text_len",
    "resume_checkpoint": "train.resume_training_checkpoint_path",
}

# Sections each action reads besides the top level; "???" inside them is a missing required value.
ACTION_NEEDS: dict[str, tuple[str, ...]] = {a.name: a.sections for a in SPEC_ACTIONS}
# A "???" key that is fine when its alternative is set (TAO deploy evaluates an engine, not a checkpoint).
ALTERNATIVES: dict[str, str] = {
    "evaluate.checkpoint": "evaluate.trt_engine",
    "inference.checkpoint": "inference.trt_engine",
}
SECRET_KEYS = ("encryption_key",)


def given(value: str | None) -> str | None:
    """A spec string value, or None when the user left it empty ('' or TAO's '???')."""
    return None if value in (None, "", MISSING) else value




class SpecLoader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-4` (no dot) as a string; specs mean a float."""


SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=SpecLoader)  # noqa: S506 - a SafeLoader subclass


# ----------------------------------------------------------------------------- typed errors
class _KeyedSpecError(SpecError):
    """A SpecError that also records the value given and what is allowed."""

    kind = "invalid"

    def __init__(self, message: str, *, key: str | None, value: Any = None, allowed: str | None = None,
                 hint: str | None = None) -> None:
        self.value = value
        self.allowed = allowed
        super().__init__(message, key=key, hint=hint)


class UnknownKeyError(_KeyedSpecError):
    kind = "unknown_key"


class WrongTypeError(_KeyedSpecError):
    kind = "wrong_type"


class InvalidOptionError(_KeyedSpecError):
    kind = "invalid_option"


class OutOfBoundsError(_KeyedSpecError):
    kind = "out_of_bounds"


class MathCondError(_KeyedSpecError):
    kind = "math_cond"


class MissingValueError(_KeyedSpecError):
    kind = "missing"


class MalformedSpecError(_KeyedSpecError):
    """Unreadable YAML, a malformed override, or a spec that is not a mapping."""

    kind = "malformed"


# ----------------------------------------------------------------------------- dotted paths
_SEGMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_\-]*)((?:\[\d+\])*)$")


def split_dotted(key: str) -> list[str | int]:
    """'dataset.train_data_sources[0].image_dir' -> ['dataset', 'train_data_sources', 0, 'image_dir']."""
    parts: list[str | int] = []
    for segment in key.split("."):
        match = _SEGMENT.match(segment.strip())
        if not match:
            raise MalformedSpecError(f"'{key}' is not a dotted key", key=key, value=key,
                                     allowed="names joined by '.', list items as name[0]",
                                     hint="e.g. train.optim.lr=1e-4 or dataset.train_data_sources[0].image_dir=/data")
        parts.append(match.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(2)))
    return parts


def join_dotted(parts: Iterable[str | int]) -> str:
    """The inverse of split_dotted (list indices as [i])."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def get_dotted(tree: Any, key: str, default: Any = None) -> Any:
    """Value at a dotted key of nested dicts/lists, or `default` when any step is absent."""
    node = tree
    for part in split_dotted(key):
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                return default
        elif not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def set_dotted(tree: dict, key: str, value: Any) -> dict:
    """Set a dotted key in nested dicts/lists in place, creating dicts (and a list item at the
    list's end) on the way. Returns `tree`."""
    parts = split_dotted(key)
    node: Any = tree
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = join_dotted(parts[:depth]) or "the spec"
        nxt = parts[depth + 1] if not last else None
        fresh: Any = [] if isinstance(nxt, int) else {}
        if isinstance(part, int):
            if not isinstance(node, list):
                raise MalformedSpecError(f"{where} is not a list, it cannot take index [{part}]",
                                         key=key, value=value, allowed=f"{where}.<name>")
            if part > len(node):
                raise MalformedSpecError(f"index [{part}] is past the end of {where} ({len(node)} item(s))",
                                         key=key, value=value, allowed=f"an index in 0..{len(node)}")
            if part == len(node):
                node.append(value if last else fresh)
            elif last:
                node[part] = value
            elif node[part] is None:
                node[part] = fresh
            node = node[part]
        else:
            if not isinstance(node, dict):
                raise MalformedSpecError(f"{where} holds a value ({_show(where, node)}), not a section",
                                         key=key, value=value, allowed=f"a value for {where} itself")
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = fresh
                node = node[part]
    return tree


def parse_override(text: str) -> tuple[str, Any]:
    """'a.b=value' -> ('a.b', value parsed as YAML); shorthand names are expanded."""
    if "=" not in text:
        raise MalformedSpecError(f"override '{text}' has no '='", key=None, value=text,
                                 allowed="key=value", hint="e.g. train.optim.lr=1e-4")
    key, raw = text.split("=", 1)
    key = key.strip()
    key = SHORTHAND_KEYS.get(key, key)
    split_dotted(key)  # validates the key's syntax
    if raw.strip() == "":
        return key, ""
    try:
        value = parse_yaml(raw)
    except yaml.YAMLError as err:
        raise MalformedSpecError(f"value '{raw}' is not valid YAML ({_yaml_problem(err)})",
                                 key=key, value=raw, allowed="a YAML scalar, list or mapping",
                                 hint="quote strings that contain ':' or '#', e.g. key='a: b'") from None
    return key, value


# ----------------------------------------------------------------------------- loading
def read_spec_file(path: str | Path) -> dict:
    """The YAML mapping in `path`; malformed YAML is reported with its line number."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecErrors([MalformedSpecError(f"spec file {path} does not exist", key=None, value=str(path),
                                             allowed="a readable YAML file")]) from None
    except (OSError, UnicodeDecodeError) as err:
        raise SpecErrors([MalformedSpecError(f"cannot read spec file {path}: {err}", key=None,
                                             value=str(path), allowed="a readable UTF-8 YAML file")]) from None
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as err:
        raise SpecErrors([MalformedSpecError(f"{path}: malformed YAML: {_yaml_problem(err)}", key=None,
                                             value=str(path), allowed="valid YAML")]) from None
    return _as_mapping(data, str(path))


def _yaml_problem(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem


def _as_mapping(data: Any, where: str) -> dict:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise SpecErrors([MalformedSpecError(f"{where}: the spec must be a mapping of sections, got "
                                             f"{type(data).__name__}", key=None, value=data,
                                             allowed="a YAML mapping (model:, dataset:, train:, ...)")])
    return copy.deepcopy(dict(data))


def load_spec(path_or_dict: str | Path | Mapping | None, overrides: Sequence[str] = (), *,
              action: str | None = None) -> ExperimentConfig:
    """Load a TAO spec (file path or mapping), apply shorthand keys and `key=value` overrides, and
    validate it. With `action`, "???" placeholders in the sections that action needs are errors."""
    if path_or_dict is None:
        raw: dict = {}
    elif isinstance(path_or_dict, Mapping):
        raw = _as_mapping(path_or_dict, "spec")
    else:
        raw = read_spec_file(path_or_dict)

    errors: list[SpecError] = []
    raw = _expand_top_level_shorthand(raw, errors)
    for text in overrides:
        try:
            key, value = parse_override(str(text))
            set_dotted(raw, key, value)
        except SpecError as err:
            errors.append(err)
    if errors:
        raise SpecErrors(errors)

    _notice_ignored_sections(raw)
    try:
        cfg = ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        raise SpecErrors([_to_spec_error(e, raw) for e in err.errors()]) from None
    if action is not None:
        missing = missing_required(cfg, action)
        if missing:
            raise SpecErrors(missing)
    return cfg


def _expand_top_level_shorthand(raw: dict, errors: list[SpecError]) -> dict:
    """Shorthand names may also appear as top-level keys of a spec; move them to their TAO key."""
    for short, full in SHORTHAND_KEYS.items():
        if short in raw:
            value = raw.pop(short)
            try:
                set_dotted(raw, full, value)
            except SpecError as err:
                errors.append(err)
    return raw


_notices_shown: set[str] = set()


def _notice_ignored_sections(raw: dict) -> None:
    """Once per process: resolved specs are reloaded in every trial and would repeat it."""
    wandb = raw.get("wandb")
    if isinstance(wandb, Mapping) and wandb.get("enable", True) and "wandb" not in _notices_shown:
        _notices_shown.add("wandb")
        log.info("spec: the wandb section is accepted for TAO compatibility and ignored (runs are tracked in MLflow)")


def missing_required(cfg: ExperimentConfig, action: str) -> list[SpecError]:
    """Errors for "???" values (and an empty train source list) in the sections `action` needs."""
    if action not in ACTION_NEEDS:
        return []
    tree = cfg.model_dump(mode="json")
    errors: list[SpecError] = []
    for section in ACTION_NEEDS[action]:
        for key, value in _leaves(tree.get(section), [section]):
            if value != MISSING:
                continue
            alternative = ALTERNATIVES.get(key)
            if alternative and get_dotted(tree, alternative) not in (None, "", MISSING):
                continue
            also = f" (or set {alternative})" if alternative else ""
            errors.append(MissingValueError(f"a value is required for {action}{also}, got '???'", key=key,
                                            value=MISSING, allowed="a path or value",
                                            hint=f"set it in the spec or on the command line: {key}=..."))
    if action == "train" and not cfg.dataset.train_data_sources:
        errors.append(MissingValueError("train needs at least one train data source", key="dataset.train_data_sources",
                                        value=[], allowed="a list of {image_dir, json_file, label_map}",
                                        hint="dataset.train_data_sources[0].image_dir=... "
                                             "dataset.train_data_sources[0].json_file=..."))
    return errors


def _leaves(node: Any, path: list[str | int]) -> Iterable[tuple[str, Any]]:
    if isinstance(node, Mapping):
        for k, v in node.items():
            yield from _leaves(v, path + [k])
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, path + [i])
    else:
        yield join_dotted(path), node


# ----------------------------------------------------------------------------- pydantic -> SpecError
def _to_spec_error(error: Mapping[str, Any], raw: dict) -> SpecError:
    loc = list(error.get("loc", ()))
    ctx = error.get("ctx") or {}
    kind = error.get("type", "")
    if kind == "math_cond" and "field" in ctx:  # a relation checked on the section
        loc = loc + [ctx["field"]]
    key = join_dotted(p if isinstance(p, int) else str(p) for p in loc) or "<spec>"
    value = ctx["value"] if "value" in ctx else error.get("input")
    value_text = _show(key, value)
    if kind == "extra_forbidden":
        return _unknown_key(loc, key, value)
    if kind == "out_of_bounds":
        return OutOfBoundsError(f"{value_text} is out of bounds, allowed {ctx.get('allowed')}", key=key,
                                value=value, allowed=str(ctx.get("allowed")))
    if kind == "math_cond":
        return MathCondError(f"{value_text} violates math_cond '{ctx.get('math_cond')}': allowed is "
                             f"{ctx.get('allowed')}", key=key, value=value, allowed=str(ctx.get("allowed")))
    if kind == "finite_number":
        return OutOfBoundsError(f"{value_text} is not a finite number, allowed {_expected(loc)}", key=key,
                                value=value, allowed=_expected(loc))
    if kind == "missing":
        return MissingValueError("a value is required", key=key, value=None, allowed=_expected(loc))
    if kind == "literal_error":
        allowed = str(ctx.get("expected", _expected(loc)))
        return InvalidOptionError(f"{value_text} is not one of the allowed options: {allowed}", key=key,
                                  value=value, allowed=allowed)
    if value == MISSING:
        return MissingValueError(f"a value is required, got '???' (allowed: {_expected(loc)})", key=key,
                                 value=value, allowed=_expected(loc))
    expected = _expected(loc)
    return WrongTypeError(f"{value_text} has the wrong type ({type(value).__name__}); expected {expected}"
                          f" ({error.get('msg', '')})", key=key, value=value, allowed=expected)


def _show(key: str, value: Any) -> str:
    if key.split(".")[-1] in SECRET_KEYS:
        return REDACTED
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _unknown_key(loc: list, key: str, value: Any) -> UnknownKeyError:
    parent_model = _model_at(loc[:-1])
    name = str(loc[-1]) if loc else key
    candidates = list(parent_model.model_fields) if parent_model is not None else []
    if not loc[:-1]:
        candidates += list(SHORTHAND_KEYS)
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    parent = join_dotted(loc[:-1])
    hint = None
    if close:
        hint = f"did you mean {join_dotted(loc[:-1] + [close[0]])}?"
    else:
        elsewhere = [k for k in _all_keys() if k.rsplit(".", 1)[-1] == name]
        if elsewhere:
            hint = f"did you mean {elsewhere[0]}?"
    allowed = f"keys of {parent or 'the top level'}: {', '.join(sorted(candidates)[:60])}"
    return UnknownKeyError(f"unknown key '{name}' in {parent or 'the top level'}", key=key,
                           value=value, allowed=allowed, hint=hint)


def _model_at(loc: Sequence[Any]) -> type[BaseModel] | None:
    """The pydantic model class describing the node at `loc` (list indices skipped)."""
    model: type[BaseModel] | None = ExperimentConfig
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        model = _inner_model(field.annotation)
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (list, Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


def _expected(loc: Sequence[Any]) -> str:
    """What a field accepts, in TAO's words where possible: 'float in [0.0, inf]', 'list of int'."""
    names = [p for p in loc if not isinstance(p, int)]
    if not names:
        return "a mapping"
    model = _model_at(loc[: max(i for i, p in enumerate(loc) if not isinstance(p, int))])
    if model is None or str(names[-1]) not in model.model_fields:
        return "a valid value"
    field = model.model_fields[str(names[-1])]
    meta = field_meta(model, str(names[-1]))
    text = meta.get("value_type") or _type_name(field.annotation)
    if meta.get("section") or _inner_model(field.annotation) is not None:
        text = "a mapping (section)" if typing.get_origin(field.annotation) is not list else "a list of mappings"
    elif text in ("list", "collection") or "Optional" in str(field.annotation):
        text = f"{text} ({_type_name(field.annotation)})"
    if "valid_min" in meta or "valid_max" in meta:
        text += f" in [{meta.get('valid_min', '-inf')}, {meta.get('valid_max', 'inf')}]"
    if "valid_options" in meta:
        text += f" one of {meta['valid_options']}"
    return text


def _type_name(annotation: Any) -> str:
    return re.sub(r"typing\.|Optional\[(.*)\]", r"\1", str(annotation)).replace("<class '", "").replace("'>", "")


def _all_keys() -> list[str]:
    return [k for k, _ in _leaves(ExperimentConfig().model_dump(mode="json"), [])] + _section_keys(ExperimentConfig, [])


def _section_keys(model: type[BaseModel], path: list[str]) -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        keys.append(join_dotted(path + [name]))
        inner = _inner_model(field.annotation)
        if inner is not None:
            keys += _section_keys(inner, path + [name])
    return keys


# ----------------------------------------------------------------------------- output
def redacted_dict(cfg: ExperimentConfig) -> dict:
    """The nested spec with secrets replaced by '***' (safe to print or log)."""
    tree = cfg.model_dump(mode="json")
    for key in SECRET_KEYS:
        if tree.get(key):
            tree[key] = REDACTED
    uri = get_dotted(tree, "mlflow.tracking_uri")
    if isinstance(uri, str):
        tree["mlflow"]["tracking_uri"] = redact_uri(uri)
    return tree


def redact_uri(uri: str) -> str:
    """'https://user:token@host/x' -> 'https://***@host/x'."""
    return re.sub(r"(?<=://)[^/@\s]+@", REDACTED + "@", uri)


def dump_spec(cfg: ExperimentConfig, *, redact: bool = True) -> str:
    """The resolved spec as YAML, in TAO's section order; secrets shown as '***' unless redact=False."""
    tree = redacted_dict(cfg) if redact else cfg.model_dump(mode="json")
    return yaml.safe_dump(tree, sort_keys=False, default_flow_style=False, allow_unicode=True)
