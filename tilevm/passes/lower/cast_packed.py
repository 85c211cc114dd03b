"""The packed cast sequences: two elements per 32-bit operation, into or out of f16x2 / bf16x2 registers.

- ``integers_to_halves``: a ``b``-bit integer under a magic exponent. A half whose exponent field is
  ``E`` and whose mantissa holds the field ``x`` at bit ``j`` is ``2**(M - j) + x`` when ``E = bias + M - j``
  (M mantissa bits): 0x6400 is 1024.0 in f16 (j = 0), 0x5400 64.0 (j = 4); 0x4300 is 128.0 in bf16. One
  ``lop3`` masks the two fields and ors the two magic exponents in, one packed subtract removes the
  magic values. A two's-complement field has its sign bit flipped in the same ``lop3`` (``(w & m) ^ c``),
  which adds ``2**(b-1)``, subtracted too. Fields are read through gathers (``cast_sources``); twin fields
  (the same bits of a word's two halves) need no prmt (``cast_placement.Stream.twin_shifts``).
- ``bytes_to_bfloat16``: a byte has one bit too many for bf16's mantissa: the low 7 bits go under 128.0,
  and the top bit's weight is subtracted as a second bf16 (128.0 or 256.0 for int8).
- ``small_floats_to_halves``: the code goes to the top of its half (the sign on bit 15), the magnitude
  is shifted down into the half's exponent and mantissa fields, and a multiply by ``2**(bias_T - bias_S)``
  rescales it, subnormals included (exact: the intermediate half is subnormal and the multiply by a power
  of two is exact); the source's infinity and NaN codes are selected in.
- ``float32_pairs``: ``cvt_pack``, two float32 to f16x2, bf16x2 or e4m3x2 in one instruction.
- ``float8_pairs``: ``cvt_unpack``, two float8_e4m3 / float8_e5m2 to f16x2 in one instruction (sm_89 and
  later), then to bf16x2 through float32 (two widening ``cvt`` and one ``cvt.rn.bf16x2.f32``): every
  float8 value is a float16 and a bfloat16 value, so neither step rounds.
"""

from __future__ import annotations

import functools

import numpy as np

from tilevm.dtypes import DType, bfloat16, decode, encode, float16, float32, uint32
from tilevm.ir.expr import BinaryExpr, CastExpr, Const, Expr
from tilevm.ir.thread import Bitcast, ConvertPack, ConvertUnpack, Element, Gather, Lop3, Prmt, Select
from tilevm.passes.lower.cast_placement import HALF_BITS, LEFT_FIRST, RIGHT_FIRST, Stream
from tilevm.passes.lower.cast_sources import bit_sources
from tilevm.passes.lower.cast_words import WORD_BITS, binary, constant, word_list, words
from tilevm.passes.lower.lowering import Lowering, vector_length

__all__ = [
    "bytes_to_bfloat16",
    "float32_pairs",
    "float8_pairs",
    "has_magic",
    "integers_to_halves",
    "moves_exactly",
    "scales_exactly",
    "small_floats_to_halves",
]

#: lop3 tables: (a & b) | c, (a & b) ^ c, ~a & b, a | (b & c)
AND_OR, AND_XOR, NOT_AND, OR_AND = 0xEA, 0x6A, 0x0C, 0xF8
#: prmt's selector nibble bit that copies the picked byte's sign bit into all eight bits
SIGN_REPLICATE = 8
#: bfloat16's magic word (128.0 in both halves) and int8's top-bit mask
BFLOAT16_MAGIC, TOP_BITS = 0x4300_4300, 0x0080_0080


def _elements(value: Expr) -> list[Expr]:
    length = vector_length(value.type)
    return [value] if length == 1 else [Element(value, index) for index in range(length)]


def _pairs(length: int) -> list[tuple[int, int]]:
    """The element indices of each output pair; an odd last element is paired with itself."""
    return [(first, min(first + 1, length - 1)) for first in range(0, length, 2)]


def _concatenate(lowering: Lowering, pairs: list[Expr], length: int) -> Expr:
    return lowering.let("halves", Gather(tuple(pairs), tuple(range(length))))


def _both_halves(low: int, high: int) -> int:
    """A 32-bit constant of two 16-bit halves."""
    return low | high << HALF_BITS


