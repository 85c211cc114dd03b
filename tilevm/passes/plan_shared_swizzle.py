"""The swizzle of each shared allocation, chosen from the accesses that read and write it.

Every access of the allocation, through its slices and permuted views, is replayed on each candidate layout
exactly as lowering will make it (``tilevm.passes.lower.shared_access`` and ``copy_async``: ``ldmatrix``
rows, vectors of the register layouts of ``load_shared`` and ``store_shared``, the chunks of ``copy_async``),
and every warp request of 4, 8 or 16 bytes per lane is counted with the bank model
(``tilevm.layout.swizzle.bank_conflicts``). The candidates are the row-major layout, then each swizzle
that keeps 16-byte units whole (fewest bits first, then smallest shift: ``tilevm.layout.shared``); the
first with the fewest conflicts in ``ldmatrix`` and 16-byte requests, then the fewest in all, wins. So an
allocation that no such request touches stays row-major, and one that has them gets a conflict-free
swizzle whenever one exists. An allocation that a dot from shared memory reads gets the tensor cores'
canonical swizzle (``tilevm.layout.warpgroup``) where that makes every view the dot reads an operand they
can read, whatever the other accesses cost.

A runtime base of a slice is taken as 0 when counting: planning puts each swizzled allocation at a multiple
of its swizzle's period, and slices along the outer dims of a tile (a pipeline's stages) move by multiples
of it too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from tilevm.dtypes import int32
from tilevm.ir import (
    AllocShared,
    CopyAsync,
    GlobalView,
    Instruction,
    LoadShared,
    PermuteShared,
    Program,
    SharedDot,
    SliceShared,
    StoreShared,
)
from tilevm.ir.expr import Const, Expr, Var
from tilevm.ir.rewrite import walk_instructions
from tilevm.layout import RegisterLayout, SharedLayout
from tilevm.layout.shared import permute_shared, swizzle_candidates
from tilevm.layout.swizzle import extra_wavefronts
from tilevm.layout.warpgroup import canonical_placement, operand_form
from tilevm.passes.index_analysis import IndexAnalysis, analyze_indices
from tilevm.passes.index_divisibility import power_of_two_part
from tilevm.passes.lower.copy_async import (
    CopyPlan,
    copy_plan,
    pointer_divisibility,
    resolve_copy,
    source_alignment,
)
from tilevm.passes.lower.shared_access import (
    WARP_SIZE,
    LdmatrixPlan,
    lane_ldmatrix_rows,
    lane_vectors,
    ldmatrix_plan,
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


class _Replay:
    """One access replayed on the candidates of its allocation.

    The candidates differ only in their swizzle, which acts last, on an element's linear offset
    (``tilevm.layout.shared``), and which slices and permutes keep: so the view's linear layout and runtime
    base are found once, each plan's requests once, as linear offsets, and a candidate only swizzles them.
    """

    def __init__(self, context: _Context, access: _Access, plain: SharedLayout) -> None:
        layout, base = access.view.layout(plain)
        self.instruction = access.instruction
        self.nbits = access.view.allocation.dtype.nbits
        self.linear = dataclasses.replace(layout, swizzling=None)
        self.base_divisibility = context.analysis.of(base)
        self.context = context
        #: for a copy: what divides a chunk start's global offset along each tile dim, and the global shape
        self.source: tuple[int | None, ...] = ()
        self.global_shape: tuple[Expr, ...] = ()
        if isinstance(self.instruction, CopyAsync):
            program, analysis = context.program, context.analysis
            view = context.global_views[self.instruction.source]
            pointer = pointer_divisibility(program, view.pointer)
            self.source = source_alignment(analysis.of, pointer, self.nbits, self.instruction, view.strides)
            self.global_shape = view.shape
        #: plan -> the linear offsets of its requests, ``[request, lane, element]`` by (lanes, elements)
        self.tables: dict[object, dict[tuple[int, int], np.ndarray]] = {}

    def cost(self, placement: SharedLayout) -> tuple[int, int]:
        """(conflicts in strict requests, conflicts in all) when the allocation is ``placement``."""
        layout = dataclasses.replace(self.linear, swizzling=placement.swizzling)
        plan = self.plan(layout)
        if plan not in self.tables:
            self.tables[plan] = _stacked(_requests(self.instruction, plan, self.linear))
        strict = total = 0
        for offsets in self.tables[plan].values():
            access_bytes = offsets.shape[2] * self.nbits // 8
            if offsets.size == 0 or access_bytes not in (4, 8, 16):
                continue
            swizzled = offsets if layout.swizzling is None else layout.swizzling(offsets)
            # a lane's first element gives its address: lowering keeps each access contiguous and aligned
            conflicts = int(extra_wavefronts(swizzled[:, :, 0] * self.nbits // 8, access_bytes).sum())
            total += conflicts
            strict += conflicts if access_bytes == _STRICT_BYTES else 0
        return strict, total

    def plan(self, layout: SharedLayout):
        """How lowering moves the access's elements in a view of ``layout`` (what its requests depend on):
        a ``CopyPlan``, an ``LdmatrixPlan``, a vector width (``int``), or None when it makes no requests."""
        instruction, nbits, base_divisibility = self.instruction, self.nbits, self.base_divisibility
        if isinstance(instruction, CopyAsync):
            num_threads = self.context.program.num_threads
            plan = copy_plan(layout.shape, nbits, layout, base_divisibility, self.source, num_threads)
            size_known = self.context.analysis.of(self.global_shape[instruction.dims[plan.dim]])
            return resolve_copy(plan, nbits, size_known)
        register = _register_layout(instruction)
        if register is None:
            return None
        if isinstance(instruction, LoadShared):
            plan = ldmatrix_plan(register, layout, nbits, base_divisibility)
            if plan is not None:
                return plan
        return vector_width(register, layout, nbits, base_divisibility)


def choose_layouts(program: Program) -> dict[int, SharedLayout]:
    """The layout of each allocation without one (by its output's uid): the best candidate (module doc)."""
    views = {item.output: item for item in walk_instructions(program.body) if isinstance(item, GlobalView)}
    context = _Context(program, analyze_indices(program), views)
    chosen = {}
    accesses, operands = _accesses(program)
    for allocation, found in accesses.items():
        if allocation.output.type.layout is not None:
            continue
        candidates = _layouts(allocation)
        canonical = _warpgroup_placement(allocation, operands.get(allocation, []))
        if canonical is not None:  # the tensor cores read it: their layout, whatever the other accesses cost
            chosen[allocation.output.uid] = canonical
            continue
        replays = [_Replay(context, access, candidates[0]) for access in found]
        best, best_cost = None, None
        for candidate in candidates:
            cost = _total_cost(replays, candidate, best_cost)
            if cost is not None and (best_cost is None or cost < best_cost):
                best, best_cost = candidate, cost
            if cost == (0, 0):  # nothing is better: stop at the first
                break
        chosen[allocation.output.uid] = best
    return chosen


def _total_cost(
    replays: list[_Replay], placement: SharedLayout, bound: tuple[int, int] | None
) -> tuple[int, int] | None:
    """The summed cost of every access with ``placement``, or None once it cannot beat ``bound`` (costs only
    grow: the rest of the accesses need not be replayed)."""
    strict = total = 0
    for replay in replays:
        more_strict, more = replay.cost(placement)
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


def _warpgroup_placement(allocation: AllocShared, operands: list[tuple[_View, int]]) -> SharedLayout | None:
    """The canonical placement (``tilevm.layout.warpgroup``) that makes every view of ``allocation`` read
    by a dot from shared memory (with its values of k along the dim given) an operand the tensor cores
    read, or None when there are none or no placement does (the lowering reads those through registers)."""
    if not operands:
        return None
    placement = canonical_placement(allocation.placement(), allocation.dtype.nbits)
    if placement is None:
        return None
    for view, k_dim in operands:
        layout, _ = view.layout(placement)
        if operand_form(layout, k_dim, allocation.dtype.nbits) is None:
            return None
    return placement


def _accesses(
    program: Program,
) -> tuple[dict[AllocShared, list[_Access]], dict[AllocShared, list[tuple[_View, int]]]]:
    """Per allocation, the accesses made through its views, and the views that dots from shared memory
    read (each with the dim of its values of k)."""
    views: dict[Var, _View] = {}
    accesses: dict[AllocShared, list[_Access]] = {}
    operands: dict[AllocShared, list[tuple[_View, int]]] = {}
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
        elif isinstance(instruction, SharedDot):
            shared = ((instruction.a, 1), (instruction.b, 0))[instruction.a_in_registers :]
            for operand, k_dim in shared:
                view = views[operand]
                operands.setdefault(view.allocation, []).append((view, k_dim))
    return accesses, operands


def _register_layout(instruction: Instruction) -> RegisterLayout | None:
    """The register layout of a ``load_shared``'s or ``store_shared``'s tile, or None when it has none."""
    value = instruction.output if isinstance(instruction, LoadShared) else instruction.value
    register = value.type.layout
    return register if isinstance(register, RegisterLayout) else None


def _stacked(requests: Iterator[np.ndarray]) -> dict[tuple[int, int], np.ndarray]:
    """Lane tables stacked by shape: ``[request, lane, element]`` for each (lanes, elements per lane)."""
    stacks: dict[tuple[int, int], list[np.ndarray]] = {}
    for rows in requests:
        stacks.setdefault(rows.shape, []).append(rows)
    return {shape: np.stack(rows).astype(np.int64) for shape, rows in stacks.items()}


def _requests(instruction: Instruction, plan: object, layout: SharedLayout) -> Iterator[np.ndarray]:
    """The lane tables of every warp request that lowering makes for ``instruction`` by ``plan``, in a
    view placed by ``layout``."""
    if plan is None:
        return
    if isinstance(plan, CopyPlan):
        for round_ in range(plan.rounds):
            for warp in range(-(-plan.num_threads // WARP_SIZE)):
                yield plan.lane_chunks(layout, warp, round_)
        return
    register = _register_layout(instruction)
    warps = -(-register.num_threads // WARP_SIZE)
    if isinstance(plan, LdmatrixPlan):
        for warp in range(warps):
            first = 0
            for count in plan.counts():
                yield lane_ldmatrix_rows(plan, layout, warp, first)
                first += count
        return
    store = isinstance(instruction, StoreShared)
    for warp in range(warps):
        for group in range(register.local_size // plan):
            yield lane_vectors(register, layout, plan, warp, group, store)
