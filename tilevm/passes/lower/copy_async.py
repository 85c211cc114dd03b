"""Lowering of ``copy_async`` (global to shared, zeros outside the tensor), its commit and wait.

**Chunks.** The destination tile is cut into chunks of ``width`` consecutive elements along one dim (the
shared view's dim of stride 1, when the global view has stride 1 there too), and the block's threads take
chunk ``t``, ``t + num_threads``, ... in row-major chunk order, so that consecutive threads fill consecutive
bytes (the ``cp_async_16B_rows`` pattern of ``tilevm.layout.swizzle``). ``width`` is the most elements, at
most 16 bytes, that keep every chunk aligned on both sides (:func:`copy_plan`).

**cp.async.** A chunk of 4, 8 or 16 bytes is one ``cp_async`` (``.cg`` for 16 bytes): its ``source_size``
is the bytes of its elements inside the tensor, so the rest is zero-filled as the reference's copy says: 0
when the chunk lies outside another dim's bounds or below the tensor, ``(size - index) * nbits / 8`` at the
tensor's edge along the chunk's dim. A chunk starts at a multiple of ``width`` there (the offset is aligned),
so its inside part is always a prefix; where the size is known to be a multiple of ``width`` too, a chunk
is wholly inside or wholly outside, and its ``source_size`` a choice of the two (no clamp to compute).
Sub-byte elements need the tensor's size along the chunk's dim to end on a byte, so that the edge is a
whole number of bytes.

**Otherwise** (chunks under 4 bytes, or a sub-byte edge inside a byte), each chunk is a predicated load
from global memory and a store to shared memory, made synchronously: the copy then completes early, which
no race-free program can tell. These chunks never straddle the tensor's edge (``width`` divides what is
known of the size), except single bytes of sub-byte elements, whose bits past the edge are cleared after
the load. Sub-byte elements need the two sides to keep a byte's elements together (aligned to a byte),
else lowering raises.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tilevm.dtypes import DType, int32, uint8
from tilevm.ir import CopyAsync, CopyAsyncCommit, CopyAsyncWait, If, Program
from tilevm.ir.expr import BinaryExpr, CastExpr, Const, Expr
from tilevm.ir.thread import (
    Bitcast,
    CopyAsyncCommitGroup,
    CopyAsyncGroup,
    CopyAsyncWaitGroup,
    Load,
    PointerAdd,
    Select,
    Store,
)
from tilevm.layout import LayoutError, RegisterLayout, SharedLayout, local, spatial
from tilevm.passes.index_divisibility import DIVISIBILITY_CAP, power_of_two_part
from tilevm.passes.lower.coordinates import local_coordinates
from tilevm.passes.lower.lowering import GlobalTensor, Handler, Lowering, LoweringError, SharedTile
from tilevm.passes.lower.shared_access import MAX_ACCESS_BITS, offset_table
from tilevm.passes.lower.shared_address import (
    SwizzledOffsets,
    add,
    base_elements,
    byte_pointer,
    check_addressable,
    divisibility,
    element_divisibility,
    linear_offset,
    scale,
    swizzled,
)

__all__ = [
    "CopyPlan",
    "HANDLERS",
    "copy_plan",
    "pointer_divisibility",
    "resolve_copy",
    "source_alignment",
]


@dataclass(frozen=True)
class CopyPlan:
    """Chunks of ``width`` elements along tile dim ``dim`` of a tile of ``shape``, dealt to ``num_threads``
    threads; ``asynchronous`` when each is one ``cp.async``; ``masked`` when a chunk (one byte of sub-byte
    elements) may hold elements past the tensor's edge, whose bits are then cleared."""

    shape: tuple[int, ...]
    dim: int
    width: int
    num_threads: int
    asynchronous: bool
    masked: bool = False

    @property
    def chunk_shape(self) -> tuple[int, ...]:
        return tuple(size // self.width if d == self.dim else size for d, size in enumerate(self.shape))

    @property
    def num_chunks(self) -> int:
        return math.prod(self.chunk_shape)

    @property
    def rounds(self) -> int:
        return -(-self.num_chunks // self.num_threads)

    def chunk_origins(self, chunks: np.ndarray) -> np.ndarray:
        """``[len(chunks), rank]``: the tile coordinate of the first element of each chunk index."""
        origins = np.stack(np.unravel_index(chunks, self.chunk_shape), axis=-1).astype(np.int64)
        origins[:, self.dim] *= self.width
        return origins

    def lane_chunks(self, shared: SharedLayout, warp: int, round_: int) -> np.ndarray:
        """``[lanes, width]``: the element offsets each lane of ``warp`` writes in round ``round_``."""
        chunks = round_ * self.num_threads + warp * 32 + np.arange(32)
        chunks = chunks[chunks < self.num_chunks]
        cells = self.chunk_origins(chunks)[:, None, :] + np.multiply.outer(
            np.arange(self.width), np.eye(len(self.shape), dtype=np.int64)[self.dim]
        )
        return offset_table(shared)[tuple(np.moveaxis(cells, -1, 0))]


def copy_plan(
    shape: tuple[int, ...],
    nbits: int,
    shared: SharedLayout,
    shared_base: int,
    source: tuple[int | None, ...],
    num_threads: int,
) -> CopyPlan:
    """The chunks of a copy into a tile of ``shape`` placed by ``shared`` (whose runtime base
    ``shared_base`` divides, in elements). ``source[d]`` is, for tile dim ``d``, a power of two dividing
    every global element offset of a chunk's start when chunks run along ``d`` and the global stride there
    is 1, else None. ``resolve_copy`` then accounts for the tensor's edge."""
    dims = [d for d in reversed(range(len(shape))) if shared.strides[d] == 1 and source[d] is not None]
    if not dims or nbits != power_of_two_part(nbits):
        return CopyPlan(shape, len(shape) - 1, 1, num_threads, False)
    dim = dims[0]
    others = [power_of_two_part(s) for d, s in enumerate(shared.strides) if d != dim and shape[d] > 1]
    kept = DIVISIBILITY_CAP if shared.swizzling is None else 1 << shared.swizzling.base
    limit = min([shared_base, power_of_two_part(shared.origin), kept, source[dim], *others])
    width = 1
    while width * 2 * nbits <= MAX_ACCESS_BITS and width * 2 <= limit and shape[dim] % (width * 2) == 0:
        width *= 2
    return CopyPlan(shape, dim, width, num_threads, width * nbits // 8 in (4, 8, 16))


def source_alignment(
    divisibility: Callable[[Expr], int],
    pointer_bytes: int,
    nbits: int,
    instruction: CopyAsync,
    strides: tuple[Expr, ...],
) -> tuple[int | None, ...]:
    """Per tile dim, what divides a chunk start's global element offset when chunks run along it (None
    where the global stride is not 1): the pointer's alignment (``pointer_bytes``), every offset times its
    stride, and the strides of the other tile dims; ``divisibility`` knows the program's scalars."""
    common = min(DIVISIBILITY_CAP, max(1, pointer_bytes * 8 // nbits))
    for offset, stride in zip(instruction.offsets, strides):
        common = min(common, divisibility(offset) * divisibility(stride))
    alignments: list[int | None] = []
    for axis, global_dim in enumerate(instruction.dims):
        if strides[global_dim] != Const(1, int32):
            alignments.append(None)
            continue
        steps = [divisibility(strides[g]) for a, g in enumerate(instruction.dims) if a != axis]
        alignments.append(min([common, *steps]))
    return tuple(alignments)


def pointer_divisibility(program: Program, pointer: Expr) -> int:
    """The byte alignment the launch promises for ``pointer`` (a kernel parameter), else 1."""
    for param in program.params:
        if param.variable is pointer:
            return power_of_two_part(param.divisibility)
    return 1


def resolve_copy(plan: CopyPlan, nbits: int, size_known: int) -> CopyPlan | None:
    """``plan`` as lowering runs it, given what divides the tensor's size along the chunks' dim: cp.async
    when its edge falls on a byte, else loads and stores of chunks that never straddle the edge, of whole
    bytes; for sub-byte elements whose edge may fall inside a byte, chunks of one byte whose bits past
    the edge are cleared (``masked``); None when the sides do not keep a byte's elements together."""
    if plan.asynchronous and (nbits >= 8 or size_known * nbits % 8 == 0):
        return plan
    width = plan.width
    while width > 1 and size_known % width:
        width //= 2
    if width * nbits % 8 == 0:
        return CopyPlan(plan.shape, plan.dim, width, plan.num_threads, False)
    if plan.width * nbits >= 8:
        return CopyPlan(plan.shape, plan.dim, 8 // nbits, plan.num_threads, False, masked=True)
    return None


def _copy_async(lowering: Lowering, instruction: CopyAsync) -> None:
    tile = lowering.shared_tile(instruction.destination)
    check_addressable(lowering, tile, "copy_async")
    tensor = lowering.global_tensor(instruction.source)
    nbits = tile.dtype.nbits
    source = source_alignment(
        lambda expression: divisibility(lowering, expression),
        pointer_divisibility(lowering.program, tensor.pointer),
        nbits,
        instruction,
        tensor.strides,
    )
    base = element_divisibility(lowering, tile)
    plan = copy_plan(tile.layout.shape, nbits, tile.layout, base, source, lowering.program.num_threads)
    size_known = divisibility(lowering, tensor.shape[instruction.dims[plan.dim]])
    resolved = resolve_copy(plan, nbits, size_known)
    if resolved is None:
        raise LoweringError(
            f"copy_async of {nbits}-bit elements: lowering copies whole bytes, and neither the alignment "
            f"of the two sides nor the tensor's size along the copied rows is known to keep "
            f"{8 // nbits} elements together",
            lowering.location,
        )
    layout = _chunk_layout(resolved)
    if layout is not None:  # the chunks' coordinates: hoisted thread parts plus constants per round
        thread_part = lowering.thread_coordinates(layout)
        # one swizzle serves every round whose constant offset is a multiple of the swizzle's period from
        # another's: the rounds' shared addresses are then one register and immediates
        start = linear_offset(lowering, tile, thread_part, "row")
        offsets = SwizzledOffsets(lowering, tile.layout, start)
        # in global memory too, a round is the thread's first chunk moved by its constant coordinates:
        # one address a copy, and a product of constants and strides a round (whole bytes from 8 bits on)
        origin = _source(lowering, instruction, tensor, nbits, thread_part) if nbits >= 8 else None
        for round_ in range(resolved.rounds):
            local_part = local_coordinates(layout)[round_ * resolved.width]
            coordinates = tuple(add(c, Const(int(k), int32)) for c, k in zip(thread_part, local_part))
            constant = sum(int(k) * stride for k, stride in zip(local_part, tile.layout.strides))
            if origin is None:
                pointer = _source(lowering, instruction, tensor, nbits, coordinates)
            else:
                moved = _moved(instruction, tensor, [int(k) for k in local_part])
                pointer = origin
                if not (isinstance(moved, Const) and moved.value == 0):
                    pointer = PointerAdd(origin, base_elements(nbits, moved))
            offset = offsets(constant)
            chunk_at = (coordinates, offset, pointer)
            _copy_chunk(lowering, instruction, tile, tensor, resolved, chunk_at, size_known)
        return
    for round_ in range(resolved.rounds):
        first = round_ * resolved.num_threads
        chunk = lowering.let("chunk", add(lowering.thread, Const(first, int32)))
        with lowering.collect() as body:
            coordinates = _unraveled(lowering, resolved, chunk)
            offset = swizzled(lowering, tile.layout, linear_offset(lowering, tile, coordinates))
            pointer = _source(lowering, instruction, tensor, nbits, coordinates)
            chunk_at = (coordinates, offset, pointer)
            _copy_chunk(lowering, instruction, tile, tensor, resolved, chunk_at, size_known)
        if first + resolved.num_threads <= resolved.num_chunks:
            for statement in body:
                lowering.emit(statement)
        else:
            inside = BinaryExpr("lt", chunk, Const(resolved.num_chunks, int32))
            lowering.emit(If(condition=inside, then_body=tuple(body)))


def _chunk_layout(plan: CopyPlan) -> RegisterLayout | None:
    """The chunks as a register layout (thread ``t``'s round ``r`` chunk is chunk ``r * num_threads + t``,
    its ``width`` elements consecutive locals), when every thread has as many and the row-major chunk
    order splits into the layout's digits; None otherwise."""
    if plan.num_chunks % plan.num_threads:
        return None
    try:
        grid = (local(plan.num_chunks // plan.num_threads) * spatial(plan.num_threads)).reshape(
            *plan.chunk_shape
        )
    except LayoutError:
        return None
    return grid * local(*(plan.width if d == plan.dim else 1 for d in range(len(plan.shape))))


def _unraveled(lowering: Lowering, plan: CopyPlan, chunk: Expr) -> tuple[Expr, ...]:
    """The tile coordinates of the first element of chunk number ``chunk`` (row-major chunk order)."""
    coordinates = []
    suffix = 1
    for dim in reversed(range(len(plan.shape))):
        extent = plan.chunk_shape[dim]
        above = chunk if suffix == 1 else BinaryExpr("floordiv", chunk, Const(suffix, int32))
        digit = BinaryExpr("mod", above, Const(extent, int32))
        coordinates.append(lowering.let(f"c{dim}", scale(digit, plan.width if dim == plan.dim else 1)))
        suffix *= extent
    return tuple(reversed(coordinates))


def _moved(instruction: CopyAsync, tensor: GlobalTensor, coordinates: list[int]) -> Expr:
    """How many elements of ``tensor`` the constant tile ``coordinates`` lie past the tile's origin."""
    terms = [
        scale_by(Const(coordinate, int32), tensor.strides[global_dim])
        for coordinate, global_dim in zip(coordinates, instruction.dims)
        if coordinate
    ]
    return add(Const(0, int32), *terms)


def _source(
    lowering: Lowering,
    instruction: CopyAsync,
    tensor: GlobalTensor,
    nbits: int,
    coordinates: tuple[Expr, ...],
) -> Expr:
    """A global pointer to the element at tile ``coordinates`` of the copy's window."""
    indices = list(instruction.offsets)
    for axis, global_dim in enumerate(instruction.dims):
        indices[global_dim] = add(indices[global_dim], coordinates[axis])
    address = add(*(scale_by(index, stride) for index, stride in zip(indices, tensor.strides)))
    return PointerAdd(tensor.pointer, base_elements(nbits, lowering.let("address", address)))


def _copy_chunk(
    lowering: Lowering,
    instruction: CopyAsync,
    tile: SharedTile,
    tensor: GlobalTensor,
    plan: CopyPlan,
    chunk_at: tuple[tuple[Expr, ...], Expr, Expr],
    size_known: int,
) -> None:
    """Copy the chunk ``chunk_at = (coordinates, offset, source)``: its first element is at tile
    ``coordinates``, element offset ``offset`` of the shared memory (swizzled) and ``source`` in global
    memory (``size_known`` divides the tensor's size along the chunks' dim)."""
    coordinates, offset, source = chunk_at
    nbits = tile.dtype.nbits
    destination = byte_pointer(tile, offset)
    indices = list(instruction.offsets)
    for axis, global_dim in enumerate(instruction.dims):
        indices[global_dim] = lowering.let("index", add(indices[global_dim], coordinates[axis]))
    edge_dim = instruction.dims[plan.dim]
    # an index from an offset known never to be negative needs no lower bound (coordinates are not)
    below = [not lowering.indices.is_nonnegative(offset) for offset in instruction.offsets]
    inside = _inside(indices, tensor.shape, below, skip=edge_dim if plan.asynchronous else None)
    if plan.asynchronous:
        if size_known % plan.width == 0:  # the edge falls between chunks: each is wholly in or out
            edge = BinaryExpr("lt", indices[edge_dim], tensor.shape[edge_dim])
            whole = edge if inside is None else BinaryExpr("and", inside, edge)
            size = Select(whole, Const(plan.width * nbits // 8, int32), Const(0, int32))
        else:
            remaining = BinaryExpr("sub", tensor.shape[edge_dim], indices[edge_dim])
            count = BinaryExpr("max", BinaryExpr("min", remaining, Const(plan.width, int32)), Const(0, int32))
            size = base_elements(nbits, count)
            if inside is not None:
                size = Select(inside, size, Const(0, int32))
        cache = "global" if plan.width * nbits == MAX_ACCESS_BITS else "all"
        # a choice of all or nothing stays a select, which codegen makes cp.async's ignore-src predicate
        whole_or_none = isinstance(size, Select) and isinstance(size.if_true, Const)
        lowering.emit(
            CopyAsyncGroup(
                destination=destination,
                source=source,
                size=plan.width * nbits // 8,
                source_size=size if whole_or_none else lowering.let("source_size", size),
                cache=cache,
            )
        )
        return
    value = lowering.define(Load, "copied", pointer=source, width=plan.width * nbits // 8, predicate=inside)
    if plan.masked:
        value = _cleared_past(lowering, value, tile.dtype, tensor.shape[edge_dim], indices[edge_dim])
    lowering.emit(Store(pointer=destination, value=value))


def _cleared_past(lowering: Lowering, value: Expr, dtype: DType, size: Expr, index: Expr) -> Expr:
    """One byte of sub-byte elements from ``index`` on, its elements at ``size`` and after cleared (the
    reference copies zeros there): ``byte & ((1 << (inside * nbits)) - 1)``."""
    nbits = dtype.nbits
    inside = BinaryExpr(
        "max", BinaryExpr("min", BinaryExpr("sub", size, index), Const(8 // nbits, int32)), Const(0, int32)
    )
    mask = BinaryExpr("sub", BinaryExpr("shl", Const(1, int32), scale(inside, nbits)), Const(1, int32))
    byte = Bitcast(uint8, 1, value)
    cleared = BinaryExpr("and", byte, CastExpr(mask, uint8))
    return lowering.let("copied", Bitcast(dtype, 8 // nbits, cleared))


def scale_by(index: Expr, stride: Expr) -> Expr:
    if isinstance(stride, Const):
        return scale(index, int(stride.value))
    return BinaryExpr("mul", index, stride)


def _inside(indices: list[Expr], shape: tuple[Expr, ...], below: list[bool], skip: int | None) -> Expr | None:
    """Whether every index (but ``skip``'s) lies in ``[0, size)`` (``skip``'s only needs to be 0 or more);
    the lower bound is checked only where ``below`` says an index may be negative."""
    condition = None
    for dim, (index, size) in enumerate(zip(indices, shape)):
        tests = [BinaryExpr("ge", index, Const(0, int32))] if below[dim] else []
        if dim != skip:
            tests.append(BinaryExpr("lt", index, size))
        for test in tests:
            condition = test if condition is None else BinaryExpr("and", condition, test)
    return condition


def _commit(lowering: Lowering, instruction: CopyAsyncCommit) -> None:
    lowering.emit(CopyAsyncCommitGroup())


def _wait(lowering: Lowering, instruction: CopyAsyncWait) -> None:
    lowering.emit(CopyAsyncWaitGroup(pending=instruction.pending))


HANDLERS: dict[type, Handler] = {
    CopyAsync: _copy_async,
    CopyAsyncCommit: _commit,
    CopyAsyncWait: _wait,
}
