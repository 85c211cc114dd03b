"""The swizzle of each shared allocation, chosen from the accesses that read and write it.

Every access of the allocation, through its slices and permuted views, is replayed on each candidate layout
exactly as lowering will make it (``tilevm.passes.lower.shared_access`` and ``copy_async``: ``ldmatrix``
rows, vectors of the register layouts of ``load_shared`` and ``store_shared``, the chunks of ``copy_async``),
and every warp request of 4, 8 or 16 bytes per lane is counted with the bank model
(``tilevm.layout.swizzle.bank_conflicts``). The candidates are the row-major layout, then each swizzle
that keeps 16-byte units whole (fewest bits first, then smallest shift: ``tilevm.layout.shared``); the
first with the fewest conflicts in ``ldmatrix`` and 16-byte requests, then the fewest in all, wins. So an
allocation that no such request touches stays row-major, and one that has them gets a conflict-free
swizzle whenever one exists.

A runtime base of a slice is taken as 0 when counting: planning puts each swizzled allocation at a multiple
of its swizzle's period, and slices along the outer dims of a tile (a pipeline's stages) move by multiples
of it too.
"""

from __future__ import annotations

from dataclasses import dataclass

from tilevm.dtypes import int32
from tilevm.ir import (
    AllocShared,
    CopyAsync,
    GlobalView,
    Instruction,
    LoadShared,
    PermuteShared,
    Program,
    SliceShared,
    StoreShared,
)
from tilevm.ir.expr import Const, Expr, Var
from tilevm.ir.rewrite import walk_instructions
from tilevm.layout import RegisterLayout, SharedLayout
from tilevm.layout.shared import permute_shared, swizzle_candidates
from tilevm.passes.index_analysis import IndexAnalysis, analyze_indices
from tilevm.passes.index_divisibility import power_of_two_part
from tilevm.passes.lower.copy_async import copy_plan, pointer_divisibility, resolve_copy, source_alignment
from tilevm.passes.lower.shared_access import (
    WARP_SIZE,
    lane_ldmatrix_rows,
    lane_vectors,
    ldmatrix_plan,
    request_conflicts,
    vector_width,
)

__all__ = ["choose_layouts"]

# Bytes per lane of the requests that must be conflict-free (ldmatrix rows are 16 bytes too).
_STRICT_BYTES = 16


@dataclass(frozen=True)
class _View:
    """A shared value: its allocation and the slices and permutes from it, outermost first."""

    allocation: AllocShared
    chain: tuple[SliceShared | PermuteShared, ...]

    def layout(self, placement: SharedLayout) -> tuple[SharedLayout, Expr]:
        """The view's layout and runtime base (elements) when the allocation is placed by ``placement``."""
        layout, base = placement, Const(0, int32)
        for step in self.chain:
            if isinstance(step, SliceShared):
                layout, base = step.slice_layout(layout), step.base_offset(layout, base)
            else:
                layout = permute_shared(layout, step.dims)
        return layout, base


@dataclass(frozen=True)
class _Access:
    view: _View
    instruction: Instruction


@dataclass(frozen=True)
class _Context:
    """What every access's replay reads: the program, its index analysis, and its global views."""

    program: Program
    analysis: IndexAnalysis
    global_views: dict[Var, GlobalView]


def choose_layouts(program: Program) -> dict[int, SharedLayout]:
    """The layout of each allocation without one (by its output's uid): the best candidate (module doc)."""
    views = {item.output: item for item in walk_instructions(program.body) if isinstance(item, GlobalView)}
    context = _Context(program, analyze_indices(program), views)
    accesses = _accesses(program)
    chosen = {}
    for allocation, found in accesses.items():
        if allocation.output.type.layout is not None:
            continue
        best, best_cost = None, None
        for candidate in _layouts(allocation):
            cost = _total_cost(context, found, candidate, best_cost)
            if cost is not None and (best_cost is None or cost < best_cost):
                best, best_cost = candidate, cost
            if cost == (0, 0):  # nothing is better: stop at the first
                break
        chosen[allocation.output.uid] = best
    return chosen


