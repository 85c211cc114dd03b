"""Lowering of ``cast``: a thread's register of one dtype converted to another, element by element, by the
rules of Tile IR's ``cast`` (``tilevm.ir.semantics.cast``).

``convert`` is what every lowering that changes a dtype calls, so that casts are chosen in one place:
``SEQUENCES``, a table read top to bottom whose first row that applies to the (source, target) pair gives
the Thread IR sequence. A plain ``cast<...>`` expression (one PTX ``cvt``) only converts between machine
dtypes (bool, 8- to 64-bit integers, float16, bfloat16, float32); every other pair is a sequence on 32-bit
words, or goes through a machine dtype that holds the source exactly (int32 for low-bit integers, float32
for low-bit floats) and converts from there, so that only one step rounds.

Instructions per element of the packed sequences (on the GPU, the 32-bit words in registers; gathers and
bitcasts are register renaming; ``tests/test_lower_casts_sequences.py`` counts them on a 16-byte load):

=========================  =======================================================================  =====
pair                       sequence per two elements (one f16x2 / bf16x2 register)                  /elem
=========================  =======================================================================  =====
uint8 -> float16           prmt (the bytes under the magic byte 0x64) + sub                         1
int8 -> float16            the same, after one xor of the sign bits per 4 elements                  1.25
(u)int4 -> float16         prmt + lop3 (mask, magic, sign flip) + sub                               1.5
(u)int2 -> float16         prmt (one per 4 elements) + lop3 + sub                                   1.25
(u)int3 -> float16         prmt + lop3 + sub                                                        1.5
(u)int4 -> bfloat16        as float16, and one shift per 8 elements                                 1.625
(u)int2 -> bfloat16        prmt (one per 4, of the word and of it shifted by 2) + lop3 + sub        1.3125
int8 -> bfloat16           prmt + lop3 (7 low bits) + lop3 (the sign's weight) + sub                2
uint8 -> bfloat16          int8's, the weight from a sign-replicating prmt                          2.5
float4_e2m1 -> f16 / bf16  prmt + lop3 + shift + lop3 (sign) + mul; one shift per 8 elements        2.625
float8_e4m3 -> float16     cvt_unpack (cvt.rn.f16x2.e4m3x2; sm_89 and later)                        0.5
float8_e4m3 -> bfloat16    cvt_unpack, then two cvt.f32.f16 and one cvt.rn.bf16x2.f32               2
float8_e5m2 -> f16 / bf16  the same with cvt.rn.f16x2.e5m2x2                                        0.5 / 2
float32 -> f16 / bf16      cvt_pack (cvt.rn.f16x2.f32)                                              0.5
float32 -> float8_e4m3     cvt_pack (cvt.rn.satfinite.e4m3x2.f32)                                   0.5
=========================  =======================================================================  =====

The elements come out in their natural order (element 0 in the low half), as ``convert`` promises. The
low-bit sequences read each element's field where it comes from, through the gathers of a ``permute`` or
a ``convert_layout`` (``cast_sources``). When the two fields of a pair are *twins*, at the same bits of
the two halves of one word (the quantized GEMM's pre-layout stores 1-, 2- and 4-bit weights so), the pair
needs no prmt: the word, shifted by a shift shared with the word's other twins, goes to the lop3
(``tests/test_lower_casts_twins.py`` counts them; each position of a field needs its own magic constant
in a register, so a few more shifts may buy fewer positions, ``cast_placement.POSITION_COST``):

=========================  =======================================================================  =====
twins                      sequence per two elements                                                /elem
=========================  =======================================================================  =====
(u)int4 -> float16         lop3 + sub; one shift per 8 elements                                     1.125
(u)int2 -> float16         lop3 + sub; one shift per 16 elements                                    1.0625
(u)int1 -> float16         lop3 + sub; three shifts per 32 elements (four magic constants)          1.09375
(u)int4 -> bfloat16        lop3 + sub; three shifts per 8 elements                                  1.375
(u)int2 -> bfloat16        lop3 + sub; two shifts per 16 elements                                   1.125
(u)int1 -> bfloat16        lop3 + sub; three shifts per 32 elements (four magic constants)          1.09375
float4_e2m1 -> f16 / bf16  lop3 (magnitudes) + mul + lop3 (signs); seven shifts per 8 elements, of  2.375
                           which one (f16) or two (bf16) right shifts, the others left shifts
=========================  =======================================================================  =====

A cast with a power-of-two scale (``Cast.scale_exponent``, ``scaled_convert``) takes the scale into the
small floats' multiply, which a scale of ``2**(bias - 15)`` into float16 leaves out (``float4_e2m1`` twins:
1.875 instructions an element); other sources reach float32, are multiplied there and converted on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tilevm.dtypes import (
    DType,
    bfloat16,
    boolean,
    float8_e4m3,
    float16,
    float32,
    int8,
    int16,
    int32,
    int64,
    uint8,
    uint16,
    uint32,
    uint64,
)
from tilevm.ir import Cast
from tilevm.ir.expr import CastExpr, Expr
from tilevm.ir.thread.compute import UNPACKED_CONVERSIONS
from tilevm.passes.lower import cast_packed
from tilevm.passes.lower.cast_general import (
    decode_float,
    encode_float,
    integer_codes,
    is_nonzero,
    sign_extend,
)
from tilevm.passes.lower.cast_wide import to_float32
from tilevm.passes.lower.cast_words import binary, pack_codes, unpack_codes
from tilevm.passes.lower.lowering import Handler, Lowering
from tilevm.passes.options import FLOAT8_TARGETS

__all__ = [
    "HANDLERS",
    "MACHINE_DTYPES",
    "SEQUENCES",
    "CastSequence",
    "convert",
    "plain_cast",
    "scaled_convert",
    "sequence_for",
]

#: the dtypes of PTX's registers and ``cvt``: a plain cast converts between these only
MACHINE_DTYPES = frozenset(
    {boolean, int8, int16, int32, int64, uint8, uint16, uint32, uint64, float16, bfloat16, float32}
)
HALVES = (float16, bfloat16)

#: ``lower(lowering, value, target, rounding)``: the converted register
Lower = Callable[[Lowering, Expr, DType, str], Expr]


@dataclass(frozen=True)
class CastSequence:
    """One row of the table: the sequence ``lower`` for the pairs where ``applies(source, target,
    rounding)``, on the machine targets ``targets`` (all when None)."""

    name: str
    applies: Callable[[DType, DType, str], bool]
    lower: Lower
    targets: tuple[str | None, ...] | None = None


def convert(lowering: Lowering, value: Expr, target: DType, rounding: str = "nearest") -> Expr:
    """``value`` (a scalar or vector register) converted to ``target`` by the rules of Tile IR's ``cast``,
    element by element, with the sequence that ``SEQUENCES`` picks for the pair."""
    if value.type.dtype == target:
        return value
    sequence = sequence_for(value.type.dtype, target, rounding, lowering.program.target)
    return sequence.lower(lowering, value, target, rounding)


def sequence_for(source: DType, target: DType, rounding: str, machine: str | None = None) -> CastSequence:
    """The first row of ``SEQUENCES`` that applies to the pair on the ``machine`` target."""
    return next(
        row
        for row in SEQUENCES
        if (row.targets is None or machine in row.targets) and row.applies(source, target, rounding)
    )


def _machine(dtype: DType) -> bool:
    return dtype in MACHINE_DTYPES


def plain_cast(lowering: Lowering, value: Expr, target: DType, rounding: str) -> Expr:
    return lowering.let("cast", CastExpr(value, target, rounding))


def _low_bit_to_bool(lowering: Lowering, value: Expr, target: DType, rounding: str) -> Expr:
    return is_nonzero(lowering, unpack_codes(lowering, value), value.type.dtype)


def _through_int32(lowering: Lowering, value: Expr, target: DType, rounding: str) -> Expr:
    """A low-bit integer is exact in int32: sign-extend its codes, then convert from there."""
    ints = sign_extend(lowering, unpack_codes(lowering, value), value.type.dtype)
    return convert(lowering, ints, target, rounding)


def _through_float32(lowering: Lowering, value: Expr, target: DType, rounding: str) -> Expr:
    """A low-bit float is exact in float32: decode its codes, then convert from there."""
    floats = decode_float(lowering, unpack_codes(lowering, value), value.type.dtype)
    return convert(lowering, floats, target, rounding)


def _to_low_bit_integer(lowering: Lowering, value: Expr, target: DType, rounding: str) -> Expr:
    return pack_codes(lowering, integer_codes(lowering, value, target, rounding), target)


def _to_low_bit_float(lowering: Lowering, value: Expr, target: DType, rounding: str) -> Expr:
    codes = encode_float(lowering, to_float32(lowering, value), target, rounding)
    return pack_codes(lowering, codes, target)


SEQUENCES: tuple[CastSequence, ...] = (
    CastSequence(
        "packed float32 to f16x2 / bf16x2 (cvt_pack)",
        lambda source, target, rounding: source == float32 and target in HALVES,
        cast_packed.float32_pairs,
    ),
    CastSequence(
        "float to e4m3x2 (cvt_pack, satfinite)",
        lambda source, target, rounding: (
            source in (float16, bfloat16, float32) and target == float8_e4m3 and rounding == "nearest"
        ),
        cast_packed.float32_pairs,
        FLOAT8_TARGETS,
    ),
    CastSequence(
        "integers to f16x2 / bf16x2 (prmt, lop3 and a magic-number subtract)",
        lambda source, target, rounding: source.is_integer and cast_packed.has_magic(source, target),
        cast_packed.integers_to_halves,
    ),
    CastSequence(
        "bytes to bf16x2 (the 7 low bits under a magic number, the top bit's weight subtracted)",
        lambda source, target, rounding: source in (int8, uint8) and target == bfloat16,
        cast_packed.bytes_to_bfloat16,
    ),
    CastSequence(
        "float8 to f16x2 (cvt_unpack), and on to bf16x2 through float32",
        lambda source, target, rounding: source in UNPACKED_CONVERSIONS and target in HALVES,
        cast_packed.float8_pairs,
        FLOAT8_TARGETS,
    ),
    CastSequence(
        "small floats to f16x2 / bf16x2 (fields moved into place, a power-of-two multiply)",
        lambda source, target, rounding: cast_packed.moves_exactly(source, target),
        cast_packed.small_floats_to_halves,
    ),
    CastSequence(
        "machine dtypes (one cvt)",
        lambda source, target, rounding: _machine(source) and _machine(target),
        plain_cast,
    ),
    CastSequence(
        "low-bit to bool (code != 0)",
        lambda source, target, rounding: target == boolean,
        _low_bit_to_bool,
    ),
    CastSequence(
        "low-bit integers through int32",
        lambda source, target, rounding: source.is_integer and not _machine(source),
        _through_int32,
    ),
    CastSequence(
        "low-bit floats through float32",
        lambda source, target, rounding: source.is_float and not _machine(source),
        _through_float32,
    ),
    CastSequence(
        "to low-bit integers (saturate or wrap, then pack)",
        lambda source, target, rounding: target.is_integer,
        _to_low_bit_integer,
    ),
    CastSequence(
        "to low-bit floats (round the float32 bits, then pack)",
        lambda source, target, rounding: target.is_float,
        _to_low_bit_float,
    ),
)


def scaled_convert(
    lowering: Lowering, value: Expr, target: DType, rounding: str, scale_exponent: int
) -> Expr:
    """``value`` (low-bit integers or floats) times ``2**scale_exponent``, converted to the float
    ``target`` with one rounding (Tile IR's ``cast`` with ``scale_exponent``): small floats that move into
    halves take the scale into their multiply where no value rounds; the others reach float32, which holds
    them and their scaled values exactly, are multiplied there and converted on."""
    source = value.type.dtype
    fields_move = sequence_for(source, target, rounding, lowering.program.target).lower is (
        cast_packed.small_floats_to_halves
    )
    if fields_move and cast_packed.scales_exactly(source, target, scale_exponent):
        return cast_packed.small_floats_to_halves(lowering, value, target, rounding, scale_exponent)
    exact = convert(lowering, value, float32)
    scaled = lowering.let("scaled", binary("mul", exact, 2.0**scale_exponent))
    return convert(lowering, scaled, target, rounding)


def _cast(lowering: Lowering, cast: Cast) -> None:
    value = lowering.tile(cast.operand)
    if cast.scale_exponent:
        converted = scaled_convert(lowering, value, cast.dtype, cast.rounding, cast.scale_exponent)
    else:
        converted = convert(lowering, value, cast.dtype, cast.rounding)
    lowering.bind(cast.output, converted)


HANDLERS: dict[type, Handler] = {Cast: _cast}
