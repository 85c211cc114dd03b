"""``plan_shared_memory``: a byte offset for every ``alloc_shared`` and the program's ``shared_bytes``.

Before: a verified program whose allocations have no offsets. After: the same program with each allocation
placed at a multiple of ``MIN_SHARED_ALIGNMENT`` (and of its element size), in program order, one after
another, and ``shared_bytes`` the end of the last; the plan keeps the rules of ``tilevm.ir.verify_shared``.
A program whose allocations are all planned already, or that has none, is returned unchanged.

>>> from tilevm.ir import parse
>>> program = plan_shared_memory(parse('''kernel k() num_threads=32 {
...   %a: shared<float16, [3, 5]> = alloc_shared(dtype=float16, shape=[3, 5])
...   %b: shared<int4, [7]> = alloc_shared(dtype=int4, shape=[7])
... }'''))
>>> [instruction.offset for instruction in program.body], program.shared_bytes
([0, 32], 36)
"""

from __future__ import annotations

import dataclasses

from tilevm.ir import AllocShared, Instruction, Program
from tilevm.ir.expr import Var
from tilevm.ir.rewrite import map_instructions, walk_instructions
from tilevm.ir.verify_shared import MIN_SHARED_ALIGNMENT

__all__ = ["plan_shared_memory"]


def plan_shared_memory(program: Program) -> Program:
    """``program`` with every shared allocation placed (see the module)."""
    allocations = [item for item in walk_instructions(program.body) if isinstance(item, AllocShared)]
    planned = program.shared_bytes is not None and all(item.offset is not None for item in allocations)
    if planned or not allocations:
        return program  # a program without allocations needs no shared memory: it keeps no plan
    offsets: dict[Var, int] = {}  # by output variable, which rewriting keeps
    end = 0
    for allocation in allocations:
        alignment = max(MIN_SHARED_ALIGNMENT, allocation.dtype.nbits // 8)
        offsets[allocation.output] = -(-end // alignment) * alignment
        end = offsets[allocation.output] + allocation.footprint_bytes()

    def place(instruction: Instruction) -> Instruction:
        if isinstance(instruction, AllocShared):
            return dataclasses.replace(instruction, offset=offsets[instruction.output])
        return instruction

    return dataclasses.replace(map_instructions(program, place), shared_bytes=end)
