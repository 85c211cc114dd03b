"""Compile time of each example kernel on the GPU, as a user meets it: the first launch in a new process with
an empty disk cache (cold: front end, passes, lowering, LLVM, ptxas, module load), the first launch in a new
process that finds the kernel in the disk cache, and a launch in the same process once it is compiled.

Each figure is one example's first ``kernel[grid](...)`` call, timed with a synchronisation after it (the
kernels themselves take microseconds), in a fresh Python process that has already imported tilevm and torch
and initialised CUDA: what the launch itself costs. Beside it, the cold compile of Triton's matmul tutorial
kernel in the same kind of process, for scale.

    PYTHONPATH=. python benchmarks/first_launch.py
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

EXAMPLES = sorted((pathlib.Path(__file__).resolve().parent.parent / "examples").glob("*.py"))

_MEASURE = r"""
import json, runpy, sys, time
import torch
import tilevm
from tilevm.runtime import jit

torch.zeros(1, device="cuda")  # CUDA initialised before the clock starts
timings = []
original = jit.Kernel.launch


def timed(self, grid, *args, **kwargs):
    torch.cuda.synchronize()
    start = time.perf_counter()
    original(self, grid, *args, **kwargs)
    torch.cuda.synchronize()
    timings.append(time.perf_counter() - start)


jit.Kernel.launch = timed
module = runpy.run_path(sys.argv[1], run_name="example")
module["main"]()
first = timings[0]
timings.clear()
module["main"]()
print(json.dumps({"first": first, "again": timings[0]}))
"""

_TRITON = r"""
import json, time, torch, triton, triton.language as tl

@triton.jit
def matmul(a, b, c, M, N, K, sam, sak, sbk, sbn, scm, scn,
           BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    pm, pn = tl.program_id(0), tl.program_id(1)
    rm, rn, rk = pm * BM + tl.arange(0, BM), pn * BN + tl.arange(0, BN), tl.arange(0, BK)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k in range(0, K, BK):
        ka, kb = (k + rk)[None, :], (k + rk)[:, None]
        x = tl.load(a + rm[:, None] * sam + ka * sak, mask=(rm[:, None] < M) & (ka < K), other=0.0)
        y = tl.load(b + kb * sbk + rn[None, :] * sbn, mask=(kb < K) & (rn[None, :] < N), other=0.0)
        acc += tl.dot(x, y)
    mask = (rm[:, None] < M) & (rn[None, :] < N)
    tl.store(c + rm[:, None] * scm + rn[None, :] * scn, acc.to(tl.float16), mask=mask)

a = torch.randn(70, 200, device="cuda").half()
b = torch.randn(200, 96, device="cuda").half()
c = torch.empty(70, 96, device="cuda").half()
torch.cuda.synchronize()
start = time.perf_counter()
matmul[(3, 3)](a, b, c, 70, 96, 200, *a.stride(), *b.stride(), *c.stride(), BM=32, BN=32, BK=32, num_stages=2)
torch.cuda.synchronize()
print(json.dumps({"first": time.perf_counter() - start}))
"""


def run(code: list[str], cache: str, triton_cache: str) -> dict:
    environment = {"TILEVM_CACHE_DIR": cache, "TRITON_CACHE_DIR": triton_cache}
    result = subprocess.run(
        [sys.executable, *code], capture_output=True, text=True, env={**os.environ, **environment}
    )
    if result.returncode:
        raise RuntimeError(result.stderr[-2000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    print("| kernel | cold first launch (ms) | first launch from the disk cache (ms) | cached launch (ms) |")
    print("| --- | ---: | ---: | ---: |")
    for example in EXAMPLES:
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as triton_cache:
            cold = run(["-c", _MEASURE, str(example)], cache, triton_cache)
            warm = [run(["-c", _MEASURE, str(example)], cache, triton_cache)["first"] for _ in range(3)]
        print(
            f"| {example.stem} | {cold['first'] * 1e3:.0f} | {statistics.median(warm) * 1e3:.1f} | "
            f"{cold['again'] * 1e3:.2f} |"
        )
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as triton_cache:
        script = pathlib.Path(cache) / "triton_matmul.py"  # Triton reads a kernel's source from its file
        script.write_text(_TRITON)
        cold = run([str(script)], cache, triton_cache)["first"]
        warm = run([str(script)], cache, triton_cache)["first"]
    print(f"| Triton matmul tutorial-style kernel (32x32x32) | {cold * 1e3:.0f} | {warm * 1e3:.1f} | - |")


if __name__ == "__main__":
    main()
