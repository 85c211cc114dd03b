"""A thread's part of a global window: the address and the bounds check of each of its elements, as Thread IR
expressions, and the condition that picks one replica of a replicated layout.

The element at local ``i`` of a thread has, in global dim ``d``, the index ``offsets[d] + coordinate[k]``
when tile dim ``k`` runs along ``d`` (else ``offsets[d]``), where ``coordinate = thread part + local
part`` (``tilevm.passes.lower.coordinates``). So its address (in elements from the pointer) is the thread's
``base`` (computed once per access) plus ``sum(local[i, k] * strides[dims[k]])``, a constant times a
stride; an element is in bounds when every index lies in ``[0, size)``, as the reference executor's
``tilevm.runtime.reference.global_view`` says (the lower bound checked only where the index analysis does
not know the offset never to be negative: ``tilevm.passes.index_sign``).

When every element of a thread lies at a constant offset from its base (the strides its elements move
along are constants), whole-byte elements are addressed from the base pointer, bound once per access:
each offset becomes its load's immediate. A 32-bit
address per element, sign-extended to 64 bits, would cost a conversion and a 64-bit add for each (LLVM
cannot move a constant out of a sign extension of an add that may wrap).
"""

from __future__ import annotations

import dataclasses
import functools
from collections import Counter
from dataclasses import dataclass

from tilevm.dtypes import boolean, int32
from tilevm.ir.expr import BinaryExpr, CastExpr, Const, Expr
from tilevm.ir.thread import PointerAdd
from tilevm.layout import RegisterLayout
from tilevm.passes.fold_constants import fold_expression
from tilevm.passes.lower.coordinates import local_coordinates
from tilevm.passes.lower.lowering import GlobalTensor, Lowering

__all__ = ["ThreadWindow", "binary", "replica_condition", "thread_window"]

TRUE = Const(True, boolean)
#: the bytes of a thread's elements that one access moves at most: a pointer shared by more is worth holding
POINTER_BYTES = 16


def binary(op: str, lhs: Expr, rhs: Expr) -> Expr:
    """``lhs op rhs``, folded where the operands allow (``x + 0`` is ``x``, ``2 * 3`` is ``6``, ``0 * x``
    is ``0`` for int32, ``true and c`` is ``c``)."""
    if op == "and" and TRUE in (lhs, rhs):
        return rhs if lhs == TRUE else lhs
    zero = Const(0, int32)
    if op == "mul" and zero in (lhs, rhs):
        return zero  # index arithmetic: an element's offset along a dim it does not move in
    return fold_expression(BinaryExpr(op, lhs, rhs))


def as_int32(expression: Expr) -> Expr:
    """An integer scalar as int32, the type of Thread IR's index arithmetic."""
    if expression.type.dtype == int32:
        return expression
    return fold_expression(CastExpr(expression, int32))


