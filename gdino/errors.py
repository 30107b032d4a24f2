"""Typed errors a user can cause.

Every error here says what was wrong and how to fix it. The CLI prints `str(err)` without a
traceback and exits with `err.exit_code`. All packages (gdino, hpo, trt) raise these or subclasses.
"""
from __future__ import annotations


class GdinoError(Exception):
    """Base of every user-facing error. `hint` says how to fix it."""

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message}\n  hint: {hint}")


class SpecError(GdinoError):
    """A problem in a spec file or an override: `key` is the dotted path it concerns."""

    def __init__(self, message: str, *, key: str | None = None, hint: str | None = None) -> None:
        self.key = key
        super().__init__(f"{key}: {message}" if key else message, hint=hint)


class SpecErrors(GdinoError):
    """Several spec problems found at once (each a SpecError)."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = errors
        lines = [f"{len(errors)} problem(s) in the spec:"] + [f"  - {e}" for e in errors]
        super().__init__("\n".join(lines))


class SchemaError(GdinoError):
    """A schema (ours, TAO's, or a user's) whose metadata cannot be turned into a search space."""

    def __init__(self, message: str, *, parameter: str | None = None, hint: str | None = None) -> None:
        self.parameter = parameter
        super().__init__(f"{parameter}: {message}" if parameter else message, hint=hint)


class DatasetError(GdinoError):
    """A dataset, annotation file, label map, image or archive that cannot be used."""


class ArchiveError(DatasetError):
    """An archive refused for safety (path traversal, links, devices, bombs) or unreadable."""


class CheckpointError(GdinoError):
    """A checkpoint that is missing, unreadable, or does not fit the configured network."""


class UnsupportedError(GdinoError):
    """A valid TAO setting that this implementation does not support (e.g. model.dn_number > 0)."""


class TextEncoderUnavailable(GdinoError):
    """The text encoder / tokenizer named by model.text_encoder_type cannot be found offline."""


class DependencyMissing(GdinoError):
    """An optional dependency (e.g. TensorRT, a GPU) needed by the requested action is missing."""

    exit_code = 3


class SweepError(GdinoError):
    """A sweep that cannot start or cannot continue (cluster, budget, ledger, resume problems)."""
