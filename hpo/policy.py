"""The Train Action Policy of TAO's model skill (../shared/seed, "Train Action Policy").

`train` goes through AutoML only when all of these hold:
  * the run's policy is `auto`: the spec's top-level `automl_policy` (so `automl_policy=off` works as
    an override) is not `off`, and the user's request does not say "turn off AutoML", "disable AutoML",
    "no HPO" or "plain training" (off for this run only);
  * the packaged `references/skill_info.yaml` says `automl_enabled: true` (the model-layer switch);
  * the packaged `schemas/train.schema.json` and `references/spec_template_train.yaml` exist and parse.
"Packaged" means gdino/resources, read with importlib.resources, so an installed wheel decides the same
way as a checkout.
If AutoML is enabled but the schema or template is missing, the decision says so and how to generate
them, and training runs plainly. Non-train actions never go through AutoML. Deciding only reads
files: a per-run override never changes the model's metadata.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Mapping

import yaml

from gdino.config import ExperimentConfig
from gdino.resources import resources

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

PolicyMode = Literal["auto", "off"]

SCHEMA_RELPATH = "schemas/train.schema.json"
TEMPLATE_RELPATH = "references/spec_template_train.yaml"
SKILL_INFO_RELPATH = "references/skill_info.yaml"
GENERATE_HINT = "generate them with `grounding_dino schema --write`"

# The seed's phrases (and their obvious spellings) that turn AutoML off for one run.
OFF_PHRASES = (
    "turn off automl", "turn automl off", "disable automl", "automl off", "no automl", "without automl",
    "no hpo", "without hpo", "disable hpo", "plain training",
)


@dataclass(frozen=True)
class PolicyDecision:
    """mode: the run's automl_policy; automl_runnable: whether train goes through AutoML; reason:
    one sentence a user can read (why, and what to do when AutoML is enabled but not runnable)."""

    mode: PolicyMode
    automl_runnable: bool
    reason: str

    @property
    def use_automl(self) -> bool:
        return self.mode == "auto" and self.automl_runnable


def _file(root: Path | Traversable, relpath: str) -> Traversable:
    node = root
    for part in relpath.split("/"):
        node = node.joinpath(part)
    return node


def _normalise(text: str) -> str:
    text = text.lower().replace("auto-ml", "automl").replace("auto ml", "automl")
    text = re.sub(r"[-_]+", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def policy_from_request(request: str | None) -> tuple[PolicyMode, str | None]:
    """('off', the phrase) when the request asks to turn AutoML off, else ('auto', None)."""
    if not request:
        return "auto", None
    text = _normalise(request)
    for phrase in OFF_PHRASES:
        if re.search(rf"(?<![a-z]){re.escape(phrase)}(?![a-z])", text):
            return "off", phrase
    return "auto", None


def _explicit_policy(cfg: ExperimentConfig) -> PolicyMode | None:
    """The spec's automl_policy when the spec sets it (the config model validated it to auto | off)."""
    return cfg.automl_policy if "automl_policy" in cfg.model_fields_set else None


def resolve_mode(cfg: ExperimentConfig, request: str | None = None) -> tuple[PolicyMode, str]:
    """The run's policy and where it came from. Either source saying off turns AutoML off."""
    explicit = _explicit_policy(cfg)
    requested, phrase = policy_from_request(request)
    if explicit == "off":
        return "off", "automl_policy is off"
    if requested == "off":
        return "off", f"the request says {phrase!r} (AutoML off for this run only)"
    return "auto", "automl_policy is auto" if explicit == "auto" else "automl_policy defaults to auto"


def _skill_automl_enabled(root: Path | Traversable) -> tuple[bool | None, str]:
    path = _file(root, SKILL_INFO_RELPATH)
    try:
        info = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"{SKILL_INFO_RELPATH} is missing"
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as err:
        return None, f"{SKILL_INFO_RELPATH} cannot be read ({err.__class__.__name__})"
    if not isinstance(info, Mapping):
        return None, f"{SKILL_INFO_RELPATH} is not a mapping"
    return info.get("automl_enabled") is True, f"{SKILL_INFO_RELPATH} says automl_enabled: " \
                                                f"{str(info.get('automl_enabled')).lower()}"


def _artifact_problem(root: Path | Traversable) -> str | None:
    """Why the packaged train schema/template cannot be used, or None when both exist and parse."""
    schema_path, template_path = _file(root, SCHEMA_RELPATH), _file(root, TEMPLATE_RELPATH)
    for relpath, path in ((SCHEMA_RELPATH, schema_path), (TEMPLATE_RELPATH, template_path)):
        if not path.is_file():
            return f"{relpath} is missing"
    try:
        schema = json.loads(schema_path.read_text(encoding="utf-8"))
        if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
            return f"{SCHEMA_RELPATH} has no 'properties' object"
    except (OSError, ValueError, UnicodeDecodeError) as err:
        return f"{SCHEMA_RELPATH} does not parse ({err.__class__.__name__})"
    try:
        template = yaml.safe_load(template_path.read_text(encoding="utf-8"))
        if not isinstance(template, dict):
            return f"{TEMPLATE_RELPATH} is not a YAML mapping"
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as err:
        return f"{TEMPLATE_RELPATH} does not parse ({err.__class__.__name__})"
    return None


def decide_policy(cfg: ExperimentConfig, request: str | None = None, *, root: str | Path | None = None,
                  action: str = "train") -> PolicyDecision:
    """Whether this run of `action` goes through AutoML (see the module docstring). `root`: a folder
    laid out like gdino/resources to read instead of the packaged one (tests)."""
    mode, why = resolve_mode(cfg, request)
    if action != "train":
        return PolicyDecision(mode, False, f"{action} never goes through AutoML")
    if mode == "off":
        return PolicyDecision("off", False, f"plain training: {why}")
    base: Path | Traversable = Path(root) if root is not None else resources()
    enabled, skill_text = _skill_automl_enabled(base)
    if enabled is None:
        return PolicyDecision("auto", False, f"plain training: {skill_text}; {GENERATE_HINT}")
    if not enabled:
        return PolicyDecision("auto", False, f"plain training: {skill_text}")
    problem = _artifact_problem(base)
    if problem is not None:
        return PolicyDecision("auto", False,
                              f"AutoML is enabled but not runnable for this model until the schemas are "
                              f"generated ({problem}); {GENERATE_HINT}. Running plain training.")
    return PolicyDecision("auto", True, f"AutoML sweep: {why}, {skill_text}, train schema and template present")
