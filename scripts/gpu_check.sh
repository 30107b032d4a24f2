#!/usr/bin/env bash
# The GPU check (issue 11 part 7): AMP training steps (fp16, bf16), a 1-GPU Ray Train trial, TensorRT FP32
# and FP16 engines with output parity against ONNX Runtime, and `evaluate` on the engine. Each step is
# scripts/gpu_check.py <step>; this prints a summary of the figures and exits non-zero when any step failed.
# Without a CUDA GPU it says so and exits 0 (nothing to check here). Offline: it makes its own data.
#   WORK=<dir> keeps the work files (default: a temp dir, removed at the end); PYTHON=<python> picks the env.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MLFLOW_ENABLE_TELEMETRY=false RAY_USAGE_STATS_ENABLED=0 \
       DO_NOT_TRACK=1 TOKENIZERS_PARALLELISM=false PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}"
if [ -n "${WORK:-}" ]; then keep=1; mkdir -p "$WORK"; else keep=0; WORK=$(mktemp -d -t gdino-gpu-check-XXXXXX); fi
LOG="$WORK/gpu_check.log"
: > "$LOG"

"$PY" scripts/gpu_check.py probe "$WORK" 2>&1 | tee -a "$LOG"
probe=${PIPESTATUS[0]}
if [ "$probe" = 10 ]; then
    echo "gpu_check: skipped: no CUDA GPU on this machine (run it where the device tool lends one)"
    [ "$keep" = 1 ] || rm -rf "$WORK"
    exit 0
elif [ "$probe" != 0 ]; then
    echo "gpu_check: the probe itself failed (exit $probe): is the environment installed? ($PY)"
    exit 1
fi

declare -A status seconds
failed=0
for step in setup amp ray_train trt evaluate; do
    began=$(date +%s)
    "$PY" scripts/gpu_check.py "$step" "$WORK" >> "$LOG" 2>&1
    rc=$?
    seconds[$step]=$(( $(date +%s) - began ))
    if [ $rc = 0 ]; then status[$step]=ok; else status[$step]="FAILED (exit $rc)"; failed=1; fi
    echo "gpu_check: $step: ${status[$step]} in ${seconds[$step]} s" | tee -a "$LOG"
    if [ "$step" = setup ] && [ $rc != 0 ]; then break; fi          # nothing else can run without its data
    if [ "$step" = amp ] && [ $rc != 0 ]; then status[trt]="not run (needs amp's model)"; status[evaluate]="not run"; break; fi
done

echo
echo "== gpu_check summary =="
for step in setup amp ray_train trt evaluate; do printf '  %-10s %s\n' "$step" "${status[$step]:-not run}"; done
echo "figures:"
grep '^FIGURE ' "$LOG" | sed 's/^FIGURE /  /'
echo "log: $LOG"
if [ "$failed" = 0 ]; then
    echo "gpu_check: all steps passed"
    [ "$keep" = 1 ] || rm -rf "$WORK"
    exit 0
fi
echo "gpu_check: FAILED (details in $LOG)"
exit 1
