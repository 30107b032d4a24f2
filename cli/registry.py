"""The one table of `grounding_dino` actions.

The spec-driven actions (schema, template, job, parent-job fields) are data in `gdino.actions`, which
the schema generator and the spec loader read below this layer; this table adds what only the command
line needs (help, entry module) and the actions that take no spec (dataset, automl, schema, validate).
The jobs table (`cli.jobs`), `validate --action` and `--help` all read it.

An entry module exposes `add_arguments(parser)` and `run(args) -> int`, and imports torch, ray and
mlflow inside `run` only, so that `--help` stays fast.
"""
from __future__ import annotations

from dataclasses import dataclass

from gdino.actions import InferredField, SpecAction, spec_action


@dataclass(frozen=True)
class Action:
    """name: the subcommand; module: its entry module (add_arguments, run); spec: the spec-driven action
    it runs (schema + template + job with parent-job fields), None for the tools that take no job."""

    name: str
    help: str
    module: str
    spec: SpecAction | None = None

    @property
    def is_job(self) -> bool:
        """Spec-driven actions run as jobs (an id, a results dir, fields filled from a parent job)."""
        return self.spec is not None

    @property
    def has_schema(self) -> bool:
        return self.spec is not None

    @property
    def inferred(self) -> tuple[InferredField, ...]:
        return self.spec.inferred if self.spec is not None else ()


ACTIONS: tuple[Action, ...] = (
    Action("train", "train: an AutoML sweep when the policy is auto, else plain training",
           "cli.train", spec_action("train")),
    Action("evaluate", "evaluate a checkpoint, ONNX file or TensorRT engine on test_data_sources",
           "cli.evaluate", spec_action("evaluate")),
    Action("inference", "detect captioned objects in images (checkpoint, ONNX or TensorRT)",
           "cli.inference", spec_action("inference")),
    Action("export", "export a checkpoint to ONNX with TAO's interface", "cli.export", spec_action("export")),
    Action("gen_trt_engine", "build a TensorRT engine from an ONNX file",
           "cli.gen_trt_engine", spec_action("gen_trt_engine")),
    Action("quantize", "quantize a model and report the accuracy change", "cli.quantize", spec_action("quantize")),
    Action("dataset", "generate a dataset or check the configured data sources", "cli.dataset"),
    Action("automl", "inspect the search space, resume, inspect or promote a sweep", "cli.automl"),
    Action("schema", "regenerate (--write) or verify (--check) schemas/ and references/", "cli.schema"),
    Action("validate", "load a spec with overrides and print it resolved, or its errors", "cli.validate"),
)
ACTIONS_BY_NAME: dict[str, Action] = {a.name: a for a in ACTIONS}
JOB_ACTIONS: tuple[str, ...] = tuple(a.name for a in ACTIONS if a.is_job)
SCHEMA_ACTIONS: tuple[str, ...] = tuple(a.name for a in ACTIONS if a.has_schema)
