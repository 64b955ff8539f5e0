#!/usr/bin/env bash
# The GPU check: the one entry point the borrowed GPU host runs (benchmarks/gpu/README.md).
#
#   bash benchmarks/gpu/check.sh --part 1 [gpu_check.py options]   # on the GPU host, after prepare.py here
#   bash benchmarks/gpu/check.sh --rehearse                          # the CPU rehearsal (make gpu-rehearse, CI)
#
# On the GPU host: installs the carried wheels (.whl/partN/, prepare.py's) into /tmp/gpu-check-site with the
# host's python3, then runs gpu_check.py at full scale on cuda:0 for the pipelines of that part: the GPU
# correctness tests (pytest -m gpu) and every pipeline's benchmark beside its naive baseline, within the time
# budget. Results go to $OUT when set (the device tool brings them back), else ./gpu-out.
#
# --rehearse: the same steps on this machine's CPU at tiny scale, in a FRESH venv holding only what the GPU
# host has (torch 2.13.0 CPU; the host packages the check relies on, prepare.py's host-needs.txt, at
# constraints.txt's pins, then the host's own transformers 5.17 / huggingface_hub 1.33 over them; any package
# the host lacks removed again) plus the wheels prepare.py carries, downloaded for this machine's Python. Every part runs, with --strict: any missing
# package, failed or skipped section, or pipeline absent from results.json fails it (exit 1).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

mode=gpu part=1 rest=()
while [ $# -gt 0 ]; do
    case $1 in
        --rehearse) mode=rehearse ;;
        --part) part=$2; shift ;;
        *) rest+=("$1") ;;
    esac
    shift
done

# One part: install its wheels into a fresh --target folder (what the device README prescribes; --no-deps:
# prepare.py already resolved the closure) and run the driver with them first on the path.
run_part() {  # python wheels-folder site-folder out-folder driver-args...
    local py=$1 wheels=$2 site=$3 out=$4; shift 4
    rm -rf "$site"
    # `|| return`: errexit does not apply inside a function whose status the caller tests.
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
        "$wheels"/*.whl || return
    PYTHONPATH="$site:$repo" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 \
        "$py" benchmarks/gpu/gpu_check.py --out "$out" --pipelines-file "$wheels/pipelines.txt" "$@"
}

if [ "$mode" = gpu ]; then
    out=${OUT:-$repo/gpu-out}
    wheels=.whl/part$part
    if [ ! -f "$wheels/pipelines.txt" ]; then
        echo "no $wheels/pipelines.txt: run 'python benchmarks/gpu/prepare.py' on the development machine and carry $wheels" >&2
        exit 2
    fi
    started=$(date +%s)
    status=0
    mkdir -p "$out"
    {
        # The card as found (read only: the check never changes its settings).
        nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,temperature.gpu --format=csv || true
        run_part python3 "$wheels" /tmp/gpu-check-site "$out" --scale full --device cuda:0 ${rest[@]+"${rest[@]}"}
    } 2>&1 | tee "$out/check.log" || status=$?
    echo "check.sh: part $part finished in $(( $(date +%s) - started )) s, exit $status"
    exit "$status"
fi

# --- the CPU rehearsal --------------------------------------------------------------------------------------
root=$repo/gpu-out/rehearsal
python=${REHEARSE_PYTHON:-python3}
pyver=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
started=$(date +%s)
prep_py=python3
[ -x .venv/bin/python ] && prep_py=.venv/bin/python
# 1. The wheels the GPU host would be sent, for this machine's Python (the same plan as for 3.12).
"$prep_py" benchmarks/gpu/prepare.py --python "$pyver" --dest "$root/whl"
# 2. A fresh venv with only the host's packages: torch pinned (an unpinned one would pull a multi-GB CUDA
#    build) and the rest at constraints.txt's pins; nothing of this project installed.
rm -rf "$root/venv" "$root/models"  # synthetic weights too: each rehearsal writes its own
"$python" -m venv "$root/venv"
grep -v '^torch$' "$root/whl/host-needs.txt" > "$root/host-needs.txt"
"$root/venv/bin/python" -m pip install -q torch==2.13.0 -c constraints.txt -r "$root/host-needs.txt"
# The host's own transformers 5.17 / huggingface_hub 1.33 / tokenizers 0.23.2 (host-versions.txt) unless
# REHEARSE_VERSIONS=constraints; then whatever the host lacks goes again (typer pulls in pydantic, say), so
# only the carried wheels can provide it, as on the host. With constraints.txt's versions only what the
# carried wheels provide goes (huggingface_hub 2.4 needs httpx2, which the host's 1.33 does not).
if [ "${REHEARSE_VERSIONS:-host}" = host ]; then
    "$root/venv/bin/python" -m pip install -q -r benchmarks/gpu/host-versions.txt
    prune=()
else
    prune=(--carried "$root/whl/all-py$pyver")
fi
"$root/venv/bin/python" benchmarks/gpu/prune_venv.py benchmarks/gpu/host-packages.txt ${prune[@]+"${prune[@]}"} \
    | xargs -r "$root/venv/bin/python" -m pip uninstall -q -y
"$root/venv/bin/python" -m pip list --format=freeze > "$root/venv-packages.txt"
echo "rehearsal: venv ready in $(( $(date +%s) - started )) s"
# 3. Every part as the GPU host would run it, tiny scale on the CPU, strict.
status=0
for wheels in "$root"/whl/part*; do
    name=$(basename "$wheels")
    out=$root/out-$name
    rm -rf "$out"
    RUNNER_BENCH_SYNTH_DIR=$root/models run_part "$root/venv/bin/python" "$wheels" "$root/site-$name" "$out" \
        --scale tiny --device cpu --strict --budget-s "${REHEARSE_BUDGET_S:-900}" ${rest[@]+"${rest[@]}"} || status=$?
done
echo "rehearsal: finished in $(( $(date +%s) - started )) s, exit $status"
exit "$status"
