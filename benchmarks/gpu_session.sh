#!/usr/bin/env bash
# Everything the lent GPU machine runs in one call: the carried wheels installed, then the steps named on
# the command line (default: all), each logged under $OUT. Run from the repository root:
#
#     bash benchmarks/gpu_session.sh [env] [tests] [examples] [crosscheck] [sanitize] [bench] [qgemm] [profile]
#
# The machine has torch, triton, cuda-python, pytest and ptxas, but not lark; llvmlite 0.50 travels too
# (.whl/, see the device notes), installed under /tmp/site ahead of the machine's own packages.
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/tilevm-gpu-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD
export TILEVM_CACHE_DIR=/tmp/tilevm-cache
steps=${*:-env tests examples crosscheck sanitize bench qgemm}

run() {  # run NAME COMMAND...: the command's output goes to the screen and to $OUT/NAME.log
    local name=$1
    shift
    echo "=== $name: $*"
    "$@" 2>&1 | tee -a "$OUT/$name.log"
    echo "=== $name: exit ${PIPESTATUS[0]}"
}

for step in $steps; do
    case $step in
    env)
        run env nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv
        run env python3 -c "import torch, triton, llvmlite, cuda.bindings; print('torch', torch.__version__, \
'triton', triton.__version__, 'llvmlite', llvmlite.__version__, 'cuda-bindings', cuda.bindings.__version__)"
        run env which ptxas compute-sanitizer
        ;;
    tests)
        run tests python3 -m pytest -q -m gpu -p no:cacheprovider -n 8 tests
        run tests python3 -m pytest -q -p no:cacheprovider tests/test_examples.py
        ;;
    examples)
        for example in examples/*.py; do run examples python3 "$example"; done
        ;;
    crosscheck)
        rm -f "$OUT/crosscheck.jsonl"
        TILEVM_CROSSCHECK="$OUT/crosscheck.jsonl" TILEVM_SKIP_PTX_CHECK=1 run crosscheck timeout 400 \
            python3 -m pytest -q -p no:cacheprovider -n 12 tests -m "not gpu" --ignore-glob="tests/test_codegen_*" \
            --ignore-glob="tests/test_cuda_*" --ignore-glob="tests/test_launch_*" --ignore=tests/test_lang_cache.py
        run crosscheck python3 benchmarks/crosscheck_report.py "$OUT/crosscheck.jsonl"
        ;;
    sanitize)
        for example in examples/*.py; do
            run sanitize compute-sanitizer --tool memcheck --report-api-errors no --error-exitcode 1 python3 "$example"
            run sanitize compute-sanitizer --tool racecheck --error-exitcode 1 python3 "$example"
        done
        for tool in memcheck racecheck; do  # the quantized GEMM's split-k tickets, workspace and graph capture
            run sanitize compute-sanitizer --tool $tool --report-api-errors no --error-exitcode 1 \
                python3 -m pytest -q -p no:cacheprovider tests/test_ops_qgemm_gpu.py -k "split_k or more_rows"
        done
        ;;
    bench)
        run bench python3 benchmarks/matmul_fp16.py
        run bench python3 benchmarks/w4a16.py
        run bench python3 benchmarks/launch_overhead.py
        run bench python3 benchmarks/first_launch.py
        ;;
    qgemm)
        run qgemm python3 benchmarks/qgemm.py --no-autotune --repeat-ms 20 --out "$OUT/qgemm.json"
        ;;
    profile)  # Nsight Compute on the quantized GEMM: one case a line of $PROFILE_CASES ("SHAPE BITS M [CONFIG]")
        while read -r shape bits m config; do
            [ -n "$shape" ] || continue
            run profile ncu --clock-control none -k regex:_body --launch-skip 2 --launch-count 1 \
                --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy \
                --section LaunchStats --section WarpStateStats --section SchedulerStats \
                --section ComputeWorkloadAnalysis --section InstructionStats \
                python3 benchmarks/qgemm_profile.py --shape "$shape" --bits "$bits" --m "$m" --config "$config"
        done <<<"${PROFILE_CASES:-28672x8192 4 1}"
        ;;
    *) echo "unknown step $step" ;;
    esac
done
