#!/usr/bin/env bash
# The README's main job: on a fresh machine, install, generate a small shapes dataset, run a small real
# AutoML sweep of the tiny CPU preset (ASHA, 4 trials, local Ray, SQLite MLflow), promote the best trial
# (when hpo.promote is installed), and print where everything is.
# Extra arguments are passed to `grounding_dino train` as overrides (e.g. automl.max_recommendations=6).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${SKIP_SETUP:-}" ] || bash scripts/setup_env.sh   # SKIP_SETUP=1: use the existing .venv as it is
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MLFLOW_ENABLE_TELEMETRY=false RAY_USAGE_STATS_ENABLED=0 \
       DO_NOT_TRACK=1 TOKENIZERS_PARALLELISM=false
GD=.venv/bin/grounding_dino
SPEC=examples/quickstart_sweep.yaml
RESULTS=${RESULTS:-results/quickstart}
started=$(date +%s)

[ -f data/quickstart/eval/annotations.json ] || \
    "$GD" dataset generate data/quickstart --num-train 32 --num-val 16 --num-infer 4 --image-size 96
"$GD" dataset check -e "$SPEC"
status=0
"$GD" train -e "$SPEC" results_dir="$RESULTS" "$@" || status=$?

case "$RESULTS" in /*) results_abs=$RESULTS ;; *) results_abs=$(pwd)/$RESULTS ;; esac
echo
echo "Wall time:   $(( $(date +%s) - started )) s"
echo "Results:     $RESULTS  (sweeps: $RESULTS/automl/, report: $RESULTS/report/report.html)"
echo "Disk used:   $(du -sh "$RESULTS" 2>/dev/null | cut -f1)"
echo "MLflow UI:   .venv/bin/mlflow ui --backend-store-uri sqlite:///$results_abs/mlflow.db --port 5000"
exit $status
