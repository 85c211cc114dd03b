"""Compile time of each example kernel on the GPU, as a user meets it: the first launch in a new process with
an empty disk cache (cold: front end, passes, lowering, LLVM, ptxas, module load), the first launch in a new
process that finds the kernel in the disk cache, and a launch in the same process once it is compiled.

Each figure is one example's first ``kernel[grid](...)`` call, timed with a synchronisation after it (the
kernels themselves take microseconds), in a fresh Python process that has already imported tilevm and torch
and initialised CUDA: what the launch itself costs, the imports it makes included. The cold launch is
measured twice: with tilevm's bytecode written beforehand (``compileall``, as ``pip install`` leaves an
installed package), and from a copy of the package without bytecode, in processes that write none (a fresh
checkout on ``PYTHONPATH``: every process compiles the modules it imports). The second table splits each
cold launch with bytecode into phases (``compile_phases``), timed inside that same process; ``imports`` is
every import the launch made (``python -X importtime``, included in the phases). Beside them, the cold
compile of Triton's matmul tutorial kernel in the same kind of process, for scale.

    python benchmarks/first_launch.py
"""

from __future__ import annotations

import json
import pathlib
import statistics
import subprocess
import sys
import tempfile

from compile_phases import (
    END_MARK,
    START_MARK,
    child_environment,
    copy_without_bytecode,
    has_bytecode,
    imports_in,
    phase_cells,
    precompile,
    table_header,
)

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
FROM_DISK_RUNS = 3

_MEASURE = r"""
import json, runpy, sys, time
import torch
import tilevm
from tilevm.runtime import jit, jit_partial
import compile_phases

torch.zeros(1, device="cuda")  # CUDA initialised before the clock starts
clock = compile_phases.PhaseClock()
timings = []
launched = []
depth = [0]


# a kernel's launch method, timed: the outermost call only, since a launch of a kernel with arguments
# given once (Kernel.partial, as the op library's kept launches) may call the kernel's own
def timing(original):

    def timed(self, grid, *args, **kwargs):
        if depth[0]:
            return original(self, grid, *args, **kwargs)
        depth[0] += 1
        torch.cuda.synchronize()
        first = not timings
        launched.append(getattr(self, "kernel", self))
        if first:
            print(compile_phases.START_MARK, file=sys.stderr, flush=True)
        start = time.perf_counter()
        if first:
            compile_phases.instrument(clock)
        try:
            original(self, grid, *args, **kwargs)
            torch.cuda.synchronize()
        finally:
            depth[0] -= 1
        timings.append(time.perf_counter() - start)
        if first:
            print(compile_phases.END_MARK, file=sys.stderr, flush=True)

    return timed


jit.Kernel.launch = timing(jit.Kernel.launch)
jit_partial.PartialKernel.launch = timing(jit_partial.PartialKernel.launch)
module = runpy.run_path(sys.argv[1], run_name="example")
module["main"]()
first = timings[0]
phases = clock.result(first)
timings.clear()
module["main"]()
from tilevm.runtime.cuda import properties, ptxas

# what the first launch loaded: a cubin, or the PTX for the driver to compile (when ptxas is newer than it)
cubins = [cubin for code in launched[0].programs.values() for _, cubin in code.device_code.values()]
print(json.dumps({
    "first": first, "phases": phases, "again": timings[0], "cubin": None not in cubins,
    "driver": properties(0).driver_version, "ptxas": ptxas.ptxas_version(),
}))
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


def run(code: list[str], package: pathlib.Path, cache: str, triton_cache: str, bytecode: bool = True) -> dict:
    """Run ``code`` in a new Python process that imports tilevm from ``package``'s directory and keeps its
    disk caches in ``cache`` and ``triton_cache``; its last line of output, as JSON, with the time the timed
    call spent importing (``imports``)."""
    environment = child_environment([ROOT / "benchmarks", package.parent], cache, bytecode)
    environment["TRITON_CACHE_DIR"] = triton_cache
    # the working directory would come first on sys.path: a directory that holds no tilevm
    command = [sys.executable, "-X", "importtime", *code]
    result = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=cache)
    if result.returncode:
        raise RuntimeError(result.stderr[-3000:])
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    if START_MARK in result.stderr and END_MARK in result.stderr:
        measured["imports"] = imports_in(result.stderr)
    return measured


def measure_example(example: pathlib.Path, package: pathlib.Path, bare: pathlib.Path) -> dict:
    """``example``'s first launch: cold, then from the disk cache (``FROM_DISK_RUNS`` processes, the
    median), with ``package`` (bytecode precompiled); and cold with ``bare`` (no bytecode)."""
    measure = ["-c", _MEASURE, str(example)]
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as triton_cache:
        cold = run(measure, package, cache, triton_cache)
        warm = [run(measure, package, cache, triton_cache)["first"] for _ in range(FROM_DISK_RUNS)]
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as triton_cache:
        source_only = run(measure, bare, cache, triton_cache, bytecode=False)
    return {**cold, "from_disk": statistics.median(warm), "no_bytecode": source_only["first"]}


def triton_first_launches(package: pathlib.Path) -> tuple[float, float]:
    """Triton's matmul: its first launch cold and from its disk cache, each in a new process."""
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as triton_cache:
        script = pathlib.Path(cache) / "triton_matmul.py"  # Triton reads a kernel's source from its file
        script.write_text(_TRITON)
        cold = run([str(script)], package, cache, triton_cache)["first"]
        warm = run([str(script)], package, cache, triton_cache)["first"]
    return cold, warm


def main() -> None:
    package = ROOT / "tilevm"
    precompile(package)
    with tempfile.TemporaryDirectory() as scratch:
        bare = copy_without_bytecode(package, pathlib.Path(scratch))
        results = {example.stem: measure_example(example, package, bare) for example in EXAMPLES}
    print(
        "| kernel | cold first launch (ms) | cold, no bytecode (ms) | first launch from the disk cache (ms) "
        "| cached launch (ms) |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, result in results.items():
        print(
            f"| {name} | {result['first'] * 1e3:.0f} | {result['no_bytecode'] * 1e3:.0f} | "
            f"{result['from_disk'] * 1e3:.1f} | {result['again'] * 1e3:.2f} |"
        )
    cold, warm = triton_first_launches(package)
    print(f"| Triton matmul tutorial-style kernel (32x32x32) | {cold * 1e3:.0f} | - | {warm * 1e3:.1f} | - |")
    some = next(iter(results.values()))
    ptxas = ".".join(map(str, some["ptxas"])) if some["ptxas"] else "none"
    llvmlite = "with" if has_bytecode("llvmlite.ir.instructions") else "without"
    print(
        f"\nThe cold first launch (bytecode precompiled), phase by phase, in ms (driver {some['driver']}, "
        f"ptxas {ptxas}, llvmlite {llvmlite} bytecode):\n"
    )
    print(table_header("kernel", ["cold first launch", "imports (in the phases)", "loaded"]))
    for name, result in results.items():
        loaded = "cubin" if result["cubin"] else "PTX (driver's JIT)"
        totals = [f"{result['first'] * 1e3:.1f}", f"{result['imports'] * 1e3:.1f}", loaded]
        print(f"| {name} | {' | '.join([*phase_cells(result['phases']), *totals])} |")


if __name__ == "__main__":
    main()
