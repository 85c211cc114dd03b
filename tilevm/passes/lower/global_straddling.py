"""Global accesses of elements that straddle bytes: 3, 5, 6 or 7 bits, packed densely (element ``i`` at bits
``[i * n, (i + 1) * n)`` of the tensor's bytes, as ``tilevm.dtypes.pack`` lays them out).

No access of 1 to 16 bytes holds a whole number of such elements, so they move as bytes, through the
tensor's pointer cast to ``uint8`` (``pointer_cast``):

- a load reads, for each element, the byte holding its first bit and, when the element runs past that
  byte, the next one, and shifts its ``n`` bits down (an element spans at most two bytes: ``7 + 7 < 16``);
  the codes are then packed, 8 elements in ``n`` bytes, and bitcast to the register of the dtype;
- a store writes whole bytes only: groups of 8 consecutive elements a thread (``n`` bytes) that start on a
  byte and lie wholly in or out of bounds, which the layout and the index analysis must show (offsets,
  sizes and strides that are multiples of 8); otherwise a store would share a byte with another thread's
  or another tensor's elements, and ``global_memory`` reports it at the user's line.
"""

from __future__ import annotations

from tilevm.dtypes import DType, uint8, uint32, uint64
from tilevm.ir.expr import CastExpr, Const, Expr
from tilevm.ir.thread import Bitcast, Element, Gather, Load, PointerAdd, PointerCast, Select, Store
from tilevm.passes.index_analysis import AccessInfo
from tilevm.passes.lower.global_window import TRUE, ThreadWindow, binary
from tilevm.passes.lower.lowering import GlobalTensor, Lowering
from tilevm.passes.lower.vectorize import group_size

__all__ = ["byte_groups", "load_codes", "pack_codes", "store_byte_groups"]

#: elements whose codes fill a whole number of bytes: 8 elements of n bits are n bytes
ELEMENTS_PER_GROUP = 8


def load_codes(lowering: Lowering, tensor: GlobalTensor, address: Expr, predicate: Expr, other: Expr) -> Expr:
    """The code (a uint32) of the element at ``address`` where ``predicate`` holds, else ``other``'s."""
    nbits = tensor.dtype.nbits
    pointer = PointerCast(uint8, tensor.pointer)
    predicate = lowering.let("in_bounds", predicate)
    bit = lowering.let("bit", binary("mul", address, Const(nbits)))
    byte = binary("shr", bit, Const(3))
    shift = binary("and", bit, Const(7))
    first = lowering.define(
        Load, "byte", pointer=PointerAdd(pointer, byte), width=1, predicate=_predicate(predicate)
    )
    straddles = binary("and", predicate, binary("gt", shift, Const(8 - nbits)))
    second = lowering.define(
        Load, "byte", pointer=PointerAdd(pointer, binary("add", byte, Const(1))), width=1, predicate=straddles
    )
    pair = binary("or", CastExpr(first, uint32), binary("shl", CastExpr(second, uint32), Const(8, uint32)))
    code = binary("and", binary("shr", pair, CastExpr(shift, uint32)), Const((1 << nbits) - 1, uint32))
    if predicate != TRUE:
        code = Select(predicate, code, code_of(other))
    return lowering.let("code", code)


def code_of(value: Expr) -> Expr:
    """The code of a scalar of a dtype that straddles bytes, as a uint32 (from the bits of 8 copies)."""
    nbits = value.type.dtype.nbits
    copies = Bitcast(uint8, nbits, Gather((value,), (0,) * ELEMENTS_PER_GROUP))
    return binary("and", CastExpr(Element(copies, 0), uint32), Const((1 << nbits) - 1, uint32))


def pack_codes(codes: list[Expr], dtype: DType) -> Expr:
    """The register of ``dtype`` whose elements have ``codes`` (uint32 scalars), in order."""
    nbits = dtype.nbits
    chunks = []
    for start in range(0, len(codes), ELEMENTS_PER_GROUP):
        word: Expr = Const(0, uint64)
        for position, code in enumerate(codes[start : start + ELEMENTS_PER_GROUP]):
            shifted = binary("shl", CastExpr(code, uint64), Const(position * nbits, uint64))
            word = binary("or", word, shifted)
        group_bytes = Gather((Bitcast(uint8, 8, word),), tuple(range(nbits)))
        chunks.append(Bitcast(dtype, ELEMENTS_PER_GROUP, group_bytes))
    return Gather(tuple(chunks), tuple(range(len(codes))))


def byte_groups(window: ThreadWindow, info: AccessInfo) -> int | None:
    """The tile dim along which each thread's elements come in groups of 8 consecutive ones that start on a
    byte and lie wholly in or out of bounds, or None when the layout or the index analysis does not show
    it."""
    strides = window.tensor.strides
    for axis, dim in enumerate(window.dims):
        if not (isinstance(strides[dim], Const) and strides[dim].value == 1):
            continue
        others = [item.step_bits for other, item in enumerate(info.dims) if other != axis and item.extent > 1]
        aligned = min([info.start_bits, *others]) % 8 == 0
        exact = info.dims[axis].remaining % ELEMENTS_PER_GROUP == 0
        runs = group_size(window.layout, axis, ELEMENTS_PER_GROUP) == ELEMENTS_PER_GROUP
        if aligned and exact and runs:
            return axis
    return None


def store_byte_groups(lowering: Lowering, window: ThreadWindow, value: Expr, writer: Expr) -> None:
    """Store the thread's elements (``value``, a register of ``layout.local_size``) in groups of 8 that
    ``byte_groups`` found: ``n`` one-byte stores a group, where its first element is in bounds."""
    tensor, nbits = window.tensor, window.tensor.dtype.nbits
    pointer = PointerCast(uint8, tensor.pointer)
    for local in range(0, window.layout.local_size, ELEMENTS_PER_GROUP):
        group = Gather((value,), tuple(range(local, local + ELEMENTS_PER_GROUP)))
        group_bytes = lowering.let("bytes", Bitcast(uint8, nbits, group))
        first = binary("shr", binary("mul", window.address(local), Const(nbits)), Const(3))
        first = lowering.let("byte", first)
        predicate = lowering.let("in_bounds", binary("and", writer, window.in_bounds(local)))
        for offset in range(nbits):
            address = PointerAdd(pointer, binary("add", first, Const(offset)))
            byte = Element(group_bytes, offset)
            lowering.emit(Store(pointer=address, value=byte, predicate=_predicate(predicate)))


def _predicate(condition: Expr) -> Expr | None:
    return None if condition == TRUE else condition