@dataclass(frozen=True)
class ThreadWindow:
    """The window of ``tensor`` that a thread of ``layout`` accesses along ``dims``: ``indices`` (per global
    dim) and ``base`` (the address in elements) of the element whose local part is zero, and ``inside``,
    the bounds check of the global dims that no tile dim runs along."""

    tensor: GlobalTensor
    layout: RegisterLayout
    dims: tuple[int, ...]
    indices: tuple[Expr, ...]
    base: Expr
    inside: Expr
    #: per global dim, whether the index is known never to be negative (nor, then, any element's)
    nonnegative: tuple[bool, ...]

    def local_part(self, local: int, axis: int) -> int:
        return int(local_coordinates(self.layout)[local, axis])

    def offset(self, local: int) -> Expr:
        """The address of the thread's element at ``local`` from ``base``, in elements (a constant when the
        strides of the dims it moves along are)."""
        offset: Expr = Const(0, int32)
        for axis, dim in enumerate(self.dims):
            step = binary("mul", Const(self.local_part(local, axis), int32), self.tensor.strides[dim])
            offset = binary("add", offset, step)
        return offset

    def address(self, local: int) -> Expr:
        """The address (in elements from the pointer) of the thread's element at ``local``."""
        return binary("add", self.base, self.offset(local))

    def offset_parts(self, local: int) -> tuple[Expr, Expr]:
        """The offset of the element at ``local`` from ``base`` (elements) as the part along dims of runtime
        strides and the constant part along the others."""
        runtime: Expr = Const(0, int32)
        constant: Expr = Const(0, int32)
        for axis, dim in enumerate(self.dims):
            step = binary("mul", Const(self.local_part(local, axis), int32), self.tensor.strides[dim])
            if isinstance(step, Const):
                constant = binary("add", constant, step)
            else:
                runtime = binary("add", runtime, step)
        return runtime, constant

    @functools.cached_property
    def shared_rows(self) -> frozenset[Expr]:
        """The runtime parts of the offsets (``offset_parts``) that more than ``POINTER_BYTES`` of the
        thread's elements share: more than one access of 16 bytes goes through the pointer to such a row."""
        counts = Counter(self.offset_parts(local)[0] for local in range(self.layout.local_size))
        return frozenset(
            part for part, count in counts.items() if count * self.tensor.dtype.nbits > 8 * POINTER_BYTES
        )

    def byte_pointer(self, lowering: Lowering, local: int) -> Expr:
        """The pointer to the thread's element at ``local`` of a tensor of whole-byte elements: the pointer
        to its row (the base moved by the runtime part of its offset, bound once) moved by the constant
        part, when the row is shared (``shared_rows``); else its own address from the tensor's pointer (a
        pointer held for one access would only take registers)."""
        size = Const(self.tensor.dtype.nbits // 8, int32)
        runtime, constant = self.offset_parts(local)
        if runtime not in self.shared_rows:
            address = lowering.let("element", self.address(local))
            return PointerAdd(self.tensor.pointer, binary("mul", address, size))
        pointer = lowering.let_once("base", PointerAdd(self.tensor.pointer, binary("mul", self.base, size)))
        if runtime != Const(0, int32):
            pointer = lowering.let_once("row", PointerAdd(pointer, binary("mul", runtime, size)))
        offset = binary("mul", constant, size)
        return pointer if offset == Const(0, int32) else PointerAdd(pointer, offset)

    def in_bounds(self, local: int, count: int = 1, axis: int | None = None) -> Expr:
        """Whether the element at ``local`` lies in the tensor, and with it the ``count - 1`` elements that
        follow it along tile dim ``axis``."""
        condition = self.inside
        for tile_axis, dim in enumerate(self.dims):
            index = binary("add", self.indices[dim], Const(self.local_part(local, tile_axis), int32))
            last = binary("add", index, Const(count - 1, int32)) if tile_axis == axis else index
            if not self.nonnegative[dim]:
                condition = binary("and", condition, binary("ge", index, Const(0, int32)))
            condition = binary("and", condition, binary("lt", last, self.tensor.shape[dim]))
        return condition


def thread_window(
    lowering: Lowering,
    tensor: GlobalTensor,
    offsets: tuple[Expr, ...],
    dims: tuple[int, ...],
    layout: RegisterLayout,
) -> ThreadWindow:
    """The running thread's part of the window of ``tensor`` at ``offsets`` along ``dims`` (as the Tile IR
    instruction gives them) for a tile of ``layout``; its per-thread values are computed once, here."""
    tensor = dataclasses.replace(
        tensor,
        shape=tuple(as_int32(size) for size in tensor.shape),
        strides=tuple(as_int32(stride) for stride in tensor.strides),
    )
    coordinates = lowering.thread_coordinates(layout)
    axis_of = {dim: axis for axis, dim in enumerate(dims)}
    indices = []
    inside: Expr = TRUE
    # an offset known never to be negative needs no lower bound check, nor do the indices from it (a
    # thread's coordinates and its elements' are not negative either)
    nonnegative = tuple(lowering.indices.is_nonnegative(as_int32(offset)) for offset in offsets)
    for dim, offset in enumerate(offsets):
        offset = as_int32(offset)
        if dim in axis_of:
            indices.append(lowering.let("index", binary("add", offset, coordinates[axis_of[dim]])))
            continue
        indices.append(offset)
        if not nonnegative[dim]:
            inside = binary("and", inside, binary("ge", offset, Const(0, int32)))
        inside = binary("and", inside, binary("lt", offset, tensor.shape[dim]))
    base: Expr = Const(0, int32)
    for index, stride in zip(indices, tensor.strides):
        base = binary("add", base, binary("mul", index, stride))
    address, inside = lowering.let("address", base), lowering.let("inside", inside)
    return ThreadWindow(tensor, layout, dims, tuple(indices), address, inside, nonnegative)


def replica_condition(layout: RegisterLayout, thread: Expr) -> Expr:
    """Whether ``thread`` is the first replica of the data it holds (its replication digits are all 0):
    of the threads that hold the same elements, only that one writes them."""
    modes = layout.modes()
    sizes = [-entry if entry < 0 else modes.sizes[entry] for entry in modes.spatial]
    condition: Expr = TRUE
    divisor = 1
    for entry, size in reversed(list(zip(modes.spatial, sizes))):
        if entry < 0 and size > 1:
            digit = binary("mod", binary("floordiv", thread, Const(divisor, int32)), Const(size, int32))
            condition = binary("and", condition, binary("eq", digit, Const(0, int32)))
        divisor *= size
    return condition
