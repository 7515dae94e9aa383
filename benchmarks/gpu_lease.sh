#!/usr/bin/env bash
# The GPU measurements in one call to a lent GPU machine (docs/development.md, "On a GPU").
#
#   bash benchmarks/gpu_lease.sh PART...     # parts: modes families cpu formatting tests noise qwen
#
# The machine has PyTorch, transformers and peft but not the rest of visuels' libraries: they
# travel as wheels in .whl (git-ignored; built and downloaded here, see docs/development.md),
# visuels' own wheel among them. Each part runs under its own time limit, so one that fails or
# runs long leaves the others their time; its log and JSON land in $OUT.
set -u
out="${OUT:-/tmp/gpu-lease}"
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
export OUT="$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c 'import torch, diffusers, transformers, peft; print("torch", torch.__version__, "diffusers", diffusers.__version__, "transformers", transformers.__version__, "peft", peft.__version__)'

part() {  # part NAME SECONDS COMMAND...: one measurement, its output in $OUT/NAME.log
    local name=$1 limit=$2
    shift 2
    local started=$SECONDS
    echo "=== $name (limit ${limit}s)"
    timeout --kill-after=10 "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    grep -v -E '^\[transformers\]|it/s\]|s/it\]' "$out/$name.log" | tail -25
    echo "=== $name: rc $rc in $((SECONDS - started)) s"
}

for name in "$@"; do
    case $name in
    tests) part tests 200 python3 -m pytest -q -p no:cacheprovider -o addopts= --timeout 180 tests/test_gpu.py ;;
    modes)
        part modes 400 python3 -m benchmarks.gpu_render render --family sd15 --naive 0 --images 96 \
            --modes exact fp8 cutoff-40 fp8+cutoff-40 few-step deep-cache-3 --out "$out/modes.json"
        ;;
    cpu) part cpu 90 python3 -m benchmarks.cpu_stage --pictures 24 --workers 1 8 14 ;;
    formatting)
        part formatting 240 python3 -m benchmarks.gpu_render render --family sd15 --naive 0 --images 96 \
            --modes exact few-step --format-on-device --out "$out/formatting.json"
        ;;
    families)
        part families 200 python3 -m benchmarks.family_render --family flux2-klein z-image flux1 --batch 1 4 --calls 1 \
            --first-block-cache 0.1 --float8 --out "$out/families.json"
        ;;
    qwen)
        part qwen 150 python3 -m benchmarks.family_render --family qwen-image --batch 1 --calls 1 --steps 4 8 \
            --out "$out/qwen.json"
        ;;
    noise)
        part noise 150 bash -c 'python3 -c "from pathlib import Path; from benchmarks.full_size_models import save;
save(\"sd15\", Path(\"/tmp/sd15\"))" && python3 -m benchmarks.noise_mark --model /tmp/sd15 --pictures 4'
        ;;
    *) echo "unknown part: $name" ;;
    esac
done
