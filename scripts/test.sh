#!/usr/bin/env bash
# The test command of the README: installs what it needs, then runs the whole suite offline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 MLFLOW_ENABLE_TELEMETRY=false \
       RAY_USAGE_STATS_ENABLED=0 DO_NOT_TRACK=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/python -m pytest "$@"
