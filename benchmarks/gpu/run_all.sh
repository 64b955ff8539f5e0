#!/usr/bin/env bash
# All three runners on one GPU host, full-scale synthetic weights unless MODEL_DIR holds the real ones.
# Budget: about 9 minutes on one H100 (synthesis of the full-size weights included). Results land in
# benchmarks/results/<card>/ (results.json for `runner-sdk aimodels plan`, results.md, charts); the summary
# table is printed last.
#
#   MODEL_DIR=/models bash benchmarks/gpu/run_all.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
# The project's virtualenv (`make install`) when there is one; PYTHON overrides, python3 is the fallback.
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
card=$("$PYTHON" -c "import pynvml as n; n.nvmlInit(); h=n.nvmlDeviceGetHandleByIndex(0); x=n.nvmlDeviceGetName(h); print((x.decode() if isinstance(x, bytes) else x).replace(' ', '-'))" 2>/dev/null || echo unknown-gpu)
out=benchmarks/results/${card}
mkdir -p "$out"
# Synthetic weights go to local disk, never into the results folder that gets committed.
export RUNNER_BENCH_SYNTH_DIR=${RUNNER_BENCH_SYNTH_DIR:-/tmp/runner-bench-models}
"$PYTHON" -m runner_sdk bench --scale full --max-capacity 2 --requests "${REQUESTS:-4}" \
    --model-dir "${MODEL_DIR:-/models}" --device cuda:0 --out "$out" 2>&1 | tee "$out/bench.log"
echo
cat "$out/results.md"
