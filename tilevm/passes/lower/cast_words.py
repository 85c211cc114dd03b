"""A thread's packed register as 32-bit words, and the codes of its low-bit elements: the raw material of
every cast sequence.

A register of ``n`` elements of a ``b``-bit dtype holds element ``i`` in bits ``[i*b, (i+1)*b)`` (element 0
lowest, as memory holds them). ``words`` reads those bits as ``vector<uint32, m>`` (padding with copies of
element 0 up to whole words), ``unpack_codes`` gives each element's code zero-extended in a ``uint32`` of its
own, and ``pack_codes`` packs such codes back into a register of the dtype. Both work on whole vectors at
once (one shift, one or, one and for all elements), with gathers to line the elements up with their words:
an element of a width that does not divide 32 (3, 5, 6, 7 bits) may straddle two words and is read from
both.

Every function here takes and returns scalars or vectors alike (a scalar is a register of one element).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tilevm.dtypes import DType, uint32
from tilevm.ir.expr import BinaryExpr, Const, Expr
from tilevm.ir.thread import Bitcast, Element, Gather, Pack
from tilevm.passes.lower.lowering import Lowering, splat, vector_length

__all__ = [
    "WORD_BITS",
    "binary",
    "constant",
    "from_words",
    "pack_codes",
    "unpack_codes",
    "word_list",
    "words",
]

WORD_BITS = 32


def constant(values: Sequence[int | float | bool], dtype: DType) -> Expr:
    """The register holding ``values`` of ``dtype``: a constant, or a ``pack`` of constants."""
    constants = tuple(Const(value, dtype) for value in values)
    if len(set(constants)) == 1:
        return splat(constants[0], len(constants))
    return Pack(constants)


def binary(op: str, lhs: Expr, rhs: int | float | Sequence[int | float] | Expr) -> Expr:
    """``lhs op rhs`` where ``rhs`` may be a number (the same for every element), one number per element,
    or a register."""
    if not isinstance(rhs, Expr):
        length = vector_length(lhs.type)
        values = list(rhs) if isinstance(rhs, Sequence) else [rhs] * length
        rhs = constant(values, lhs.type.dtype)
    return BinaryExpr(op, lhs, rhs)


def _whole_word_length(dtype: DType, length: int) -> int:
    """The fewest elements, at least ``length``, that fill a whole number of 32-bit words."""
    per_words = WORD_BITS // math.gcd(dtype.nbits, WORD_BITS)
    return -(-length // per_words) * per_words


def words(lowering: Lowering, value: Expr) -> Expr:
    """The bits of ``value`` as ``uint32`` words (a vector, or a scalar for one word), the elements beyond
    ``value``'s own padded with copies of element 0."""
    dtype, length = value.type.dtype, vector_length(value.type)
    padded = _whole_word_length(dtype, length)
    if padded != length:
        value = Gather((value,), (*range(length), *([0] * (padded - length))))
    return lowering.let("words", Bitcast(uint32, padded * dtype.nbits // WORD_BITS, value))


def word_list(word_register: Expr) -> list[Expr]:
    """Each 32-bit word of a register of ``uint32`` words, as a scalar expression."""
    count = vector_length(word_register.type)
    if count == 1:
        return [word_register]
    return [Element(word_register, index) for index in range(count)]


def from_words(lowering: Lowering, word_register: Expr, dtype: DType, length: int) -> Expr:
    """The first ``length`` elements of ``dtype`` held in ``word_register`` (uint32 words)."""
    count = vector_length(word_register.type) * WORD_BITS // dtype.nbits
    value = Bitcast(dtype, count, word_register)
    if count != length:
        value = Gather((value,), tuple(range(length)))
    return lowering.let("packed", value)


def unpack_codes(lowering: Lowering, value: Expr) -> Expr:
    """Each element's ``b``-bit code of the low-bit register ``value``, zero-extended in a ``uint32``.

    Element ``i`` starts at bit ``o = i*b``: it is word ``o // 32`` shifted right by ``o % 32``, or'ed with
    the next word shifted left by ``32 - o % 32`` when it straddles the two, and masked to ``b`` bits."""
    dtype, length = value.type.dtype, vector_length(value.type)
    bits = dtype.nbits
    word_register = words(lowering, value)
    count = vector_length(word_register.type)
    offsets = [index * bits for index in range(length)]
    low = binary(
        "shr",
        Gather((word_register,), tuple(offset // WORD_BITS for offset in offsets)),
        [offset % WORD_BITS for offset in offsets],
    )
    straddles = [offset % WORD_BITS + bits > WORD_BITS for offset in offsets]
    if any(straddles):
        # Elements within one word read the zero appended after the words (index ``count``), shifted by 0.
        high_words = Gather(
            (word_register, Const(0, uint32)),
            tuple(o // WORD_BITS + 1 if s else count for o, s in zip(offsets, straddles)),
        )
        high = binary(
            "shl", high_words, [WORD_BITS - o % WORD_BITS if s else 0 for o, s in zip(offsets, straddles)]
        )
        low = BinaryExpr("or", low, high)
    return lowering.let("codes", binary("and", low, (1 << bits) - 1))


def pack_codes(lowering: Lowering, codes: Expr, dtype: DType) -> Expr:
    """The register of ``dtype`` whose elements have the codes ``codes`` (``uint32``, each below
    ``2**dtype.nbits``).

    Each code is shifted to its place in its word (and, when it straddles two words, its high part to the
    start of the next); the parts that land in one word are then or'ed together pairwise, a tree of
    ``log2(parts per word)`` vector ors."""
    length, bits = vector_length(codes.type), dtype.nbits
    padded = _whole_word_length(dtype, length)
    if padded != length:
        codes = Gather((codes,), (*range(length), *([0] * (padded - length))))
    count = padded * bits // WORD_BITS
    offsets = [index * bits for index in range(padded)]
    low = lowering.let("low", binary("shl", codes, [offset % WORD_BITS for offset in offsets]))
    parts: list[list[int]] = [[] for _ in range(count)]
    for index, offset in enumerate(offsets):
        parts[offset // WORD_BITS].append(index)
    sources = [low]
    straddling = [index for index, offset in enumerate(offsets) if offset % WORD_BITS + bits > WORD_BITS]
    if straddling:
        shifts = [WORD_BITS - offsets[index] % WORD_BITS for index in straddling]
        sources.append(binary("shr", Gather((codes,), tuple(straddling)), shifts))
        for position, index in enumerate(straddling):
            parts[offsets[index] // WORD_BITS + 1].append(padded + position)
    zero = padded + len(straddling)
    sources.append(Const(0, uint32))
    width = 1 << (max(len(word_parts) for word_parts in parts) - 1).bit_length()
    order = [index for word_parts in parts for index in word_parts + [zero] * (width - len(word_parts))]
    tree = lowering.let("parts", Gather(tuple(sources), tuple(order)))
    while width > 1:
        width //= 2
        first = [word * 2 * width + part for word in range(count) for part in range(width)]
        tree = lowering.let(
            "parts",
            BinaryExpr(
                "or",
                Gather((tree,), tuple(first)),
                Gather((tree,), tuple(index + width for index in first)),
            ),
        )
    return from_words(lowering, tree, dtype, length)
