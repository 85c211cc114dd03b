"""Machine registers widened or narrowed to float32 so that ``encode_float`` can round them to a low-bit
float in one step, as ``tilevm.ir.semantics.cast`` does.

float16, bfloat16 and integers of up to 16 bits are exact in float32; 32-bit integers are narrowed by
rounding to odd (``round_to_odd_float32``), which keeps the second rounding right. 64-bit integers reach a
float through float64 in the semantics, so they are first rounded to float64's 53 significant bits (ties to
even) in integer arithmetic, and then narrowed to odd.
"""

from __future__ import annotations

from tilevm.dtypes import float32, uint32, uint64
from tilevm.ir.expr import BinaryExpr, CastExpr, Expr, UnaryExpr
from tilevm.ir.thread import Bitcast, Select
from tilevm.passes.lower.cast_general import round_to_odd_float32
from tilevm.passes.lower.cast_words import binary, constant
from tilevm.passes.lower.lowering import Lowering, vector_length

__all__ = ["to_float32"]

#: float64's significant bits
FLOAT64_DIGITS = 53


def to_float32(lowering: Lowering, value: Expr) -> Expr:
    """``value`` (a machine register) as float32, narrowed to odd where float32 cannot hold it."""
    dtype = value.type.dtype
    if dtype == float32:
        return value
    if dtype.nbits == 64:
        return _wide_integer_to_float32(lowering, value)
    if dtype.is_integer and dtype.nbits == 32:
        return round_to_odd_float32(lowering, value)
    return lowering.let("widened", CastExpr(value, float32))


def _splat(value: Expr, number: int) -> Expr:
    return constant([number] * vector_length(value.type), value.type.dtype)


def _wide_integer_to_float32(lowering: Lowering, value: Expr) -> Expr:
    """A 64-bit integer register rounded to 53 significant bits (nearest even, as float64 holds it), then
    narrowed to float32 by rounding to odd: the magnitude's top bit is found by a binary search, the bits
    below the 53 kept are rounded off, and the rounded significand (at most 2**53) scaled back by a power of
    two."""
    length = vector_length(value.type)
    if value.type.dtype.is_signed:
        negative = lowering.let("negative", binary("lt", value, 0))
        magnitude = Select(negative, UnaryExpr("neg", value), value)
        magnitude = lowering.let("magnitude", Bitcast(uint64, length, magnitude))
    else:
        magnitude = value
    top = _splat(magnitude, 0)
    for step in (32, 16, 8, 4, 2, 1):
        candidate = lowering.let("top", binary("add", top, step))
        above = binary("ne", BinaryExpr("shr", magnitude, candidate), 0)
        top = lowering.let("top", Select(above, candidate, top))
    shift = lowering.let("shift", binary("sub", binary("max", top, FLOAT64_DIGITS - 1), FLOAT64_DIGITS - 1))
    step = binary("max", shift, 1)
    quotient = lowering.let("quotient", BinaryExpr("shr", magnitude, step))
    half = BinaryExpr("shl", _splat(step, 1), binary("sub", step, 1))
    remainder = binary("and", magnitude, binary("sub", binary("add", half, half), 1))
    odd = binary("ne", binary("and", quotient, 1), 0)
    up = binary("or", binary("gt", remainder, half), binary("and", binary("eq", remainder, half), odd))
    rounded = binary("add", quotient, CastExpr(up, uint64))
    significand = Select(binary("eq", shift, 0), magnitude, rounded)
    narrowed = round_to_odd_float32(lowering, lowering.let("significand", significand))
    # 2**shift as float32 bits: the exponent field shift + 127
    scale = Bitcast(float32, length, binary("shl", binary("add", CastExpr(shift, uint32), 127), 23))
    result = BinaryExpr("mul", narrowed, scale)
    if value.type.dtype.is_signed:
        result = Select(negative, UnaryExpr("neg", result), result)
    return lowering.let("widened", result)
