"""The sweep driver of the two-node test, in its own process so the test can SIGKILL it:
`python two_node_driver.py ARGS.json` with ARGS {"spec": {...}, "ray_address": "host:port"}."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def main(args_path: str) -> None:
    from hpo.api import launch_sweep

    args = json.loads(Path(args_path).read_text())
    launch_sweep(args["spec"], ray_address=args["ray_address"], backend="function",
                 train_fn="hpo.testing:quadratic_train_fn",
                 train_fn_options={"record_node": True, "steps_per_epoch": 400}, progress=False)


if __name__ == "__main__":
    main(sys.argv[1])
