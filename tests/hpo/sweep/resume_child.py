"""Runs one algorithm-planned sweep in its own process (the driver a kill test SIGKILLs):
`python resume_child.py ARGS.json` with ARGS {"sweep_dir", "spec" (a spec dict with an automl section),
"train_fn", "options", "ray_address"}. No MLflow tracking: the kill tests watch the ledger."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def main(args_path: str) -> None:
    from gdino.spec import load_spec
    from hpo.api import _plan_from_algorithm
    from hpo.sweep.cluster import ray_cluster
    from hpo.sweep.engine import SweepSetup, run_sweep

    args = json.loads(Path(args_path).read_text())
    cfg = load_spec(args["spec"])
    plan, _ = _plan_from_algorithm(cfg, cfg.automl, cfg.automl.metric, "max")
    setup = SweepSetup(sweep_dir=args["sweep_dir"], base_spec=cfg.model_dump(mode="json"),
                       automl=cfg.automl.model_dump(mode="json"), algorithm=cfg.automl.algorithm,
                       backend="function", train_fn=args["train_fn"], train_fn_options=args.get("options") or {})
    with ray_cluster(args["ray_address"], Path(setup.sweep_dir)) as cluster:
        run_sweep(setup, plan, cluster, progress=False)


if __name__ == "__main__":
    main(sys.argv[1])
