"""Every kernel that a test lowers becomes PTX for sm_80 and sm_90 (and sm_90a, where the kernel has a dot
from shared memory, which there becomes ``wgmma``), which ptxas must assemble.

The conftest hands each test's Tile IR programs (after the last Tile IR pass) to ``assemble_for_targets``
when the test ends: each is lowered again for each target (what the GPU would run there: the lowering
depends on the target, e.g. float8 tensor cores), compiled by ``tilevm.codegen`` and assembled, all of one
test's kernels in one ptxas run per target. A program seen before in this process is skipped, so the cost
is one compilation per distinct kernel. A program whose lowering fails was the test's business (a test of
an error); ``TILEVM_SKIP_PTX_CHECK=1`` turns the check off (a quick local run).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

from codegen_support import assemble_together

from tilevm.codegen import compile_to_ptx
from tilevm.errors import CompilationError
from tilevm.ir import Program, SharedDot, print_program
from tilevm.ir.rewrite import walk_instructions
from tilevm.passes import CompileOptions, lower_to_threads, run_pipeline

__all__ = ["SKIP_VARIABLE", "TARGETS", "assemble_for_targets"]

TARGETS = ("sm_80", "sm_90")
#: and for sm_90a, the programs with a dot from shared memory (the other programs' code is sm_90's)
WARPGROUP_TARGET = "sm_90a"
SKIP_VARIABLE = "TILEVM_SKIP_PTX_CHECK"
_seen: set[bytes] = set()


def assemble_for_targets(programs: list[Program]) -> None:
    """Lower, compile and assemble each new program of ``programs`` for every target (AssertionError with
    ptxas's or the code generator's message when one fails)."""
    if os.environ.get(SKIP_VARIABLE):
        return
    warpgroups = [program for program in programs if _has_shared_dot(program)]
    for target, checked in (*((target, programs) for target in TARGETS), (WARPGROUP_TARGET, warpgroups)):
        ptx_by_name: dict[str, str] = {}
        for program in checked:
            key = hashlib.sha1(f"{target}\n{print_program(program)}".encode()).digest()
            if key in _seen:
                continue
            _seen.add(key)
            lowered = _lowered(program, target)
            if lowered is not None:
                ptx_by_name[f"{program.name}#{len(ptx_by_name)}"] = compile_to_ptx(lowered, target).ptx
        failing = assemble_together(ptx_by_name, target)
        assert not failing, f"the PTX of {failing} does not assemble for {target}"


def _has_shared_dot(program: Program) -> bool:
    return any(isinstance(instruction, SharedDot) for instruction in walk_instructions(program.body))


def _lowered(program: Program, target: str) -> Program | None:
    options = CompileOptions(target=target, verify_passes=True)
    try:
        return run_pipeline(dataclasses.replace(program, target=target), options, (lower_to_threads,))
    except CompilationError:
        return None