def _total_cost(
    context: _Context, found: list[_Access], placement: SharedLayout, bound: tuple[int, int] | None
) -> tuple[int, int] | None:
    """The summed cost of every access with ``placement``, or None once it cannot beat ``bound`` (costs only
    grow: the rest of the accesses need not be replayed)."""
    strict = total = 0
    for access in found:
        more_strict, more = _cost(context, access, placement)
        strict, total = strict + more_strict, total + more
        if bound is not None and (strict, total) >= bound:
            return None
    return strict, total


def _layouts(allocation: AllocShared) -> list[SharedLayout]:
    plain = allocation.placement()
    nbits = allocation.dtype.nbits
    if nbits != power_of_two_part(nbits) or nbits > 128:
        return [plain]
    return swizzle_candidates(plain, nbits)


def _accesses(program: Program) -> dict[AllocShared, list[_Access]]:
    views: dict[Var, _View] = {}
    accesses: dict[AllocShared, list[_Access]] = {}
    for instruction in walk_instructions(program.body):
        if isinstance(instruction, AllocShared):
            views[instruction.output] = _View(instruction, ())
            accesses[instruction] = []
        elif isinstance(instruction, SliceShared | PermuteShared):
            parent = views[instruction.tensor]
            views[instruction.output] = _View(parent.allocation, (*parent.chain, instruction))
        elif isinstance(instruction, LoadShared | StoreShared | CopyAsync):
            operand = instruction.destination if isinstance(instruction, CopyAsync) else instruction.tensor
            view = views[operand]
            accesses[view.allocation].append(_Access(view, instruction))
    return accesses


def _cost(context: _Context, access: _Access, placement: SharedLayout) -> tuple[int, int]:
    """(conflicts in strict requests, conflicts in all) of ``access`` when its allocation is ``placement``."""
    layout, base = access.view.layout(placement)
    nbits = access.view.allocation.dtype.nbits
    base_divisibility = context.analysis.of(base)
    strict = total = 0
    for rows in _requests(context, access.instruction, layout, nbits, base_divisibility):
        access_bytes = rows.shape[1] * nbits // 8
        if rows.size == 0 or access_bytes not in (4, 8, 16):
            continue
        conflicts = request_conflicts(rows, nbits)
        total += conflicts
        strict += conflicts if access_bytes == _STRICT_BYTES else 0
    return strict, total


def _requests(context: _Context, instruction, layout: SharedLayout, nbits: int, base_divisibility: int):
    """The lane tables of every warp request that lowering makes for ``instruction``."""
    if isinstance(instruction, CopyAsync):
        yield from _copy_requests(context, instruction, layout, nbits, base_divisibility)
        return
    value = instruction.output if isinstance(instruction, LoadShared) else instruction.value
    register = value.type.layout
    if not isinstance(register, RegisterLayout):
        return
    warps = -(-register.num_threads // WARP_SIZE)
    plan = (
        ldmatrix_plan(register, layout, nbits, base_divisibility)
        if isinstance(instruction, LoadShared)
        else None
    )
    if plan is not None:
        for warp in range(warps):
            first = 0
            for count in plan.counts():
                yield lane_ldmatrix_rows(plan, layout, warp, first)
                first += count
        return
    width = vector_width(register, layout, nbits, base_divisibility)
    store = isinstance(instruction, StoreShared)
    for warp in range(warps):
        for group in range(register.local_size // width):
            yield lane_vectors(register, layout, width, warp, group, store)


def _copy_requests(context: _Context, instruction: CopyAsync, layout, nbits: int, base_divisibility: int):
    program, analysis = context.program, context.analysis
    view = context.global_views[instruction.source]
    source = source_alignment(
        analysis.of, pointer_divisibility(program, view.pointer), nbits, instruction, view.strides
    )
    plan = copy_plan(layout.shape, nbits, layout, base_divisibility, source, program.num_threads)
    size_known = analysis.of(view.shape[instruction.dims[plan.dim]])
    resolved = resolve_copy(plan, nbits, size_known)
    if resolved is None:
        return
    for round_ in range(resolved.rounds):
        for warp in range(-(-resolved.num_threads // WARP_SIZE)):
            yield resolved.lane_chunks(layout, warp, round_)
