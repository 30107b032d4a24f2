#!/usr/bin/env bash
# The README's main job: on a fresh machine, install, generate the shapes dataset, run a small real
# AutoML sweep of the tiny CPU preset (local Ray, SQLite MLflow), promote the best trial, and print
# where everything is. Extra arguments are passed to `grounding_dino train` as overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MLFLOW_ENABLE_TELEMETRY=false RAY_USAGE_STATS_ENABLED=0 \
       DO_NOT_TRACK=1 TOKENIZERS_PARALLELISM=false
GD=.venv/bin/grounding_dino
RESULTS=${RESULTS:-results/quickstart}

[ -f data/shapes/eval/annotations.json ] || "$GD" dataset generate data/shapes
"$GD" dataset check -e examples/quickstart_sweep.yaml
"$GD" train -e examples/quickstart_sweep.yaml results_dir="$RESULTS" "$@"

echo
echo "Results:     $RESULTS  (best model: $RESULTS/best_model, report: $RESULTS/report/report.html)"
echo "MLflow UI:   .venv/bin/mlflow ui --backend-store-uri sqlite:///$(pwd)/$RESULTS/mlflow.db --port 5000"
