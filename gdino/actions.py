"""The spec-driven actions of TAO's grounding_dino skill, written once, as data.

Everything that lists these actions reads this table: the spec loader (which sections an action needs,
`gdino.spec.missing_required`), the schema generator (one schema, template and skill_info entry per
action, `gdino.schema_gen`), job chaining (which fields a parent job fills, `cli.jobs`) and the command
line (`cli.registry` adds help text and entry points; it never lists an action of its own here).

The parent-job table is the seed's "Spec Param / Parent Model Inference" section
(../shared/seed/tao-train-grounding-dino.txt; TAO's skill_info.yaml `spec_params`), with the two
fields every action has (`encryption_key: key`, `results_dir: output_dir`) in `COMMON_INFERRED`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Which model file a parent job's results folder must give (cli.jobs.find_model_file).
ModelFile = Literal["checkpoint", "onnx", "engine", "checkpoint_or_onnx"]


@dataclass(frozen=True)
class InferredField:
    """A spec field that job chaining fills when the user left it empty.

    how: TAO's inference function name (parent_model, ptm_if_no_resume_model, resume_model,
    create_onnx_file, create_engine_file, key, output_dir). model_file: the kind of file taken from the
    parent's results for parent_model / ptm_if_no_resume_model; None keeps the field in skill_info (TAO
    lists it) without filling it here.
    """

    key: str
    how: str
    model_file: ModelFile | None = None


@dataclass(frozen=True)
class SpecAction:
    """An action driven by an experiment spec: it has a schema, a template and runs as a job.

    sections: the spec sections it reads besides the top level ("???" inside them is a missing value).
    inferred: its parent-job fields, in the seed's order (COMMON_INFERRED apply too).
    """

    name: str
    sections: tuple[str, ...]
    inferred: tuple[InferredField, ...]


COMMON_INFERRED = (InferredField("encryption_key", "key"), InferredField("results_dir", "output_dir"))

SPEC_ACTIONS: tuple[SpecAction, ...] = (
    SpecAction("train", ("model", "dataset", "train"), (
        # TAO's PTM is a backbone-only file from its model zoo; a parent job holds whole-network
        # checkpoints, so only train.pretrained_model_path is filled from it.
        InferredField("model.pretrained_backbone_path", "ptm_if_no_resume_model"),
        InferredField("train.pretrained_model_path", "ptm_if_no_resume_model", "checkpoint"),
        InferredField("train.resume_training_checkpoint_path", "resume_model", "checkpoint"),
    )),
    SpecAction("evaluate", ("model", "dataset", "evaluate"), (
        InferredField("evaluate.checkpoint", "parent_model", "checkpoint"),
        InferredField("evaluate.trt_engine", "parent_model", "engine"),
    )),
    SpecAction("inference", ("model", "dataset", "inference"), (
        InferredField("inference.checkpoint", "parent_model", "checkpoint"),
        InferredField("inference.trt_engine", "parent_model", "engine"),
    )),
    SpecAction("export", ("model", "export"), (
        InferredField("export.checkpoint", "parent_model", "checkpoint"),
        InferredField("export.onnx_file", "create_onnx_file"),
    )),
    SpecAction("gen_trt_engine", ("gen_trt_engine",), (
        InferredField("gen_trt_engine.onnx_file", "parent_model", "onnx"),
        InferredField("gen_trt_engine.trt_engine", "create_engine_file"),
    )),
    SpecAction("quantize", ("model", "dataset", "quantize"), (
        InferredField("quantize.model_path", "parent_model", "checkpoint_or_onnx"),
    )),
)
SPEC_ACTION_NAMES: tuple[str, ...] = tuple(a.name for a in SPEC_ACTIONS)


def spec_action(name: str) -> SpecAction:
    """The SpecAction called `name` (ValueError naming the known ones otherwise)."""
    for action in SPEC_ACTIONS:
        if action.name == name:
            return action
    raise ValueError(f"unknown action {name!r}; expected one of {', '.join(SPEC_ACTION_NAMES)}")


def spec_params(action: SpecAction) -> dict[str, str]:
    """skill_info's `spec_params` entry of one action: field -> inference function, common ones included."""
    fields = COMMON_INFERRED + action.inferred
    return {f.key: f.how for f in sorted(fields, key=lambda f: f.key)}
