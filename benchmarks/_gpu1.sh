set -uo pipefail
OUT=${OUT:-/tmp/o}; mkdir -p $OUT
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD TILEVM_CACHE_DIR=/tmp/tvc PYTHONUNBUFFERED=1
timeout 570 python3 benchmarks/qgemm.py --no-autotune --repeat-ms 20 --out $OUT/qgemm.json > $OUT/qgemm.log 2>&1
tail -5 $OUT/qgemm.log
