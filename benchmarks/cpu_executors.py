"""The two CPU executors side by side on every example, and the size of each example's Thread IR.

For each example: the wall time of its ``main()`` (the launch and its checks; compilation is done by a first,
untimed call) on the block-level reference executor and on the SIMT interpreter of the lowered Thread IR
(median of ``REPEATS``), and the number of Thread IR instructions in the body of its innermost loop (what
one iteration of the main loop costs each thread), by kind.

    python benchmarks/cpu_executors.py
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import pathlib
import runpy
import statistics
import time

from tilevm.ir import For, While
from tilevm.ir.rewrite import bodies
from tilevm.runtime import jit

EXAMPLES = sorted((pathlib.Path(__file__).parent.parent / "examples").glob("*.py"))
REPEATS = 3


def innermost_loop_body(body: tuple) -> tuple | None:
    """The body of the deepest loop in ``body`` (the first one found at that depth), or None."""
    best: tuple[int, tuple | None] = (0, None)

    def visit(statements: tuple, depth: int) -> None:
        nonlocal best
        for statement in statements:
            inner_depth = depth + isinstance(statement, For | While)
            if isinstance(statement, For | While) and inner_depth > best[0]:
                best = (inner_depth, statement.body)
            for nested in bodies(statement):
                visit(nested, inner_depth)

    visit(body, 0)
    return best[1]


def count_instructions(body: tuple) -> collections.Counter:
    """Instructions by opname in ``body`` and the bodies it nests (a branch counts once, as if taken)."""
    counts: collections.Counter = collections.Counter()
    for statement in body:
        counts[statement.opname] += 1
        for nested in bodies(statement):
            counts.update(count_instructions(nested))
    return counts


def measure(path: pathlib.Path) -> dict:
    namespace = runpy.run_path(str(path), run_name="example")
    kernels = [value for value in namespace.values() if isinstance(value, jit.Kernel)]
    times = {}
    for executor in jit.CPU_EXECUTORS:
        os.environ[jit.CPU_EXECUTOR_VARIABLE] = executor
        with contextlib.redirect_stdout(io.StringIO()):  # each run prints that it matches torch
            namespace["main"]()  # compiles (and lowers) once
            samples = []
            for _ in range(REPEATS):
                start = time.perf_counter()
                namespace["main"]()
                samples.append(time.perf_counter() - start)
        times[executor] = statistics.median(samples)
    specialization = next(iter(kernels[0].programs.values()))
    thread_program = specialization.thread_program()
    loop = innermost_loop_body(thread_program.body)
    return {
        "times": times,
        "total": sum(count_instructions(thread_program.body).values()),
        "loop": count_instructions(loop) if loop is not None else None,
    }


def main() -> None:
    print(
        "| example | reference (ms) | SIMT interpreter (ms) | ratio | Thread IR instructions "
        "| per inner-loop iteration |"
    )
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for path in EXAMPLES:
        result = measure(path)
        reference, simt = result["times"]["reference"], result["times"]["simt"]
        loop = result["loop"]
        per_iteration = (
            "no loop"
            if loop is None
            else f"{sum(loop.values())}: "
            + ", ".join(f"{name} {count}" for name, count in loop.most_common())
        )
        print(
            f"| {path.stem} | {reference * 1e3:.1f} | {simt * 1e3:.1f} | {simt / reference:.2f} "
            f"| {result['total']} | {per_iteration} |"
        )


if __name__ == "__main__":
    main()
