"""MLflow tracking of sweeps (parent run per sweep, child run per trial), the sweep report, the live
progress table and secret redaction. Heavy imports (ray, mlflow, matplotlib) stay in the submodules."""
from __future__ import annotations

from typing import Any

_EXPORTS = {
    "MlflowSweepCallback": "hpo.tracking.mlflow_callback",
    "default_tracking_uri": "hpo.tracking.mlflow_callback",
    "TrialRecord": "hpo.tracking.mlflow_callback",
    "MlflowWriter": "hpo.tracking.writer",
    "redact": "gdino.redact",
    "redact_text": "gdino.redact",
    "RedactingFilter": "gdino.redact",
    "install_log_redaction": "gdino.redact",
    "build_report": "hpo.tracking.report",
    "summary_text": "hpo.tracking.report",
    "Report": "hpo.tracking.report",
    "SweepProgressCallback": "hpo.tracking.progress",
    "render_table": "hpo.tracking.progress",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)
