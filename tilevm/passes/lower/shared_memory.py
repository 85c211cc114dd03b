"""Lowering of shared tiles: allocation, views (slice, permute), loads and stores between shared memory and
registers, and ``sync``.

A shared tile becomes a :class:`SharedTile` (``tilevm.passes.lower.shared_address`` says where its elements
are); views only compute a new layout and base. A load or store moves, per thread, the widest vectors the
register layout, the shared layout and the base's alignment allow (``shared_access.vector_width``, up to 16
bytes); a load whose layout is a product of an ``ldmatrix`` atom uses ``ldmatrix`` (``ldmatrix.py``).
A store is made by one thread per element: replicas (threads whose replication digits are not 0) hold the
same values and stay quiet, so no two threads write the same bytes.

Sub-byte elements that a thread holds fewer than a byte of, contiguously, are moved one at a time: a load
reads the byte holding the element and shifts it down; a store updates the element's bits in their 32-bit
word with an atomic ``and`` (clearing them) then an atomic ``or`` (setting them), so that threads writing
other bits of the same word do not race.
"""

from __future__ import annotations

from tilevm.dtypes import DType, int32, uint8, uint32
from tilevm.ir import (
    AllocShared,
    FreeShared,
    LoadShared,
    PermuteShared,
    SliceShared,
    StoreShared,
    Sync,
)
from tilevm.ir.expr import BinaryExpr, CastExpr, Const, Expr, UnaryExpr
from tilevm.ir.thread import (
    Atomic,
    Barrier,
    Bitcast,
    Element,
    FenceProxyAsync,
    Gather,
    Load,
    Pack,
    SharedPointer,
    Store,
)
from tilevm.layout import RegisterLayout
from tilevm.layout.shared import permute_shared
from tilevm.passes.lower.ldmatrix import load_matrices
from tilevm.passes.lower.lowering import Handler, Lowering, LoweringError, SharedTile, tile_layout
from tilevm.passes.lower.packed_gather import packed_gather
from tilevm.passes.lower.shared_access import (
    ldmatrix_plan,
    local_offsets,
    replica_digits,
    vector_width,
)
from tilevm.passes.lower.shared_address import (
    SwizzledOffsets,
    add,
    base_elements,
    byte_pointer,
    check_addressable,
    divisibility,
    element_divisibility,
    linear_offset,
)

__all__ = ["HANDLERS", "primary_predicate"]


def _alloc_shared(lowering: Lowering, allocation: AllocShared) -> None:
    if allocation.offset is None:
        raise LoweringError(
            f"shared tile {allocation.output.name} has no offset: plan shared memory before lowering",
            lowering.location,
        )
    base = Const(allocation.offset, int32)
    lowering.bind_shared(allocation.output, SharedTile(allocation.dtype, allocation.placement(), base))


def _free_shared(lowering: Lowering, free: FreeShared) -> None:
    """Nothing to do at run time: the plan already reuses the bytes after it."""
    lowering.shared_tile(free.tensor)


def _slice_shared(lowering: Lowering, instruction: SliceShared) -> None:
    parent = lowering.shared_tile(instruction.tensor)
    elements = instruction.base_offset(parent.layout, Const(0, int32))
    base = parent.base
    if elements != Const(0, int32):
        nbits = parent.dtype.nbits
        check_addressable(lowering, parent, "a slice at a runtime offset")
        if nbits < 8 and divisibility(lowering, elements) * nbits % 8:
            raise LoweringError(
                f"slice of a {parent.dtype} shared tile at a runtime offset not known to start a whole "
                f"byte; lowering needs slices of sub-byte tiles to start on a byte",
                lowering.location,
            )
        # Kept as an expression of the program's scalars, so that the index analysis knows what divides it.
        base = add(parent.base, base_elements(nbits, elements))
    layout = instruction.slice_layout(parent.layout)
    lowering.bind_shared(instruction.output, SharedTile(parent.dtype, layout, base))


def _permute_shared(lowering: Lowering, instruction: PermuteShared) -> None:
    parent = lowering.shared_tile(instruction.tensor)
    layout = permute_shared(parent.layout, instruction.dims)
    lowering.bind_shared(instruction.output, SharedTile(parent.dtype, layout, parent.base))


def _sync(lowering: Lowering, instruction: Sync) -> None:
    if lowering.unfenced_stores:  # stores the tensor cores read (``Lowering.async_proxy_views``)
        lowering.emit(FenceProxyAsync())
        lowering.unfenced_stores = False
    lowering.emit(Barrier())


def _load_shared(lowering: Lowering, instruction: LoadShared) -> None:
    tile = lowering.shared_tile(instruction.tensor)
    check_addressable(lowering, tile, "load_shared")
    register = tile_layout(instruction.output)
    base_divisibility = element_divisibility(lowering, tile)
    plan = ldmatrix_plan(register, tile.layout, tile.dtype.nbits, base_divisibility)
    if plan is not None:
        value = load_matrices(lowering, tile, plan, register.local_size)
    else:
        value = _load_vectors(lowering, tile, register, base_divisibility)
    lowering.bind(instruction.output, value)


