"""TAO-format schemas and references from the config model (`grounding_dino schema --write | --check`).

Generated files (paths relative to the repository root, and again inside the package under
gdino/resources/, which is what an installed package reads through importlib.resources):
  schemas/<action>.schema.json      TAO's format (notes/tao.md §2.1): TAO type names, bare Infinity,
                                    top-level automl_default_parameters / automl_disabled_parameters /
                                    popular / default / required, per-action filtering, x_tao_schema
  schemas/manifest.json             per action: lists, popular, path, spec_template
  references/spec_template_<action>.yaml   usable as-is (no TAO traps, dataset paths at data/shapes)
  references/skill_info.yaml        automl_enabled, actions, data_sources, spec_params, shorthand keys

The config model (gdino.config) and the action table (gdino.actions) are the single source: edit a
field there, run `schema --write`. `--check` (cli.schema) exits 1 with a diff summary when either copy
differs from what would be written.
"""
from __future__ import annotations

import difflib
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import annotated_types
import yaml
from pydantic import BaseModel

from gdino.actions import SPEC_ACTION_NAMES, SPEC_ACTIONS, spec_params
from gdino.config import ExperimentConfig
from gdino.config.fields import field_meta
from gdino.spec import SHORTHAND_KEYS

ACTIONS = SPEC_ACTION_NAMES
ACTION_SECTIONS = set(ACTIONS)
# TAO's filter_schema keeps these action sections in every action's schema (plus the action itself).
ALWAYS_KEPT = {"train", "quantize"}
# Our own top-level keys: only in the train schema, never searched.
OUR_TOP_LEVEL = ("automl_policy", "automl", "mlflow")
SCHEMA_VERSION = 1
ROOT = Path(__file__).resolve().parents[1]

# Paths of the dataset the project generates (`grounding_dino dataset`), used by the templates only.
SHAPES_TRAIN = "data/shapes/train"
SHAPES_EVAL = "data/shapes/eval"


# ----------------------------------------------------------------------------- model -> TAO properties
def _unwrap_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _tao_type(annotation: Any) -> tuple[str, list[Any] | None]:
    """TAO value_type (and enum) for a plain pydantic field of our own sections."""
    annotation = _unwrap_optional(annotation)
    origin = typing.get_origin(annotation)
    if origin is Literal:
        options = list(typing.get_args(annotation))
        return ("ordered_int" if all(isinstance(o, int) for o in options) else "categorical"), options
    if origin is list:
        return "list", None
    if origin is dict or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return "collection", None
    names = {bool: "bool", int: "int", float: "float", str: "string"}
    return names.get(annotation, "string"), None


def _plain_field_meta(field: Any) -> dict[str, Any]:
    """TAO-style metadata for fields declared with plain pydantic Field (our automl/mlflow sections)."""
    value_type, options = _tao_type(field.annotation)
    meta: dict[str, Any] = {"value_type": value_type}
    if field.description:
        meta["description"] = field.description
    if options is not None:
        meta["valid_options"] = options
    for constraint in field.metadata:
        if isinstance(constraint, annotated_types.Ge):
            meta["valid_min"] = constraint.ge
        elif isinstance(constraint, annotated_types.Le):
            meta["valid_max"] = constraint.le
        elif isinstance(constraint, annotated_types.Gt):
            meta["math_cond"] = f"> {constraint.gt}"
        elif isinstance(constraint, annotated_types.Lt):
            meta["math_cond"] = f"< {constraint.lt}"
    if value_type in ("list", "collection"):
        meta["automl_enabled"] = False
    return meta


def _section_model(field: Any, meta: dict[str, Any]) -> type[BaseModel] | None:
    """The nested model when this field is a section (TAO dataclass), else None (a leaf)."""
    annotation = _unwrap_optional(field.annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel) and (
            meta.get("section") or meta.get("value_type") is None):
        return annotation
    return None


class _Collector:
    """Walks the model once and gathers TAO's cross-cutting lists."""

    def __init__(self) -> None:
        self.enabled: list[str] = []
        self.disabled: list[str] = []


