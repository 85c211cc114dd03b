"""Lowering of ``reduce`` (sum, max or min over one dim) in three steps, by where the reduced dim's digits
of the operand's layout lie (``tilevm.passes.lower.coordinates``):

1. **local digits**: each thread combines its own elements that differ only along the dim, in local-index
   order, into one element per element of the result (whose layout is the operand's reduced over the dim:
   its local order is the operand's without the dim's local digits);
2. **thread digits inside a warp** (a power-of-two digit below lane 32): a butterfly of ``shuffle`` xor, one
   step per bit, after which every lane of the group holds the same combination (each step computes
   ``x op y`` on one lane and ``y op x`` on its partner: the same value, as the ops commute);
3. **the other thread digits** (across warps, or of sizes that are no power of two): every thread writes its
   partial to shared scratch between two barriers, then reads the partials of the threads that differ only
   in those digits, in one fixed order, so that every replica of a result element computes the same bits.

The result is thus complete in every thread that holds a replica. The combination is computed in
``accumulation_dtype`` of the reduction's dtype (its values widened exactly where that is a low-bit dtype or
bool; integer sums wrap back into it when converted at the end). Shuffles move 32 bits: 8- and 16-bit
elements travel four or two to a word, 64-bit ones as two words.

Float sums round at every step, in the order above, where the reference executor sums in float64 and rounds
once: results agree with it within the bound of any float summation in the dtype (``Reduce``'s docstring),
and exactly where every partial sum is exact. Integer sums (wrapping) and max and min agree bit for bit,
but for the sign of a float zero where +0.0 and -0.0 tie (each is the maximum of the two; which one
comes out depends on the order of comparisons, which differs from the reference's).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from tilevm.dtypes import DType, float32, int32, uint32
from tilevm.ir import Reduce
from tilevm.ir.expr import BinaryExpr, Const, Expr
from tilevm.ir.thread import Barrier, Bitcast, Element, Gather, Load, Pack, SharedPointer, Shuffle, Store
from tilevm.ir.thread.values import WARP_SIZE
from tilevm.layout import RegisterLayout
from tilevm.passes.lower.casts import convert
from tilevm.passes.lower.coordinates import ThreadDigit, local_coordinates, thread_digits
from tilevm.passes.lower.lowering import Handler, Lowering, tile_layout, vector_length
from tilevm.passes.lower.registers import gather
from tilevm.passes.lower.widening import is_machine

__all__ = ["HANDLERS", "accumulation_dtype", "local_groups"]

#: the binary operator that combines two partial results of each reduction
COMBINE = {"sum": "add", "max": "max", "min": "min"}
#: the widest access to shared scratch
ACCESS_LIMIT_BYTES = 16

Combine = Callable[[Expr, Expr], Expr]


def _reduce(lowering: Lowering, reduce: Reduce) -> None:
    layout = tile_layout(reduce.operand)
    compute = accumulation_dtype(reduce.dtype)

    def combine(lhs: Expr, rhs: Expr) -> Expr:
        return lowering.let(reduce.op, BinaryExpr(COMBINE[reduce.op], lhs, rhs))

    value = convert(lowering, lowering.tile(reduce.operand), compute)
    value = _combine_locals(value, local_groups(layout, tile_layout(reduce.output), reduce.dim), combine)
    lane_masks, across = _split_digits(thread_digits(layout)[reduce.dim])
    for mask in lane_masks:
        value = combine(value, _shuffle_xor(lowering, value, mask))
    if across:
        value = _combine_across_threads(lowering, value, across, combine)
    lowering.bind(reduce.output, convert(lowering, value, reduce.dtype))


def accumulation_dtype(dtype: DType) -> DType:
    """The dtype a reduction into ``dtype`` combines in: ``dtype`` where Thread IR computes in it, else
    float32 for a low-bit float and int32 for a low-bit integer or a bool (each holds every value exactly;
    integer sums wrap back into ``dtype`` when converted to it, as Tile IR's do).

    >>> from tilevm.dtypes import boolean, float8_e4m3, float16, int3
    >>> [str(accumulation_dtype(dtype)) for dtype in (float16, float8_e4m3, int3, boolean)]
    ['float16', 'float32', 'int32', 'int32']
    """
    if is_machine(dtype) and dtype.kind != "bool":
        return dtype
    return float32 if dtype.is_float else int32


def local_groups(operand: RegisterLayout, result: RegisterLayout, dim: int) -> tuple[tuple[int, ...], ...]:
    """For each local index of the result, the operand's local indices that reduce into it, ascending.

    >>> from tilevm.layout import spatial
    >>> layout = spatial(4, 8).local(3, 2)
    >>> local_groups(layout, layout.reduce(0), 0)
    ((0, 2, 4), (1, 3, 5))
    """
    operand_keys = [_without(row, dim) for row in local_coordinates(operand).tolist()]
    kept = result.rank == operand.rank
    result_keys = [_without(row, dim) if kept else tuple(row) for row in local_coordinates(result).tolist()]
    return tuple(
        tuple(index for index, key in enumerate(operand_keys) if key == result_key)
        for result_key in result_keys
    )


def _without(row: list[int], dim: int) -> tuple[int, ...]:
    return tuple(row[:dim] + row[dim + 1 :])


def _combine_locals(value: Expr, groups: tuple[tuple[int, ...], ...], combine: Combine) -> Expr:
    """Step 1: the thread's elements of each group combined in order, all groups at once (vectorized)."""
    total = gather(value, tuple(group[0] for group in groups))
    for position in range(1, len(groups[0])):
        total = combine(total, gather(value, tuple(group[position] for group in groups)))
    return total


def _split_digits(digits: tuple[ThreadDigit, ...]) -> tuple[list[int], list[ThreadDigit]]:
    """The lane masks of the butterfly (the bits of the digits that lie in the lane index, for digits of
    powers of two) and the digits, or their upper parts, that are left for shared memory."""
    masks, across = [], []
    for digit in digits:
        in_lanes = 1
        if _power_of_two(digit.divisor) and _power_of_two(digit.size) and digit.divisor < WARP_SIZE:
            in_lanes = min(digit.size, WARP_SIZE // digit.divisor)
            masks += [digit.divisor << bit for bit in range(in_lanes.bit_length() - 1)]
        if digit.size > in_lanes:
            across.append(
                ThreadDigit(digit.divisor * in_lanes, digit.size // in_lanes, digit.weight * in_lanes)
            )
    return masks, across


def _power_of_two(value: int) -> bool:
    return value & (value - 1) == 0


def _shuffle_xor(lowering: Lowering, value: Expr, mask: int) -> Expr:
    """``value`` of the lane ``lane ^ mask``, moved as 32-bit words."""
    dtype, length = value.type.dtype, vector_length(value.type)

    def shuffle(word: Expr) -> Expr:
        return lowering.define(Shuffle, "shuffled", mode="xor", value=word, lane=Const(mask, int32))

    if dtype.nbits == 64:
        moved = []
        for index in range(length):
            words = lowering.let("words", Bitcast(uint32, 2, gather(value, (index,))))
            halves = Pack(tuple(shuffle(Element(words, half)) for half in (0, 1)))
            moved.append(lowering.let("moved", Bitcast(dtype, 1, halves)))
        return _concatenate(lowering, moved, length)
    per_word = 32 // dtype.nbits
    # a last partial word repeats the last element, which is moved and dropped
    indices = [min(index, length - 1) for index in range(-(-length // per_word) * per_word)]
    words = [
        shuffle(gather(value, tuple(indices[start : start + per_word])))
        for start in range(0, len(indices), per_word)
    ]
    return _concatenate(lowering, words, length)


def _concatenate(lowering: Lowering, parts: list[Expr], length: int) -> Expr:
    """The first ``length`` elements of ``parts`` read as one row, as one register."""
    if len(parts) == 1:
        return gather(parts[0], tuple(range(length)))
    return lowering.let("joined", Gather(tuple(parts), tuple(range(length))))


def _combine_across_threads(
    lowering: Lowering, value: Expr, digits: list[ThreadDigit], combine: Combine
) -> Expr:
    """Step 3: through shared scratch, a row of the partial's elements per thread."""
    dtype, length = value.type.dtype, vector_length(value.type)
    element_bytes = dtype.nbits // 8
    row_bytes = length * element_bytes
    base = lowering.scratch(lowering.program.num_threads * row_bytes)
    thread = lowering.thread

    def row_address(thread_index: Expr) -> Expr:
        return _offset(BinaryExpr("mul", thread_index, Const(row_bytes, int32)), base)

    lowering.emit(Barrier())
    _store_row(lowering, row_address(thread), value)
    lowering.emit(Barrier())
    # the first thread of the group: the thread with its digits along the dim zeroed
    first = thread
    for digit in digits:
        place = BinaryExpr(
            "mod", BinaryExpr("floordiv", thread, Const(digit.divisor, int32)), Const(digit.size, int32)
        )
        first = BinaryExpr("sub", first, BinaryExpr("mul", place, Const(digit.divisor, int32)))
    first = lowering.let("group_first", first)
    total = None
    for places in itertools.product(*(range(digit.size) for digit in digits)):
        step = sum(place * digit.divisor for place, digit in zip(places, digits))
        source = first if step == 0 else BinaryExpr("add", first, Const(step, int32))
        row = _load_row(lowering, row_address(source), value)
        total = row if total is None else combine(total, row)
    return total


def _chunk_length(length: int, element_bytes: int) -> int:
    """Elements per scratch access: the most, up to 16 bytes, that divide the row (so accesses align)."""
    chunk = 1
    while length % (chunk * 2) == 0 and chunk * 2 * element_bytes <= ACCESS_LIMIT_BYTES:
        chunk *= 2
    return chunk


def _store_row(lowering: Lowering, address: Expr, value: Expr) -> None:
    dtype, length = value.type.dtype, vector_length(value.type)
    element_bytes = dtype.nbits // 8
    chunk = _chunk_length(length, element_bytes)
    if length > chunk:  # the address is shared by several accesses
        address = lowering.let("row", address)
    for start in range(0, length, chunk):
        pointer = SharedPointer(dtype, _offset(address, start * element_bytes))
        lowering.emit(Store(pointer=pointer, value=gather(value, tuple(range(start, start + chunk)))))


def _load_row(lowering: Lowering, address: Expr, like: Expr) -> Expr:
    dtype, length = like.type.dtype, vector_length(like.type)
    element_bytes = dtype.nbits // 8
    chunk = _chunk_length(length, element_bytes)
    if length > chunk:  # the address is shared by several accesses
        address = lowering.let("row", address)
    parts = [
        lowering.define(
            Load,
            "partial",
            pointer=SharedPointer(dtype, _offset(address, start * element_bytes)),
            width=chunk * element_bytes,
        )
        for start in range(0, length, chunk)
    ]
    return _concatenate(lowering, parts, length)


def _offset(address: Expr, offset: int) -> Expr:
    return address if offset == 0 else BinaryExpr("add", address, Const(offset, int32))


HANDLERS: dict[type, Handler] = {Reduce: _reduce}
