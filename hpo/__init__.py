"""The AutoML service: TAO schema reader, SearchSpace, algorithms, sweep + trial driver,
MLflow tracking, policy, promotion and the Python API (the `grounding_dino` command line is `cli`)."""
from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:  # lazy: `import hpo` must stay cheap for the CLI's --help
    if name in {"launch_sweep", "resume_sweep", "sweep_status", "SweepResult"}:
        from hpo import api

        return getattr(api, name)
    raise AttributeError(name)