def _selector(low: int, high: int) -> int:
    """A prmt selector from the two nibbles that pick each half's bytes."""
    return low | high << 8


def float32_pairs(lowering: Lowering, value: Expr, target: DType, rounding: str) -> Expr:
    """``cvt_pack`` of each pair of elements (float16 and bfloat16 sources are widened exactly first)."""
    elements = _elements(value)
    if value.type.dtype != float32:
        elements = [CastExpr(element, float32) for element in elements]
    pairs = [
        lowering.define(
            ConvertPack, "pair", high=elements[high], low=elements[low], dtype=target, rounding=rounding
        )
        for low, high in _pairs(len(elements))
    ]
    return _concatenate(lowering, pairs, len(elements))


def float8_pairs(lowering: Lowering, value: Expr, target: DType, rounding: str) -> Expr:
    """``cvt_unpack`` of each pair of float8 elements to f16x2, cast on to bf16x2 for a bfloat16 target."""
    length = vector_length(value.type)
    pairs = []
    for low, high in _pairs(length):
        codes = value if length == 2 else Gather((value,), (low, high))
        pair = lowering.define(ConvertUnpack, "pair", value=codes)
        if target != float16:
            pair = lowering.let("pair", CastExpr(pair, target, rounding))
        pairs.append(pair)
    return _concatenate(lowering, pairs, length)


def has_magic(source: DType, target: DType) -> bool:
    """Whether ``source`` integers fit under a magic exponent of ``target`` (f16: up to 8 bits, bf16: 7)."""
    return target in (float16, bfloat16) and source.nbits <= target.mantissa_bits and source.nbits <= 8


def _magic(target: DType, position: int) -> tuple[int, float]:
    """The exponent bits that make the field at mantissa bit ``position`` count in units, and the value
    they add."""
    mantissa = target.mantissa_bits
    return (target.bias + mantissa - position) << mantissa, 2.0 ** (mantissa - position)


def integers_to_halves(lowering: Lowering, value: Expr, target: DType, rounding: str) -> Expr:
    """Integers of at most 8 bits (7 for bfloat16) to f16x2 / bf16x2: prmt, lop3, packed subtract.

    The fields are read where they come from (``bit_sources``: through the gathers of a ``permute``). A
    pair whose two fields are twins (the same bits of the two halves of a word) needs no prmt: its word,
    shifted by a shift it shares with the word's other twins, goes straight to the lop3. The other pairs'
    fields may be placed in several ways; the prmts that place them are shared between pairs whose
    placements pick the same bytes. Which way shares most depends on the width and the target (bfloat16's
    7 mantissa bits take fewer fields a byte), so each order of preferred shifts for the high field is
    tried on a scratch body and the one that emits the fewest instructions is kept."""
    source, length = value.type.dtype, vector_length(value.type)
    if source.nbits == 8 and target == float16:
        return _bytes_to_float16(lowering, word_list(words(lowering, value)), source.is_signed, length)
    sources = bit_sources(lowering, value)
    word_exprs = word_list(words(lowering, sources.register))

    def emitted(high_shifts: tuple[int, ...]) -> int:
        with lowering.collect() as scratch:
            _integer_pairs(lowering, word_exprs, sources.starts, source, target, high_shifts)
        return len(scratch)

    orders = _high_shift_orders(source.nbits)
    best = orders[0] if len(orders) == 1 else min(orders, key=emitted)
    pairs = _integer_pairs(lowering, word_exprs, sources.starts, source, target, best)
    return _concatenate(lowering, pairs, length)


def _high_shift_orders(bits: int) -> list[tuple[int, ...]]:
    """The preferred shifts for a pair's high field: the common order, and the stream shifted by one field
    (the high field then lines up with the low one, and one prmt can serve several pairs)."""
    if bits % 8 == 0:
        return [RIGHT_FIRST]
    aligned = bits % 8
    return [RIGHT_FIRST, (aligned, *(shift for shift in RIGHT_FIRST if shift != aligned))]


