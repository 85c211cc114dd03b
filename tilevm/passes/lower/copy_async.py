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
so its inside part is always a prefix. Sub-byte elements need the tensor's size along the chunk's dim to
end on a byte, so that the edge is a whole number of bytes.

**Otherwise** (chunks under 4 bytes, or a sub-byte edge inside a byte), each chunk is a predicated load
from global memory and a store to shared memory, made synchronously: the copy then completes early, which
no race-free program can tell. These chunks never straddle the tensor's edge (``width`` divides what is
known of the size); sub-byte elements then need whole bytes per chunk, else lowering raises.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tilevm.dtypes import int32
from tilevm.ir import CopyAsync, CopyAsyncCommit, CopyAsyncWait, If, Program
from tilevm.ir.expr import BinaryExpr, Const, Expr
from tilevm.ir.thread import (
    CopyAsyncCommitGroup,
    CopyAsyncGroup,
    CopyAsyncWaitGroup,
    Load,
    PointerAdd,
    Select,
    Store,
)
from tilevm.layout import SharedLayout
from tilevm.passes.index_divisibility import DIVISIBILITY_CAP, power_of_two_part
from tilevm.passes.lower.lowering import GlobalTensor, Handler, Lowering, LoweringError, SharedTile
from tilevm.passes.lower.shared_access import MAX_ACCESS_BITS, offset_table
from tilevm.passes.lower.shared_address import (
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
    threads; ``asynchronous`` when each is one ``cp.async``."""

    shape: tuple[int, ...]
    dim: int
    width: int
    num_threads: int
    asynchronous: bool

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
    is 1, else None; the global edge is the caller's (``_edge_ok``)."""
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
    bytes; None when no chunk of whole bytes fits."""
    if plan.asynchronous and (nbits >= 8 or size_known * nbits % 8 == 0):
        return plan
    width = plan.width
    while width > 1 and size_known % width:
        width //= 2
    if width * nbits % 8:
        return None
    return CopyPlan(plan.shape, plan.dim, width, plan.num_threads, False)


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
    for round_ in range(resolved.rounds):
        first = round_ * resolved.num_threads
        chunk = lowering.let("chunk", add(lowering.thread, Const(first, int32)))
        with lowering.collect() as body:
            _copy_chunk(lowering, instruction, tile, tensor, resolved, chunk)
        if first + resolved.num_threads <= resolved.num_chunks:
            for statement in body:
                lowering.emit(statement)
        else:
            inside = BinaryExpr("lt", chunk, Const(resolved.num_chunks, int32))
            lowering.emit(If(condition=inside, then_body=tuple(body)))


def _copy_chunk(
    lowering: Lowering,
    instruction: CopyAsync,
    tile: SharedTile,
    tensor: GlobalTensor,
    plan: CopyPlan,
    chunk: Expr,
) -> None:
    nbits = tile.dtype.nbits
    coordinates = []
    suffix = 1
    for dim in reversed(range(len(plan.shape))):
        extent = plan.chunk_shape[dim]
        above = chunk if suffix == 1 else BinaryExpr("floordiv", chunk, Const(suffix, int32))
        digit = BinaryExpr("mod", above, Const(extent, int32))
        coordinates.append(lowering.let(f"c{dim}", scale(digit, plan.width if dim == plan.dim else 1)))
        suffix *= extent
    coordinates.reverse()
    offset = swizzled(lowering, tile.layout, linear_offset(lowering, tile, tuple(coordinates)))
    destination = byte_pointer(tile, offset)
    indices = list(instruction.offsets)
    for axis, global_dim in enumerate(instruction.dims):
        indices[global_dim] = lowering.let("index", add(indices[global_dim], coordinates[axis]))
    address = add(*(scale_by(index, stride) for index, stride in zip(indices, tensor.strides)))
    source = PointerAdd(tensor.pointer, base_elements(nbits, lowering.let("address", address)))
    edge_dim = instruction.dims[plan.dim]
    inside = _inside(indices, tensor.shape, skip=edge_dim if plan.asynchronous else None)
    if plan.asynchronous:
        remaining = BinaryExpr("sub", tensor.shape[edge_dim], indices[edge_dim])
        count = BinaryExpr("max", BinaryExpr("min", remaining, Const(plan.width, int32)), Const(0, int32))
        size = base_elements(nbits, count)
        if inside is not None:
            size = Select(inside, size, Const(0, int32))
        cache = "global" if plan.width * nbits == MAX_ACCESS_BITS else "all"
        lowering.emit(
            CopyAsyncGroup(
                destination=destination,
                source=source,
                size=plan.width * nbits // 8,
                source_size=lowering.let("source_size", size),
                cache=cache,
            )
        )
        return
    value = lowering.define(Load, "copied", pointer=source, width=plan.width * nbits // 8, predicate=inside)
    lowering.emit(Store(pointer=destination, value=value))


def scale_by(index: Expr, stride: Expr) -> Expr:
    if isinstance(stride, Const):
        return scale(index, int(stride.value))
    return BinaryExpr("mul", index, stride)


def _inside(indices: list[Expr], shape: tuple[Expr, ...], skip: int | None) -> Expr | None:
    """Whether every index (but ``skip``'s) lies in ``[0, size)`` (``skip``'s only needs to be 0 or more)."""
    condition = None
    for dim, (index, size) in enumerate(zip(indices, shape)):
        tests = [BinaryExpr("ge", index, Const(0, int32))]
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