def _leaf_property(meta: dict[str, Any], default: Any, dotted: str, collector: _Collector) -> dict[str, Any]:
    prop: dict[str, Any] = {"type": meta["value_type"]}
    for ours, tao in (("title", "title"), ("description", "description"), ("valid_min", "minimum"),
                      ("valid_max", "maximum"), ("valid_options", "enum"), ("option_weights", "option_weights"),
                      ("math_cond", "math_cond"), ("depends_on", "depends_on"), ("pattern", "pattern"),
                      ("x_log_scale", "x_log_scale"), ("x_search_min", "x_search_min"),
                      ("x_search_max", "x_search_max"), ("x_note", "x_note")):
        if ours in meta:
            prop[tao] = meta[ours]
    if meta.get("parent_param"):
        prop["parent_param"] = "TRUE"
    if meta.get("popular"):
        prop["popular"] = True
    if "automl_enabled" in meta:
        prop["automl_enabled"] = bool(meta["automl_enabled"])
        (collector.enabled if meta["automl_enabled"] else collector.disabled).append(dotted)
    if default is not None and default != {}:
        prop["default"] = default
    return prop


def _schema_default(model: type[BaseModel], instance: BaseModel, name: str, meta: dict[str, Any]) -> Any:
    if "schema_default" in meta:
        return meta["schema_default"]
    value = getattr(instance, name)
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else _jsonable(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _drop_none(tree: Any) -> Any:
    """TAO's section defaults leave out None values."""
    if isinstance(tree, dict):
        return {k: _drop_none(v) for k, v in tree.items() if v is not None}
    if isinstance(tree, list):
        return [_drop_none(v) for v in tree]
    return tree


def _section_schema(model: type[BaseModel], instance: BaseModel, path: list[str], collector: _Collector,
                    meta: dict[str, Any]) -> tuple[dict[str, Any], Any, bool]:
    """(property dict, default value, contains popular) of one section."""
    properties: dict[str, Any] = {}
    default: dict[str, Any] = {}
    popular: list[str] = []
    enabled: list[str] = []
    disabled: list[str] = []
    required: list[str] = []
    for name, field in type(instance).model_fields.items():
        dotted = ".".join(path + [name])
        fmeta = field_meta(model, name) or _plain_field_meta(field)
        sub = _section_model(field, fmeta)
        if sub is not None:
            prop, value, has_popular = _section_schema(sub, getattr(instance, name), path + [name], collector, fmeta)
            collector.disabled.append(dotted)
            disabled.append(dotted)
            if has_popular:
                popular.append(name)
        else:
            value = _schema_default(model, instance, name, fmeta)
            before = (len(collector.enabled), len(collector.disabled))
            prop = _leaf_property(fmeta, value, dotted, collector)
            if len(collector.enabled) > before[0]:
                enabled.append(dotted)
            if len(collector.disabled) > before[1]:
                disabled.append(dotted)
            if fmeta.get("popular"):
                popular.append(name)
            if fmeta.get("required"):
                required.append(name)
        properties[name] = prop
        default[name] = value
    section: dict[str, Any] = {"type": "collection", "automl_enabled": False, "properties": properties,
                               "default": _drop_none(default)}
    for key in ("title", "description", "x_note", "x_ours"):
        if meta.get(key):
            section[key] = meta[key]
    if popular:
        section["popular"] = popular
    if enabled:
        section["automl_default_parameters"] = enabled
    if disabled:
        section["automl_disabled_parameters"] = disabled
    if required:
        section["required"] = required
    return section, section["default"], bool(popular)


def _popular_defaults(prop: dict[str, Any]) -> dict[str, Any]:
    """TAO's top-level `popular`: a nested dict of the defaults of popular parameters."""
    out: dict[str, Any] = {}
    for name in prop.get("popular", []):
        child = prop["properties"][name]
        out[name] = _popular_defaults(child) if "properties" in child else child.get("default")
    return out


def build_schema(action: str) -> dict[str, Any]:
    """The TAO-format JSON schema of one action, from ExperimentConfig."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; expected one of {ACTIONS}")
    collector = _Collector()
    root, _, _ = _section_schema(ExperimentConfig, ExperimentConfig(), [], collector, {})
    kept = {name for name in root["properties"]
            if (name not in ACTION_SECTIONS or name in ALWAYS_KEPT or name == action)
            and (action == "train" or name not in OUR_TOP_LEVEL)}
    sections = [n for n, p in root["properties"].items() if "properties" in p]
    popular: dict[str, Any] = {}
    for name in root.get("popular", []):
        popular[name] = _popular_defaults(root["properties"][name])
    # Like TAO, the lists and `popular` are computed before filtering (they name other actions too);
    # our own sections are left out of every other action's lists.
    ours = tuple(f"{n}." for n in OUR_TOP_LEVEL)
    keep_listed = (lambda p: True) if action == "train" else (
        lambda p: p not in OUR_TOP_LEVEL and not p.startswith(ours))
    properties: dict[str, Any] = {name: root["properties"][name] for name in root["properties"] if name in kept}
    properties["automl_disabled_parameters"] = [n for n in sections if keep_listed(n)]  # TAO's quirk
    required = sorted({name for name, p in root["properties"].items() if p.get("required")})
    return {
        "automl_default_parameters": [p for p in collector.enabled if keep_listed(p)],
        "automl_disabled_parameters": [p for p in collector.disabled if keep_listed(p)],
        "default": {name: root["default"][name] for name in root["default"] if name in kept},
        "popular": popular,
        "properties": properties,
        "required": required,
        "type": "object",
        "x_tao_schema": {
            "action": action, "core_module": "grounding_dino", "model": "grounding-dino",
            "network_arch": "grounding_dino", "schema_action": action, "schema_version": SCHEMA_VERSION,
            "source": "gdino-automl pydantic config (gdino.config), generated by `grounding_dino schema --write`",
        },
    }


def schema_json(schema: dict[str, Any]) -> str:
    """TAO's serialisation: sorted keys, 2-space indent, bare Infinity."""
    return json.dumps(schema, indent=2, sort_keys=True, allow_nan=True) + "\n"


def build_manifest(schemas: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "actions": {
            action: {
                "automl_default_parameters": sorted(s["automl_default_parameters"]),
                "automl_disabled_parameters": sorted(s["automl_disabled_parameters"]),
                "core_module": "grounding_dino",
                "path": f"schemas/{action}.schema.json",
                "popular": s["popular"],
                "schema_action": action,
                "spec_template": f"references/spec_template_{action}.yaml",
            }
            for action, s in schemas.items()
        },
        "automl_enabled": True,
        "failures": {},
        "model": "grounding-dino",
        "network_arch": "grounding_dino",
        "schema_version": SCHEMA_VERSION,
    }


# ----------------------------------------------------------------------------- templates
def template_config() -> ExperimentConfig:
    """Defaults with the generated shapes dataset wired in (templates only; model defaults stay TAO's)."""
    from gdino.config import EvalDataSource, TrainDataSource

    cfg = ExperimentConfig()
    cfg.results_dir = "results/grounding_dino"
    cfg.dataset.train_data_sources = [TrainDataSource(
        image_dir=f"{SHAPES_TRAIN}/images.tar.gz", json_file=f"{SHAPES_TRAIN}/annotations_odvg.jsonl",
        label_map=f"{SHAPES_TRAIN}/annotations_odvg_labelmap.json")]
    eval_source = {"image_dir": f"{SHAPES_EVAL}/images.tar.gz", "json_file": f"{SHAPES_EVAL}/annotations.json"}
    cfg.dataset.val_data_sources = EvalDataSource(**eval_source)
    cfg.dataset.test_data_sources = EvalDataSource(**eval_source)
    cfg.dataset.quant_calibration_data_sources = EvalDataSource(**eval_source)
    cfg.dataset.infer_data_sources.image_dir = [f"{SHAPES_EVAL}/images.tar.gz"]
    cfg.dataset.infer_data_sources.captions = ["circle", "square", "triangle"]
    # the deploy chain's file names (the checkpoint to start from stays '???': the user picks it)
    cfg.export.onnx_file = f"{cfg.results_dir}/export/grounding_dino.onnx"
    cfg.gen_trt_engine.onnx_file = cfg.export.onnx_file
    cfg.gen_trt_engine.trt_engine = f"{cfg.results_dir}/gen_trt_engine/grounding_dino.engine"
    return cfg


def build_template(action: str) -> str:
    """A spec for `action` that loads and runs as-is: none of TAO's template traps (notes/tao.md §7.12):
    no eval_class_ids [1], no placeholder second train source, no wandb section; None values left out."""
    tree = _drop_none(template_config().model_dump(mode="json"))
    tree.pop("wandb", None)
    keep = {n for n in tree if (n not in ACTION_SECTIONS or n in ALWAYS_KEPT or n == action)
            and (action == "train" or n not in OUR_TOP_LEVEL)}
    tree = {k: v for k, v in tree.items() if k in keep}
    header = (f"# grounding_dino {action} spec (TAO format), generated by `grounding_dino schema --write`.\n"
              f"# Run: grounding_dino {action} -e references/spec_template_{action}.yaml [key=value ...]\n")
    if action != "train":
        header += "# '???' marks values you must set (e.g. the checkpoint to use).\n"
    return header + yaml.safe_dump(tree, sort_keys=False, default_flow_style=False)


# ----------------------------------------------------------------------------- skill_info
def build_skill_info() -> dict[str, Any]:
    train_eval_sources = {
        "dataset.train_data_sources[0].image_dir": {"source": "train_datasets", "path": "images.tar.gz",
                                                    "runtime": "extracted_folder"},
        "dataset.train_data_sources[0].json_file": {"source": "train_datasets", "path": "annotations_odvg.jsonl"},
        "dataset.train_data_sources[0].label_map": {"source": "train_datasets",
                                                    "path": "annotations_odvg_labelmap.json"},
        "dataset.val_data_sources.image_dir": {"source": "eval_dataset", "path": "images.tar.gz",
                                               "runtime": "extracted_folder"},
        "dataset.val_data_sources.json_file": {"source": "eval_dataset", "path": "annotations.json"},
    }
    io = {
        "train": ({**{k: {"type": "folder" if k.endswith("image_dir") else "file"} for k in train_eval_sources},
                   "model.pretrained_backbone_path": {"type": "file", "optional": True},
                   "train.pretrained_model_path": {"type": "file", "optional": True},
                   "train.resume_training_checkpoint_path": {"type": "file", "optional": True}},
                  {"results_dir": {"type": "folder"}}),
        "evaluate": ({"evaluate.checkpoint": {"type": "file"},
                      "dataset.test_data_sources.image_dir": {"type": "folder"},
                      "dataset.test_data_sources.json_file": {"type": "file"}},
                     {"results_dir": {"type": "folder"}}),
        "inference": ({"inference.checkpoint": {"type": "file"},
                       "dataset.infer_data_sources.image_dir": {"type": "folder"},
                       "dataset.infer_data_sources.captions": {"type": "list"}},
                      {"results_dir": {"type": "folder"}}),
        "export": ({"export.checkpoint": {"type": "file"}},
                   {"results_dir": {"type": "folder"}, "export.onnx_file": {"type": "file"}}),
        "gen_trt_engine": ({"gen_trt_engine.onnx_file": {"type": "file"}},
                           {"results_dir": {"type": "folder"}, "gen_trt_engine.trt_engine": {"type": "file"}}),
        "quantize": ({"quantize.model_path": {"type": "file"},
                      **{k: {"type": "folder" if k.endswith("image_dir") else "file"} for k in train_eval_sources},
                      "dataset.quant_calibration_data_sources.image_dir": {"type": "folder"},
                      "dataset.quant_calibration_data_sources.json_file": {"type": "file"}},
                     {"results_dir": {"type": "folder"}}),
    }
    if set(io) != set(ACTIONS):
        raise AssertionError(f"skill_info inputs/outputs cover {sorted(io)}, the action table {sorted(ACTIONS)}")
    actions = {a: {"command": f"grounding_dino {a} -e {{config_path}}", "config_format": "yaml", "mode": "config",
                   "inputs": inputs, "outputs": outputs, "upload_excludes": ["inputs/"]}
               for a, (inputs, outputs) in io.items()}
    test_sources = {
        "dataset.test_data_sources.image_dir": {"source": "eval_dataset", "path": "images.tar.gz",
                                                "runtime": "extracted_folder"},
        "dataset.test_data_sources.json_file": {"source": "eval_dataset", "path": "annotations.json"},
    }
    calibration = {
        "dataset.quant_calibration_data_sources.image_dir": {"source": "eval_dataset", "path": "images.tar.gz",
                                                             "runtime": "extracted_folder"},
        "dataset.quant_calibration_data_sources.json_file": {"source": "eval_dataset", "path": "annotations.json"},
    }
    return {
        "name": "gdino-automl-grounding-dino",
        "network_arch": "grounding_dino",
        "automl_enabled": True,
        "automl_policy_key": "automl_policy",
        "data_format": "odvg",
        "gpu_spec_key": "train.num_gpus",
        "actions": actions,
        "data_sources": {
            "train": train_eval_sources,
            "quantize": {**train_eval_sources, **calibration},
            "evaluate": test_sources,
            "inference": {"dataset.infer_data_sources.image_dir": {
                "source": "inference_dataset", "path": "images.tar.gz", "list": True, "runtime": "extracted_folder"}},
        },
        "spec_params": {a.name: spec_params(a) for a in SPEC_ACTIONS},
        "key_defaults": {},
        "spec_shorthand_keys": dict(SHORTHAND_KEYS),
        "schemas": {a: f"schemas/{a}.schema.json" for a in ACTIONS},
        "spec_templates": {a: f"references/spec_template_{a}.yaml" for a in ACTIONS},
        "description": ("Grounding DINO for open-set object detection (DINO-style detector with a BERT text "
                        "encoder), trained through an AutoML sweep on Ray Tune unless automl_policy is off."),
    }


# ----------------------------------------------------------------------------- files, --write, --check
def generated_files() -> dict[str, str]:
    """Relative path -> text of every generated file."""
    schemas = {a: build_schema(a) for a in ACTIONS}
    files = {f"schemas/{a}.schema.json": schema_json(s) for a, s in schemas.items()}
    files["schemas/manifest.json"] = json.dumps(build_manifest(schemas), indent=2, sort_keys=True) + "\n"
    for action in ACTIONS:
        files[f"references/spec_template_{action}.yaml"] = build_template(action)
    files["references/skill_info.yaml"] = ("# generated by `grounding_dino schema --write`\n"
                                           + yaml.safe_dump(build_skill_info(), sort_keys=False, width=110))
    return files


PACKAGE_RELDIR = Path("gdino") / "resources"  # the packaged copy, relative to the repository root


def copies(root: Path = ROOT, *, package: bool = True) -> list[Path]:
    """The folders that hold a copy of the generated files: the reviewable one at the repository root
    and the packaged one (<root>/gdino/resources) that installed code reads through importlib.resources."""
    return [root] + ([root / PACKAGE_RELDIR] if package else [])


def write_files(root: Path = ROOT, *, package: bool = True) -> list[str]:
    """Write every generated file into each copy; returns the paths written (unchanged files are skipped)."""
    written = []
    for base in copies(root, package=package):
        for rel, text in generated_files().items():
            path = base / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
                written.append(str(path.relative_to(root)))
    return written


def check_files(root: Path = ROOT, *, package: bool = True, context_lines: int = 12) -> list[str]:
    """A diff summary per file that differs from what `--write` would produce (empty: all current)."""
    problems = []
    for base in copies(root, package=package):
        label = "" if base == root else f"{PACKAGE_RELDIR}/"
        for rel, text in generated_files().items():
            path = base / rel
            if not path.exists():
                problems.append(f"{label}{rel}: missing")
                continue
            current = path.read_text(encoding="utf-8")
            if current != text:
                diff = list(difflib.unified_diff(current.splitlines(), text.splitlines(), f"{rel} (committed)",
                                                 f"{rel} (generated)", lineterm="", n=1))
                shown = "\n".join(diff[:context_lines]) + ("\n  ..." if len(diff) > context_lines else "")
                problems.append(f"{label}{rel}: differs ({len(diff)} diff lines)\n{shown}")
    return problems
