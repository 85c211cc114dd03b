"""``plan_shared_memory``: a layout (swizzle included) and a byte offset for every ``alloc_shared``, and the
program's ``shared_bytes``.

Before: a verified program with register layouts, whose allocations have no offsets. After:

- every allocation without a layout gets the one ``plan_shared_swizzle`` chooses from the accesses that
  read and write it (row-major, or swizzled so that ``ldmatrix`` and 16-byte accesses are conflict-free);
  pinned layouts are kept. The layout goes into the allocation's type, and its slices and permuted views
  get the layouts they derive from it (``SliceShared.slice_layout``, ``permute_shared``);
- every allocation gets an offset: the lowest one, aligned to 16 bytes, to its element's size and to its
  swizzle's period (so that the offset commutes with the swizzle: ``tilevm.passes.lower.shared_address``),
  whose bytes no allocation live at the same time holds. Lifetimes are the verifier's
  (``tilevm.ir.verify_shared``): from ``alloc_shared`` to the ``free_shared`` of it in the same body, or
  to the end of that body. So memory is reused after a free and after a loop body or branch ends; an
  allocation that takes bytes an earlier one held starts with a ``sync``, so that no thread writes them
  while another may still read the earlier tile (in Tile IR the two are different memory: no race);
- ``shared_bytes`` is the end of the highest allocation.

A program whose allocations are all planned already, or that has none, is returned unchanged.

>>> from tilevm.ir import parse
>>> program = plan_shared_memory(parse('''kernel k() num_threads=32 {
...   %a: shared<float16, [3, 5]> = alloc_shared(dtype=float16, shape=[3, 5])
...   free_shared(tensor=%a)
...   %b: shared<int4, [7]> = alloc_shared(dtype=int4, shape=[7])
...   %c: shared<float32, [2]> = alloc_shared(dtype=float32, shape=[2])
... }'''))
>>> [instruction.offset for instruction in program.body if hasattr(instruction, "offset")]  # b reuses a's
[0, 0, 16]
>>> [instruction.opname for instruction in program.body]  # b and c take bytes a held
['alloc_shared', 'free_shared', 'sync', 'alloc_shared', 'sync', 'alloc_shared']
>>> program.shared_bytes  # a's 30 bytes
30
"""

from __future__ import annotations

import dataclasses
import itertools

from tilevm.ir import AllocShared, Instruction, PermuteShared, Program, SliceShared, Sync
from tilevm.ir.expr import Var
from tilevm.ir.rewrite import Rewriter, walk_instructions
from tilevm.ir.verify_shared import MIN_SHARED_ALIGNMENT, allocation_lifetimes
from tilevm.layout import SharedLayout
from tilevm.layout.shared import permute_shared
from tilevm.passes.plan_shared_swizzle import choose_layouts

__all__ = ["plan_shared_memory"]


def plan_shared_memory(program: Program) -> Program:
    """``program`` with every shared allocation laid out and placed (see the module)."""
    allocations = [item for item in walk_instructions(program.body) if isinstance(item, AllocShared)]
    planned = program.shared_bytes is not None and all(item.offset is not None for item in allocations)
    if planned or not allocations:
        return program  # a program without allocations needs no shared memory: it keeps no plan
    laid_out = _with_layouts(program, choose_layouts(program))
    offsets, reusing, end = _offsets(laid_out)
    placed = Rewriter(instruction=lambda instruction: _place(instruction, offsets, reusing)).program(laid_out)
    return dataclasses.replace(placed, shared_bytes=end)


def _alignment(allocation: AllocShared) -> int:
    """Bytes an allocation's offset is a multiple of: 16, its element's size, its swizzle's period."""
    layout = allocation.placement()
    period = 0 if layout.swizzling is None else layout.swizzling.period * allocation.dtype.nbits // 8
    return max(MIN_SHARED_ALIGNMENT, allocation.dtype.nbits // 8, period)


def _offsets(program: Program) -> tuple[dict[int, int], set[int], int]:
    """The offset of each allocation (by output uid), first fit in program order; the allocations that take
    bytes an earlier allocation held; and the end of all."""
    placed: list[tuple[int, int, int, int]] = []  # (start, end) in program positions, then bytes
    offsets: dict[int, int] = {}
    reusing: set[int] = set()
    for lifetime in sorted(
        allocation_lifetimes(program.body, itertools.count()), key=lambda item: item.start
    ):
        allocation = lifetime.allocation
        size, alignment = allocation.footprint_bytes(), _alignment(allocation)
        live = [(low, high) for start, end, low, high in placed if start < lifetime.start < end]
        offset = 0
        while clash := [high for low, high in live if low < offset + size and offset < high]:
            offset = -(-max(clash) // alignment) * alignment
        offsets[allocation.output.uid] = offset
        if any(low < offset + size and offset < high for *_, low, high in placed):
            reusing.add(allocation.output.uid)
        placed.append((lifetime.start, lifetime.end, offset, offset + size))
    return offsets, reusing, max((high for *_, high in placed), default=0)


def _place(
    instruction: Instruction, offsets: dict[int, int], reusing: set[int]
) -> Instruction | tuple[Instruction, ...]:
    if not isinstance(instruction, AllocShared):
        return instruction
    placed = dataclasses.replace(instruction, offset=offsets[instruction.output.uid])
    if instruction.output.uid in reusing:
        return Sync(loc=instruction.loc), placed
    return placed


def _with_layouts(program: Program, layouts: dict[int, SharedLayout]) -> Program:
    """``program`` with the allocations of ``layouts`` (by output uid) typed with them, and their views
    typed with the layouts they derive."""
    rewriter = Rewriter()

    def retype(instruction: Instruction) -> Instruction:
        layout = _layout_of(instruction, layouts)
        output = getattr(instruction, "output", None)
        if layout is None or not isinstance(output, Var) or output.type.layout == layout:
            return instruction
        renewed = Var(output.name, output.type.with_layout(layout))
        rewriter.replacements[output.uid] = renewed
        return dataclasses.replace(instruction, output=renewed)

    rewriter.instruction_function = retype
    return rewriter.program(program)


def _layout_of(instruction: Instruction, layouts: dict[int, SharedLayout]) -> SharedLayout | None:
    """The layout an allocation or view gets, or None when it keeps its type."""
    if isinstance(instruction, AllocShared):
        return layouts.get(instruction.output.uid)
    if isinstance(instruction, SliceShared | PermuteShared):
        parent = instruction.tensor.type.layout
        if parent is None:
            return None
        if isinstance(instruction, SliceShared):
            return instruction.slice_layout(parent)
        return permute_shared(parent, instruction.dims)
    return None
