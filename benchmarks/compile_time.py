"""Compile time of each example kernel, phase by phase, as the first launch on an H100 pays it: cold (a new
process, an empty ``TILEVM_CACHE_DIR``, nothing parsed or compiled), from the launch's arguments to the
cubin; then a recompile of the same specialization in that process, and the cached lookup that every later
launch pays.

The phases are the calls a launch on a GPU makes (``Kernel.compiled``, ``Specialization.thread_program``,
``compile_ptx``, ``ptxas``, the disk cache's key and writes), in its order, with its background work
started as it starts it (LLVM's worker process, ptxas' version); only the device is a stand-in (an sm_90
chip, driver 13.0), so that this runs without a GPU, and loading the module is left out. Each example runs
in its own process; a first, untimed run lets Python write the bytecode of tilevm's modules, as an
installed package has it. On a busy machine, ``--runs N`` measures each example N times (each cold, in a
process of its own) and shows each phase's fastest.

    python benchmarks/compile_time.py [--runs N] [EXAMPLE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
CACHED_REPEATS = 2000
PHASES = (
    ("front end + Tile passes", "front_end"),
    ("lowering", "lowering"),
    ("LLVM IR", "llvm_ir"),
    ("LLVM O3 + PTX", "llvm"),
    ("ptxas", "ptxas"),
    ("keys + disk cache", "disk"),
)

_MEASURE = r"""
import json, runpy, sys, time
import tilevm
from tilevm.codegen import emit
from tilevm.ir import print_program
from tilevm.ir.thread import THREAD_IR
from tilevm.runtime import jit, launcher_cache
from tilevm.runtime.cuda import DiskCache, ptxas
from tilevm.runtime.launcher_ptx import kernel_key

TARGET, CAPABILITY, DRIVER = "sm_90", (9, 0), 13000
launches = []


def record(self, grid, *args, **kwargs):
    launches.append((self, args, kwargs))


jit.Kernel.launch = record
try:
    runpy.run_path(sys.argv[1], run_name="__main__")
except Exception:
    pass  # the example checks a result that the recorder never computed
kernel, args, kwargs = launches[0]
llvm = []
emit_ptx = emit.emit_ptx


def timed_emit_ptx(*arguments):
    start = time.perf_counter()
    ptx = emit_ptx(*arguments)
    llvm.append(time.perf_counter() - start)
    return ptx


emit.emit_ptx = timed_emit_ptx
times = [time.perf_counter()]
values = jit.bind_arguments(kernel.signature, args, kwargs)
emit.start_worker()  # what Kernel.compiled starts for a launch on a GPU, before the front end
ptxas.ask_version_in_background()
specialization = kernel.compiled(values)
times.append(time.perf_counter())
program = specialization.thread_program(TARGET)
times.append(time.perf_counter())
compiled = specialization.compiled_ptx(TARGET)
times.append(time.perf_counter())
ptxas.ptxas_version()  # what module.cubin_for asks before assembling
cubin = ptxas.assemble(compiled.ptx, TARGET)
times.append(time.perf_counter())
cache = DiskCache()
key = kernel_key(print_program(program, THREAD_IR), TARGET, CAPABILITY, DRIVER)
assert cache.load_kernel(key) is None
cache.store_kernel(key, compiled, cubin)
reads = launcher_cache.manifest(kernel.function, specialization.captures)
if reads is not None:
    disk_key = launcher_cache.specialization_key(
        kernel.function, kernel.num_threads, specialization.described, specialization.options, TARGET,
        CAPABILITY, DRIVER,
    )
    launcher_cache.store_specialization(disk_key, reads, compiled, cubin)
times.append(time.perf_counter())
phases = [later - earlier for earlier, later in zip(times, times[1:])]
codegen = phases.pop(2)
phases[2:2] = [codegen - llvm[0], llvm[0]]
kernel.programs.clear()
start = time.perf_counter()
kernel.compiled(values).compiled_ptx(TARGET)
recompile = time.perf_counter() - start
lookups = []
for _ in range(int(sys.argv[2])):
    start = time.perf_counter()
    kernel.compiled(jit.bind_arguments(kernel.signature, args, kwargs))
    lookups.append(time.perf_counter() - start)
print(json.dumps({"phases": phases, "recompile": recompile, "lookups": lookups}))
"""


def measure(example: pathlib.Path, repeats: int = CACHED_REPEATS) -> dict:
    """One cold compile of ``example``'s first kernel in a new process with an empty disk cache."""
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environment.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as cache:
        environment["TILEVM_CACHE_DIR"] = cache
        command = [sys.executable, "-c", _MEASURE, str(example), str(repeats)]
        output = subprocess.run(command, capture_output=True, text=True, check=True, env=environment).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="cold runs per example; each phase's fastest")
    parser.add_argument("examples", nargs="*", help="examples to measure, by name (all when none)")
    arguments = parser.parse_args()
    runs = arguments.runs
    examples = [path for path in EXAMPLES if not arguments.examples or path.stem in arguments.examples]
    names = [name for name, _ in PHASES]
    print(f"| example (ms) | {' | '.join(names)} | cold total | recompile | cached lookup (µs) |")
    print(f"| --- |{' ---: |' * (len(names) + 3)}")
    for example in examples:
        measure(example, 1)  # Python writes tilevm's bytecode, as an installed package has it
        results = [measure(example) for _ in range(runs)]
        phases = [min(result["phases"][index] for result in results) for index in range(len(PHASES))]
        recompile = min(result["recompile"] for result in results)
        lookup = min(statistics.median(result["lookups"]) for result in results) * 1e6
        shown = " | ".join(f"{seconds * 1e3:.1f}" for seconds in [*phases, sum(phases)])
        print(f"| {example.stem} | {shown} | {recompile * 1e3:.0f} | {lookup:.1f} |")


if __name__ == "__main__":
    main()
