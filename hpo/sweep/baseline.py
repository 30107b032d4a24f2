"""Baselines of a sweep: what the user started with, so that a sweep never returns worse than it and
the report says by how much it did better (issue 11 part 6).

* The baseline trial: the spec as written, run as the sweep's first trial (`automl.baseline_trial`,
  on by default). Our searchers take it as a given point (`SpaceSearcher.points_to_evaluate`, Ray's
  `points_to_evaluate` in our own searchers), so it counts in the trial budget; a scheduler that runs it
  outside its rungs (`baseline_outside_rungs`, the synchronous Hyperband family) gets it as an extra
  trial at the sweep's largest budget, which no rung can stop. Its config carries
  `hpo.algorithms.scoring.BASELINE_KEY`, which marks it in the ledger, MLflow, the report and the live
  table; the one ranking rule treats it as any other candidate (and it wins ties: it started first).
* The zero-shot baseline: when the sweep starts from a pretrained checkpoint
  (`train.pretrained_model_path`), that checkpoint's val_mAP50 before any fine-tuning, measured as a
  Ray task with one trial's resources and recorded on the MLflow parent run as `baseline_val_mAP50`.
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any, Mapping, Optional

from hpo.algorithms.scoring import BASELINE_KEY, better

log = logging.getLogger(__name__)

ZERO_SHOT = "zero-shot"  # the name of the zero-shot baseline in SweepSetup.baselines and the report
ZERO_SHOT_METRIC = "baseline_val_mAP50"  # on the MLflow parent run
ZERO_SHOT_DIR = "baseline_zero_shot"


def baseline_config(space: Any) -> dict[str, Any]:
    """The spec's own value of every searched parameter that has an effect, marked as the baseline.
    (`Param.default` is the spec's value, hpo.space.build._spec_value.)"""
    values = {p.name: p.default for p in space.params if p.default is not None}
    return {**space.active(values), BASELINE_KEY: True}


def add_baseline_trial(plan: Any, space: Any) -> Optional[dict[str, Any]]:
    """Put the baseline trial first in `plan` (see the module docstring); returns its config, or None
    (with a printed line) when the plan's searcher cannot take a given configuration."""
    searcher = plan.searcher
    if searcher is None or not hasattr(searcher, "points_to_evaluate"):
        print("baseline trial: not run, this sweep's searcher does not accept a given configuration",
              flush=True)
        return None
    config = baseline_config(space)
    searcher.points_to_evaluate = [config, *searcher.points_to_evaluate]
    outside = bool(getattr(plan.scheduler, "baseline_outside_rungs", False))
    if outside:
        plan.num_samples = int(plan.num_samples) + 1
    shown = ", ".join(f"{k}={v}" for k, v in config.items() if k != BASELINE_KEY) or "no searched parameters"
    print(f"baseline trial: the spec as written runs first ({shown})"
          + ("; an extra trial at the largest budget, outside the rungs" if outside else
             "; it counts in the trial budget"), flush=True)
    return config


def announce_pretrained_drops(space: Any) -> list[str]:
    """Print one line per parameter left out of the space because the sweep starts from a pretrained
    checkpoint (hpo.space.build.drop_architecture_params); returns the names."""
    names = []
    for excluded in getattr(space, "excluded", ()):
        if "pretrained checkpoint" in excluded.reason:
            print(f"not searched: {excluded.name}: {excluded.reason}", flush=True)
            names.append(excluded.name)
    return names


# ------------------------------------------------------------------------------------------ zero-shot
def pretrained_checkpoint(spec: Mapping[str, Any]) -> Optional[str]:
    value = (spec.get("train") or {}).get("pretrained_model_path")
    return str(value) if value not in (None, "", "???") else None


def zero_shot_spec(spec: Mapping[str, Any], out_dir: str | Path) -> dict[str, Any]:
    """The spec that evaluates the pretrained checkpoint on the validation data, as it is."""
    out = copy.deepcopy(dict(spec))
    out.pop("automl", None)
    dataset = out.setdefault("dataset", {})
    dataset["test_data_sources"] = copy.deepcopy(dataset.get("val_data_sources"))
    out["evaluate"] = {**(out.get("evaluate") or {}), "checkpoint": pretrained_checkpoint(spec),
                       "results_dir": str(out_dir)}
    out["results_dir"] = str(out_dir)
    return out


def evaluate_zero_shot(spec: Mapping[str, Any], out_dir: str | Path) -> float:
    """val_mAP50 (COCO AP50 on the validation data) of the pretrained checkpoint, before any training."""
    from gdino.engine.evaluate import evaluate
    from gdino.spec import load_spec

    metrics = evaluate(load_spec(zero_shot_spec(spec, out_dir)))
    return float(metrics["AP50"])


def measure_zero_shot(spec: Mapping[str, Any], sweep_dir: str | Path, resources: Mapping[str, float]) -> float:
    """`evaluate_zero_shot` as a Ray task with one trial's resources (`TrialResources.
    single_process_resources()`): it runs where trials run (a GPU worker when trials use GPUs)."""
    import ray

    wanted = dict(resources)
    options = {"num_cpus": wanted.pop("CPU", 1), "num_gpus": wanted.pop("GPU", 0), "resources": wanted,
               "max_retries": 0}
    out_dir = str(Path(sweep_dir) / ZERO_SHOT_DIR)
    task = ray.remote(evaluate_zero_shot).options(**options)
    return float(ray.get(task.remote(dict(spec), out_dir)))


def zero_shot_warning(zero_shot: Optional[float], scores: list[Optional[float]], mode: str) -> Optional[str]:
    """The warning when the pretrained checkpoint as it is beats every trial of the sweep."""
    scored = [s for s in scores if s is not None]
    if zero_shot is None or not scored or not all(better(zero_shot, s, mode) for s in scored):
        return None
    return (f"WARNING: the pretrained checkpoint's zero-shot val_mAP50 {zero_shot:.4f} beats every trial "
            f"(best {max(scored) if mode == 'max' else min(scored):.4f}): fine-tuning made it worse; check the "
            "learning rates, the epochs and the data")