def _load_vectors(
    lowering: Lowering, tile: SharedTile, register: RegisterLayout, base_divisibility: int
) -> Expr:
    nbits = tile.dtype.nbits
    width = vector_width(register, tile.layout, nbits, base_divisibility)
    start = linear_offset(lowering, tile, lowering.thread_coordinates(register))
    offsets = local_offsets(register, tile.layout.strides)
    if width * nbits >= 8:
        parts = [
            lowering.define(Load, "shared", pointer=byte_pointer(tile, offset), width=width * nbits // 8)
            for offset in _group_offsets(lowering, tile, start, offsets, width)
        ]
    else:
        parts = [
            _load_bits(lowering, tile, offset) for offset in _group_offsets(lowering, tile, start, offsets, 1)
        ]
    if len(parts) == 1:
        return parts[0]
    if width == 1:
        return lowering.let("tile", Pack(tuple(parts)))
    return lowering.let("tile", packed_gather(lowering, parts, range(register.local_size)))


def _group_offsets(lowering: Lowering, tile: SharedTile, start: Expr, offsets, width: int) -> list[Expr]:
    """The swizzled element offset of the first element of each group of ``width`` local elements."""
    through = SwizzledOffsets(lowering, tile.layout, start)
    return [through(int(offsets[first])) for first in range(0, len(offsets), width)]


def _load_bits(lowering: Lowering, tile: SharedTile, offset: Expr) -> Expr:
    """One sub-byte element: its byte shifted down, read as ``8 / nbits`` elements, the first of which."""
    nbits = tile.dtype.nbits
    per_byte = 8 // nbits
    byte = lowering.define(
        Load, "byte", pointer=SharedPointer(uint8, base_elements(nbits, _floor(offset, per_byte))), width=1
    )
    shift = CastExpr(scale_bits(BinaryExpr("mod", offset, Const(per_byte, int32)), nbits), uint8)
    shifted = lowering.let("bits", BinaryExpr("shr", byte, shift))
    return lowering.let("element", Element(Bitcast(tile.dtype, per_byte, shifted), 0))


def _floor(offset: Expr, multiple: int) -> Expr:
    """``offset`` rounded down to a multiple of ``multiple`` (a power of two)."""
    return BinaryExpr("and", offset, Const(-multiple, int32))


def scale_bits(elements: Expr, nbits: int) -> Expr:
    return elements if nbits == 1 else BinaryExpr("mul", elements, Const(nbits, int32))


def primary_predicate(lowering: Lowering, register: RegisterLayout) -> Expr | None:
    """True in the thread that stores its elements (all its replication digits 0); None when every thread
    holds elements of its own."""
    condition = None
    for divisor, size in replica_digits(register):
        above = (
            lowering.thread
            if divisor == 1
            else BinaryExpr("floordiv", lowering.thread, Const(divisor, int32))
        )
        digit = BinaryExpr("mod", above, Const(size, int32))
        test = BinaryExpr("eq", digit, Const(0, int32))
        condition = test if condition is None else BinaryExpr("and", condition, test)
    return None if condition is None else lowering.let("primary", condition)


def _store_shared(lowering: Lowering, instruction: StoreShared) -> None:
    tile = lowering.shared_tile(instruction.tensor)
    check_addressable(lowering, tile, "store_shared")
    register = tile_layout(instruction.value)
    value = lowering.tile(instruction.value)
    nbits = tile.dtype.nbits
    width = vector_width(register, tile.layout, nbits, element_divisibility(lowering, tile))
    predicate = primary_predicate(lowering, register)
    start = linear_offset(lowering, tile, lowering.thread_coordinates(register))
    offsets = local_offsets(register, tile.layout.strides)
    whole_bytes = width * nbits >= 8
    for group, offset in enumerate(
        _group_offsets(lowering, tile, start, offsets, width if whole_bytes else 1)
    ):
        if whole_bytes:
            part = _part(value, register.local_size, group * width, width)
            lowering.emit(Store(pointer=byte_pointer(tile, offset), value=part, predicate=predicate))
        else:
            _store_bits(lowering, tile.dtype, offset, _part(value, register.local_size, group, 1), predicate)
    if instruction.tensor in lowering.async_proxy_views:  # fenced at the next sync
        lowering.unfenced_stores = True


def _part(value: Expr, length: int, first: int, width: int) -> Expr:
    """Elements ``[first, first + width)`` of a thread's register of ``length`` elements."""
    if width == length:
        return value
    return Gather((value,), tuple(range(first, first + width)))


def _store_bits(
    lowering: Lowering, dtype: DType, offset: Expr, element: Expr, predicate: Expr | None
) -> None:
    """Write one sub-byte element into its 32-bit word: clear its bits, then set them (two atomics, so
    that the other bits of the word, which other threads may write, are left alone)."""
    nbits = dtype.nbits
    per_word = 32 // nbits
    word = SharedPointer(uint32, base_elements(nbits, _floor(offset, per_word)))
    shift = CastExpr(scale_bits(BinaryExpr("mod", offset, Const(per_word, int32)), nbits), uint32)
    # The element repeated through a word, masked to its own bits: its code in the low bits.
    repeated = Bitcast(uint32, 1, Gather((element,), (0,) * per_word))
    code = BinaryExpr("and", repeated, Const((1 << nbits) - 1, uint32))
    mask = BinaryExpr("shl", Const((1 << nbits) - 1, uint32), shift)
    keep = lowering.let("keep", UnaryExpr("not", mask))
    bits = lowering.let("bits", BinaryExpr("shl", code, shift))
    lowering.define(Atomic, "old", op="and", pointer=word, value=keep, predicate=predicate)
    lowering.define(Atomic, "old", op="or", pointer=word, value=bits, predicate=predicate)


HANDLERS: dict[type, Handler] = {
    AllocShared: _alloc_shared,
    FreeShared: _free_shared,
    SliceShared: _slice_shared,
    PermuteShared: _permute_shared,
    LoadShared: _load_shared,
    StoreShared: _store_shared,
    Sync: _sync,
}
