"""Runs one sweep in its own process (the driver a kill test SIGKILLs): `python sweep_child.py ARGS.json`.

ARGS: {"setup": SweepSetup fields, "lrs": [...], "ray_address": "host:port"}.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def main(args_path: str) -> None:
    from ray import tune

    from hpo.sweep.cluster import ray_cluster
    from hpo.sweep.engine import SweepPlan, SweepSetup, run_sweep

    args = json.loads(Path(args_path).read_text())
    setup = SweepSetup(**args["setup"])
    plan = SweepPlan(param_space={"train.optim.lr": tune.grid_search(args["lrs"])})
    with ray_cluster(args["ray_address"], Path(setup.sweep_dir)) as cluster:
        run_sweep(setup, plan, cluster)


if __name__ == "__main__":
    main(sys.argv[1])
