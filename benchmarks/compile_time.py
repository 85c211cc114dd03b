"""Compile time of each example kernel: the first compile in a fresh process (cold: nothing parsed or
cached), a recompile of a new specialization's program from a kernel whose source is already parsed, and the
cached lookup that every later launch pays. Each example runs in its own process, once, with its own
arguments; the launch itself is replaced by a recorder so that only compilation is timed.

    python benchmarks/compile_time.py
"""

from __future__ import annotations

import json
import pathlib
import statistics
import subprocess
import sys

EXAMPLES = sorted((pathlib.Path(__file__).resolve().parent.parent / "examples").glob("*.py"))
CACHED_REPEATS = 2000

_MEASURE = r"""
import json, runpy, sys, time
import tilevm
from tilevm.runtime import jit

launches = []
jit.execute = lambda program, arguments, grid: None  # compile, do not run


def record(self, grid, *args, **kwargs):
    launches.append((self, args, kwargs))


original_launch = jit.Kernel.launch
jit.Kernel.launch = record
try:
    runpy.run_path(sys.argv[1], run_name="__main__")
except Exception:
    pass  # the example checks a result that the recorder never computed
kernel, args, kwargs = launches[0]
values = jit.bind_arguments(kernel.signature, args, kwargs)
start = time.perf_counter()
kernel.compiled(values)
cold = time.perf_counter() - start
kernel.programs.clear()
start = time.perf_counter()
kernel.compiled(values)
warm = time.perf_counter() - start
lookups = []
for _ in range(int(sys.argv[2])):
    start = time.perf_counter()
    kernel.compiled(jit.bind_arguments(kernel.signature, args, kwargs))
    lookups.append(time.perf_counter() - start)
print(json.dumps({"cold": cold, "warm": warm, "lookups": lookups}))
"""


def measure(example: pathlib.Path) -> dict:
    command = [sys.executable, "-c", _MEASURE, str(example), str(CACHED_REPEATS)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    print("| example | cold compile (ms) | recompile (ms) | cached lookup, bind + key (µs, median) |")
    print("| --- | ---: | ---: | ---: |")
    for example in EXAMPLES:
        result = measure(example)
        lookup = statistics.median(result["lookups"]) * 1e6
        print(f"| {example.stem} | {result['cold'] * 1e3:.1f} | {result['warm'] * 1e3:.1f} | {lookup:.1f} |")


if __name__ == "__main__":
    main()