def _integer_pairs(
    lowering: Lowering,
    word_exprs: list[Expr],
    starts: tuple[int, ...],
    source: DType,
    target: DType,
    high_shifts: tuple[int, ...],
) -> list[Expr]:
    """Each pair of ``source`` integers (element ``i`` the field at stream bit ``starts[i]``) as one
    f16x2 / bf16x2 register (see ``integers_to_halves``)."""
    bits = source.nbits
    stream = Stream(lowering, word_exprs, bits)
    highest = target.mantissa_bits - bits  # the highest position at which a field fits under the magic
    pairs = _pairs(len(starts))
    twin_shifts = stream.twin_shifts(pairs, starts, 0, highest)
    results = []
    for low, high in pairs:
        if low in twin_shifts:
            shift = twin_shifts[low]
            word = stream.shifted_word(shift, starts[low] // WORD_BITS, funnel=False)
            positions = [starts[low] % WORD_BITS - shift] * 2
        else:
            word, *placed = stream.pair_word(
                stream.placements(starts[low], lambda position: position <= highest, RIGHT_FIRST),
                stream.placements(starts[high], lambda position: position <= highest, high_shifts),
            )
            positions = [placement.position for placement in placed]
        results.append(_under_magic(lowering, word, positions, source, target))
    return results


def _under_magic(lowering: Lowering, word: Expr, positions: list[int], source: DType, target: DType) -> Expr:
    """The pair whose low and high half of ``word`` hold the fields at ``positions``: one lop3 masks them
    and ors the magic exponents in (flipping a signed field's sign bit), one packed subtract."""
    bits = source.nbits
    mask = flip = magic = 0
    offsets = []
    for half, position in enumerate(positions):
        exponent, magic_value = _magic(target, position)
        mask |= ((1 << bits) - 1) << (position + HALF_BITS * half)
        magic |= exponent << (HALF_BITS * half)
        if source.is_signed:
            flip |= 1 << (position + bits - 1 + HALF_BITS * half)
        offsets.append(magic_value + (2.0 ** (bits - 1) if source.is_signed else 0.0))
    table = AND_XOR if source.is_signed else AND_OR
    masked = lowering.define(
        Lop3, "magic", a=word, b=Const(mask, uint32), c=Const(magic | flip, uint32), table=table
    )
    return lowering.let("pair", binary("sub", Bitcast(target, 2, masked), offsets))


def _bytes_to_float16(lowering: Lowering, word_exprs: list[Expr], signed: bool, length: int) -> Expr:
    """Bytes to f16x2 with a prmt that puts each byte under the magic byte 0x64 (1024.0): the magic word
    is prmt's second operand, so no lop3 is needed; int8's sign bits are flipped once per word."""
    if signed:
        word_exprs = [lowering.let("flipped", binary("xor", word, 0x8080_8080)) for word in word_exprs]
    pairs = []
    for low, high in _pairs(length):
        selector = _selector(low % 4 | 4 << 4, high % 4 | 4 << 4)
        pair = lowering.define(
            Prmt,
            "magic",
            a=word_exprs[low // 4],
            b=Const(0x6464_6464, uint32),
            selector=Const(selector, uint32),
        )
        offset = 1024.0 + (128.0 if signed else 0.0)
        pairs.append(lowering.let("pair", binary("sub", Bitcast(float16, 2, pair), offset)))
    return _concatenate(lowering, pairs, length)


def bytes_to_bfloat16(lowering: Lowering, value: Expr, target: DType, rounding: str) -> Expr:
    """int8 / uint8 to bf16x2: ``128 + low7 - weight`` where the weight is 128.0 plus the int8 sign bit at
    bfloat16's exponent bit 7 (256.0), or, for uint8, 128.0 unless the top bit is set (a sign-replicating
    prmt and an and-not)."""
    length = vector_length(value.type)
    word_exprs = word_list(words(lowering, value))
    pairs = []
    for low, high in _pairs(length):
        word = word_exprs[low // 4]
        spread = lowering.define(
            Prmt, "bytes", a=word, b=word, selector=Const(_selector(low % 4 * 0x11, high % 4 * 0x11), uint32)
        )
        low_bits = lowering.define(
            Lop3,
            "magic",
            a=spread,
            b=Const(0x007F_007F, uint32),
            c=Const(BFLOAT16_MAGIC, uint32),
            table=AND_OR,
        )
        if value.type.dtype.is_signed:
            weight = lowering.define(
                Lop3,
                "weight",
                a=spread,
                b=Const(TOP_BITS, uint32),
                c=Const(BFLOAT16_MAGIC, uint32),
                table=AND_OR,
            )
        else:
            signs = _selector((low % 4 | SIGN_REPLICATE) * 0x11, (high % 4 | SIGN_REPLICATE) * 0x11)
            replicated = lowering.define(Prmt, "signs", a=word, b=word, selector=Const(signs, uint32))
            weight = lowering.define(
                Lop3,
                "weight",
                a=replicated,
                b=Const(BFLOAT16_MAGIC, uint32),
                c=Const(0, uint32),
                table=NOT_AND,
            )
        difference = BinaryExpr("sub", Bitcast(bfloat16, 2, low_bits), Bitcast(bfloat16, 2, weight))
        pairs.append(lowering.let("pair", difference))
    return _concatenate(lowering, pairs, length)


@functools.cache
def scales_exactly(source: DType, target: DType, scale_exponent: int) -> bool:
    """Whether ``small_floats_to_halves`` scales ``source`` by ``2**scale_exponent`` exactly: its one
    multiply's factor is a normal ``target`` number, and every finite value of ``source`` times
    ``2**scale_exponent`` is a ``target`` value, so that the multiply, which rounds to nearest, rounds
    nothing whatever the cast's rounding."""
    factor = 2.0 ** (target.bias - source.bias + scale_exponent)
    smallest_normal = 2.0 ** (1 - target.bias)
    if not smallest_normal <= factor <= float(decode(np.array([target.max_magnitude_code]), target)[0]):
        return False
    values = decode(np.arange(source.num_codes), source)
    scaled = np.ldexp(values[np.isfinite(values)], scale_exponent)
    return bool(np.array_equal(decode(encode(scaled, target), target), scaled))


def moves_exactly(source: DType, target: DType) -> bool:
    """Whether ``small_floats_to_halves`` converts ``source`` to ``target`` exactly: a low-bit float with
    subnormals, fewer exponent bits than the target (or float8_e5m2 to float16, the same fields), every
    value of which the target holds."""
    if (
        target not in (float16, bfloat16)
        or not source.is_float
        or source.nbits > 8
        or not source.has_subnormals
    ):
        return False
    same_fields = source.has_inf and source.exponent_bits == target.exponent_bits
    if source.exponent_bits >= target.exponent_bits and not same_fields:
        return False
    values = decode(np.arange(source.num_codes), source)
    finite = np.isfinite(values)
    again = decode(encode(values[finite], target), target)
    return bool(np.array_equal(again, values[finite]))


def small_floats_to_halves(
    lowering: Lowering, value: Expr, target: DType, rounding: str, scale_exponent: int = 0
) -> Expr:
    """Low-bit floats to f16x2 / bf16x2 by moving fields (see the module's docstring), times
    ``2**scale_exponent`` in the same multiply (none where it cancels the move's; ``scales_exactly``)."""
    source, length = value.type.dtype, vector_length(value.type)
    bits = source.value_bits
    magnitude_bits = source.exponent_bits + source.mantissa_bits
    top = HALF_BITS - bits  # the code's place: its top bit on the half's bit 15
    sources = bit_sources(lowering, value)
    starts = sources.starts
    stream = Stream(lowering, word_list(words(lowering, sources.register)), bits)
    down = top - (target.mantissa_bits - source.mantissa_bits)
    magnitude_mask = _both_halves(*[((1 << magnitude_bits) - 1) << top] * 2)
    sign_mask = 0x8000_8000 if source.is_signed else 0
    pairs = []
    twin_shifts = stream.twin_shifts(_pairs(length), starts, top, top)
    magnitude_shifts = stream.twin_shifts(_pairs(length), starts, top - down, top - down)
    for low, high in _pairs(length):
        if low in twin_shifts and down:
            pairs.append(
                _twin_float_pair(
                    lowering,
                    stream,
                    (starts[low], twin_shifts[low], magnitude_shifts[low]),
                    source,
                    target,
                    scale_exponent,
                )
            )
            continue
        if low in twin_shifts:
            word = stream.shifted_word(twin_shifts[low], starts[low] // WORD_BITS, funnel=False)
        else:
            word, _, _ = stream.pair_word(
                stream.placements(starts[low], lambda position: position == top, LEFT_FIRST),
                stream.placements(starts[high], lambda position: position == top, LEFT_FIRST),
            )
        magnitude = None
        if down:
            masked = lowering.define(
                Lop3, "magnitude", a=word, b=Const(magnitude_mask, uint32), c=Const(0, uint32), table=AND_OR
            )
            moved = lowering.let("moved", binary("shr", masked, down))
            word = lowering.define(Lop3, "fields", a=word, b=Const(sign_mask, uint32), c=moved, table=AND_OR)
            magnitude = Bitcast(target, 2, moved)
        half = Bitcast(target, 2, word)
        moved = target.bias - source.bias  # the fields moved into a half are the value times 2**-moved
        if moved + scale_exponent:
            half = binary("mul", half, 2.0 ** (moved + scale_exponent))
        pairs.append(_specials(lowering, lowering.let("pair", half), magnitude, source, 2.0**-moved))
    return _concatenate(lowering, pairs, length)


def _twin_float_pair(
    lowering: Lowering,
    stream: Stream,
    place: tuple[int, int, int],
    source: DType,
    target: DType,
    scale_exponent: int,
) -> Expr:
    """A pair of twin small floats (``place``: the field starting at stream bit ``start`` and its twin, and
    the shifts ``sign_shift`` and ``magnitude_shift``): the word shifted by ``magnitude_shift`` holds both
    magnitudes at their places in the halves, which one lop3 masks; the multiply rescales them (times
    ``2**scale_exponent``: none where that cancels it); one more lop3 ors each sign in from the word shifted
    by ``sign_shift`` (the fields at the top of their halves). Where the side-by-side sequence shifts each
    pair's magnitudes down, a twin's two shifts serve every pair of its word at that place, and a shift left
    can be a multiply (``shl`` by a constant: ptxas picks the pipe)."""
    start, sign_shift, magnitude_shift = place
    magnitude_bits = source.exponent_bits + source.mantissa_bits
    place = target.mantissa_bits - source.mantissa_bits  # the magnitude's lowest bit in its half
    index = start // WORD_BITS
    placed = stream.shifted_word(magnitude_shift, index, funnel=False)
    mask = _both_halves(*[((1 << magnitude_bits) - 1) << place] * 2)
    moved = lowering.define(
        Lop3, "magnitude", a=placed, b=Const(mask, uint32), c=Const(0, uint32), table=AND_OR
    )
    magnitude = Bitcast(target, 2, moved)
    moved_by = target.bias - source.bias
    scale = moved_by + scale_exponent
    half = lowering.let("pair", binary("mul", magnitude, 2.0**scale)) if scale else magnitude
    if source.is_signed:
        signs = stream.shifted_word(sign_shift, index, funnel=False)
        bits = lowering.define(
            Lop3, "signed", a=Bitcast(uint32, 1, half), b=Const(0x8000_8000, uint32), c=signs, table=OR_AND
        )
        half = lowering.let("pair", Bitcast(target, 2, bits))
    return _specials(lowering, half, magnitude, source, 2.0**-moved_by)


def _specials(lowering: Lowering, pair: Expr, magnitude: Expr | None, source: DType, unscale: float) -> Expr:
    """The source's infinity and NaN codes, which the fields moved as finite numbers, made inf and NaN.
    They are found on ``magnitude``, the pair's magnitudes before the rescaling, where the code ``c`` is
    the value it would have as a finite number (``2**(e - bias) * 1.m``) times ``unscale``."""
    nan = constant([float("nan")] * 2, pair.type.dtype)
    all_ones = (1 << (source.exponent_bits + source.mantissa_bits)) - 1
    if magnitude is None:
        if source.has_inf:  # the same fields: infinity is infinity, NaN needs only its canonical code
            return lowering.let("pair", Select(binary("ne", pair, pair), nan, pair))
        return pair
    if source.has_inf:
        infinity = _finite_value(source, all_ones & ~((1 << source.mantissa_bits) - 1)) * unscale
        pair = Select(binary("eq", magnitude, infinity), binary("mul", pair, float("inf")), pair)
        return lowering.let("pair", Select(binary("gt", magnitude, infinity), nan, pair))
    if source.has_nan:
        return lowering.let(
            "pair", Select(binary("eq", magnitude, _finite_value(source, all_ones) * unscale), nan, pair)
        )
    return pair


def _finite_value(source: DType, code: int) -> float:
    exponent = (code >> source.mantissa_bits) - source.bias
    return 2.0**exponent * (1 + (code & ((1 << source.mantissa_bits) - 1)) / 2**source.mantissa_bits)
