"""Compile time of each example kernel, phase by phase, as the first launch on an H100 pays it: cold (a new
process, an empty ``TILEVM_CACHE_DIR``, nothing parsed, compiled or imported beyond ``import tilevm``),
from the launch's arguments to the cubin; then a recompile of the same specialization in that process, and
the cached lookup that every later launch pays.

The timed call is the slow path of a launch on a GPU (``Kernel.compiled`` for a CUDA device, then
``Specialization.cuda_kernel``): the disk lookup, the front end, lowering, LLVM, ptxas, the disk cache's keys
and writes, with the imports that it makes (``tilevm.runtime.cuda``, the code generator, llvmlite) and its
background work started as it starts it (LLVM's worker process, ptxas' version). Only the device is a
stand-in (an sm_90 chip with a CUDA 13.0 driver), so that this runs without a GPU; loading the module is left
out (``first_launch.py`` has it). ``compile_phases`` splits the call into phases; ``imports`` beside them is
every import the call made (from ``python -X importtime``, included in the phases). tilevm's bytecode is
written first (``compileall``), as an installed package has it; the column ``no bytecode`` is the same cold
compile from a copy of the package without bytecode, in a process that writes none (a fresh checkout on
``PYTHONPATH``: the modules the call imports are compiled from source).

On a busy machine, ``--runs N`` measures each example N times (each cold, in a process of its own) and
shows the run with the fastest total.

    python benchmarks/compile_time.py [--runs N] [EXAMPLE ...]
"""

from __future__ import annotations

import argparse
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
CACHED_REPEATS = 2000
#: the stand-in device's driver: CUDA 13.0, the H100 machines' (580); it loads the cubins of any 13.x ptxas
STAND_IN_DRIVER = 13000

_MEASURE = r"""
import json, runpy, sys, time
import torch
import tilevm
from tilevm.runtime import jit
import compile_phases

launches = []


def record(self, grid, *args, **kwargs):
    launches.append((self, args, kwargs))


jit.Kernel.launch = record
try:
    runpy.run_path(sys.argv[1], run_name="__main__")
except Exception:
    pass  # the example checks a result that the recorder never computed
kernel, args, kwargs = launches[0]
stand_in = {
    "index": 0, "name": "sm_90 stand-in", "capability": (9, 0), "multiprocessor_count": 132,
    "max_shared_bytes_optin": 227 * 1024, "driver_version": int(sys.argv[3]),
}
clock = compile_phases.PhaseClock()
print(compile_phases.START_MARK, file=sys.stderr, flush=True)
start = time.perf_counter()
compile_phases.instrument(clock, stand_in)
values = jit.bind_arguments(kernel.signature, args, kwargs)
specialization = kernel.compiled(values, torch.device("cuda", 0))
specialization.cuda_kernel("sm_90a", 0)  # the target of compute capability 9.0
total = time.perf_counter() - start
print(compile_phases.END_MARK, file=sys.stderr, flush=True)
phases = clock.result(total)  # before the recompile below, which calls the timed functions again
kernel.programs.clear()
start = time.perf_counter()
kernel.compiled(values).compiled_ptx("sm_90a")
recompile = time.perf_counter() - start
lookups = []
for _ in range(int(sys.argv[2])):
    start = time.perf_counter()
    kernel.compiled(jit.bind_arguments(kernel.signature, args, kwargs))
    lookups.append(time.perf_counter() - start)
print(json.dumps({"total": total, "phases": phases, "recompile": recompile, "lookups": lookups}))
"""


def measure(
    example: pathlib.Path, package: pathlib.Path, bytecode: bool = True, repeats: int = CACHED_REPEATS
) -> dict:
    """One cold compile of ``example``'s first kernel in a new process with an empty disk cache, importing
    tilevm from ``package`` (writing no bytecode unless ``bytecode``)."""
    with tempfile.TemporaryDirectory() as cache:
        environment = child_environment([ROOT / "benchmarks", package.parent], cache, bytecode)
        arguments = [str(example), str(repeats), str(STAND_IN_DRIVER)]
        command = [sys.executable, "-X", "importtime", "-c", _MEASURE, *arguments]
        completed = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=cache)
    if completed.returncode:
        raise RuntimeError(f"{example.stem}: {completed.stderr[-3000:]}")
    if START_MARK not in completed.stderr or END_MARK not in completed.stderr:
        raise RuntimeError(f"{example.stem}: the measuring process marked no timed call")
    return {**json.loads(completed.stdout.strip().splitlines()[-1]), "imports": imports_in(completed.stderr)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="cold runs per example; the fastest is shown")
    parser.add_argument("examples", nargs="*", help="examples to measure, by name (all when none)")
    arguments = parser.parse_args()
    examples = [path for path in EXAMPLES if not arguments.examples or path.stem in arguments.examples]
    package = ROOT / "tilevm"
    precompile(package)
    llvmlite = "with" if has_bytecode("llvmlite.ir.instructions") else "without"
    print(f"stand-in device sm_90, driver {STAND_IN_DRIVER}; llvmlite {llvmlite} bytecode; ms, lookup in µs")
    extra = ["cold total", "imports (in the phases)", "cold total, no bytecode", "recompile", "cached lookup"]
    print(table_header("example (bytecode precompiled)", extra))
    with tempfile.TemporaryDirectory() as scratch:
        bare = copy_without_bytecode(package, pathlib.Path(scratch))
        for example in examples:
            results = [measure(example, package) for _ in range(arguments.runs)]
            source_only = min(
                measure(example, bare, bytecode=False, repeats=1)["total"] for _ in range(arguments.runs)
            )
            fastest = min(results, key=lambda result: result["total"])
            lookup = min(statistics.median(result["lookups"]) for result in results) * 1e6
            cells = [
                *phase_cells(fastest["phases"]),
                f"{fastest['total'] * 1e3:.1f}",
                f"{fastest['imports'] * 1e3:.1f}",
                f"{source_only * 1e3:.1f}",
                f"{fastest['recompile'] * 1e3:.0f}",
                f"{lookup:.1f}",
            ]
            print(f"| {example.stem} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
