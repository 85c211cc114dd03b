"""The general cast sequences: integer arithmetic on the codes of low-bit elements, one ``uint32`` or
``int32`` per element, for every pair that has no packed bit trick. Each function works on a whole
register at once (vector operations, element by element).

- ``decode_float``: low-bit float codes to float32, exactly (every low-bit format fits float32).
- ``encode_float``: float32 to low-bit float codes, rounded to nearest even or toward zero, with the
  overflow, infinity and NaN rules of ``tilevm.dtypes.codec`` (its ``_round_magnitude``, in integers).
- ``sign_extend``, ``integer_codes``: low-bit integer codes to int32 and back, with saturation from floats.
"""

from __future__ import annotations

from tilevm.dtypes import DType, boolean, float32, int32, uint32
from tilevm.dtypes.codec import infinity_code, nan_code
from tilevm.ir.expr import BinaryExpr, CastExpr, Expr
from tilevm.ir.thread import Bitcast, Select
from tilevm.passes.lower.cast_words import binary, constant
from tilevm.passes.lower.lowering import Lowering, vector_length

__all__ = [
    "decode_float",
    "encode_float",
    "integer_codes",
    "is_nonzero",
    "round_to_odd_float32",
    "sign_extend",
]

# float32's fields
F32_MANTISSA = 23
F32_BIAS = 127
F32_INF = 0x7F80_0000
F32_NAN = 0x7FC0_0000


def _bitcast(value: Expr, dtype: DType) -> Expr:
    return Bitcast(dtype, vector_length(value.type), value)


def _splat(value: Expr, number: int | float | bool, dtype: DType) -> Expr:
    return constant([number] * vector_length(value.type), dtype)


def sign_extend(lowering: Lowering, codes: Expr, source: DType) -> Expr:
    """The int32 values of the codes (``uint32``) of the low-bit integer ``source``."""
    if not source.is_signed:
        return lowering.let("ints", _bitcast(codes, int32))
    spare = 32 - source.nbits
    # the code's sign bit moved to bit 31, then an arithmetic shift back copies it down
    return lowering.let("ints", binary("shr", _bitcast(binary("shl", codes, spare), int32), spare))


def integer_codes(lowering: Lowering, value: Expr, target: DType, rounding: str) -> Expr:
    """The codes (``uint32``) of ``value`` (a register of a machine dtype) cast to the low-bit integer
    ``target``: floats round, saturate to the range and send NaN to 0 (the cast to int32 does all three;
    a clamp narrows the range); integers and bools wrap (their low bits)."""
    mask = (1 << target.nbits) - 1
    if value.type.dtype.is_float:
        ints = CastExpr(value, int32, rounding)
        ints = binary("min", binary("max", ints, target.min_value), target.max_value)
        return lowering.let("codes", binary("and", _bitcast(ints, uint32), mask))
    return lowering.let("codes", binary("and", CastExpr(value, uint32), mask))


def decode_float(lowering: Lowering, codes: Expr, source: DType) -> Expr:
    """The float32 values of the codes (``uint32``) of the low-bit float ``source``, exactly.

    The magnitude bits go to float32's exponent and mantissa fields as they stand (mantissa aligned to the
    top), so that the float32 read is ``value * 2**(bias - 127)``; a multiplication by ``2**(127 - bias)``
    rescales it, exactly, subnormals included (the float32 is then subnormal too). Codes that mean
    infinity or NaN in ``source`` are selected in; e8m0 (no mantissa, no subnormals) is its exponent."""
    exponent, mantissa = source.exponent_bits, source.mantissa_bits
    magnitude_bits = exponent + mantissa
    magnitude = lowering.let("magnitude", binary("and", codes, (1 << magnitude_bits) - 1))
    bits = binary("shl", magnitude, F32_MANTISSA - mantissa)
    if source.is_signed:
        bits = binary("or", bits, binary("shl", binary("shr", codes, magnitude_bits), 31))
    value = _bitcast(bits, float32)
    if source.has_subnormals:
        value = binary("mul", value, 2.0 ** (F32_BIAS - source.bias))
    else:  # e8m0: code 0 is 2**-127, which float32 holds only as a subnormal
        value = Select(binary("eq", magnitude, 0), _splat(magnitude, 2.0**-F32_BIAS, float32), value)
    value = lowering.let("decoded", value)
    all_ones = (1 << magnitude_bits) - 1
    nan = _splat(magnitude, float("nan"), float32)
    if source.has_inf:  # IEEE: exponent all ones is infinity (mantissa 0) or NaN
        infinity = all_ones & ~((1 << mantissa) - 1)
        signed_infinity = _bitcast(
            binary("or", binary("and", _bitcast(value, uint32), 1 << 31), F32_INF), float32
        )
        value = Select(binary("eq", magnitude, infinity), signed_infinity, value)
        value = Select(binary("gt", magnitude, infinity), nan, value)
    elif source.has_nan:  # the all-ones magnitude
        value = Select(binary("eq", magnitude, all_ones), nan, value)
    return lowering.let("decoded", value)


def round_to_odd_float32(lowering: Lowering, value: Expr) -> Expr:
    """An integer register of at most 32 bits (or any integer whose value float64 holds exactly) narrowed to
    float32 by rounding to odd: toward zero, then the last bit set when that was inexact. Rounding that
    float32 again to a format of at most 21 mantissa bits gives what rounding the integer directly would:
    no double rounding."""
    truncated = lowering.let("truncated", CastExpr(value, float32, "zero"))
    inexact = BinaryExpr("ne", CastExpr(truncated, value.type.dtype), value)
    bits = _bitcast(truncated, uint32)
    return lowering.let("narrowed", _bitcast(Select(inexact, binary("or", bits, 1), bits), float32))


def encode_float(lowering: Lowering, value: Expr, target: DType, rounding: str) -> Expr:
    """The codes (``uint32``) of the float32 register ``value`` rounded to the low-bit float ``target``.

    As ``tilevm.dtypes.codec`` does it: the value's significand ``sig`` (24 bits, the implicit one
    included) is divided by the target's step in the value's binade (``2**shift``, the binade clamped below
    at the target's smallest), rounded, and added to the binade's first code; a carry into the next binade
    needs nothing more. Too large gives the overflow code, infinity and NaN their codes, and the sign goes
    on top (signed formats) or sends the value to code 0 (unsigned)."""
    mantissa = target.mantissa_bits
    smallest = (1 if target.has_subnormals else 0) - target.bias
    bits = lowering.let("bits", _bitcast(value, uint32))
    magnitude = lowering.let("magnitude", _bitcast(binary("and", bits, 0x7FFF_FFFF), int32))
    field = lowering.let("field", binary("shr", magnitude, F32_MANTISSA))
    fraction = binary("and", magnitude, (1 << F32_MANTISSA) - 1)
    significand = lowering.let(
        "significand", Select(binary("eq", field, 0), fraction, binary("or", fraction, 1 << F32_MANTISSA))
    )
    binade = lowering.let("binade", binary("max", binary("sub", field, F32_BIAS), smallest))
    # float32's subnormals have the step of its smallest binade (field 1), though their field is 0
    shift = binary("add", binary("sub", binade, binary("max", field, 1)), F32_BIAS + F32_MANTISSA - mantissa)
    # beyond 25 the quotient and the rounding bit are 0 already
    shift = lowering.let("shift", binary("min", shift, F32_MANTISSA + 2))
    quotient = _rounded_quotient(lowering, significand, shift, rounding)
    code = binary("add", binary("shl", binary("sub", binade, smallest), mantissa), quotient)
    if not target.has_subnormals:  # e8m0: the binade's first code is its significand 1
        code = binary("max", binary("sub", code, 1 << mantissa), 0)
    overflow = infinity_code(target) if rounding == "nearest" else target.max_magnitude_code
    code = binary("min", code, overflow)
    code = Select(binary("eq", magnitude, F32_INF), _splat(magnitude, infinity_code(target), int32), code)
    code = lowering.let("code", _bitcast(code, uint32))
    sign = binary("shr", bits, 31)
    if target.is_signed:
        code = binary("or", code, binary("shl", sign, target.exponent_bits + mantissa))
    else:
        code = Select(binary("ne", sign, 0), _splat(sign, 0, uint32), code)
    nan = _splat(sign, nan_code(target), uint32)
    return lowering.let("codes", Select(binary("gt", magnitude, F32_INF), nan, code))


def _rounded_quotient(lowering: Lowering, significand: Expr, shift: Expr, rounding: str) -> Expr:
    """``significand / 2**shift`` rounded toward zero, or to nearest even: adding half the divisor less one,
    plus one more when the truncated quotient is odd, carries exactly the values above half (and the ties
    of odd quotients) past the next multiple."""
    if rounding == "zero":
        return BinaryExpr("shr", significand, shift)
    one = _splat(shift, 1, int32)
    half_less_one = binary("sub", BinaryExpr("shr", BinaryExpr("shl", one, shift), one), 1)
    odd = binary("and", BinaryExpr("shr", significand, shift), 1)
    total = BinaryExpr("add", BinaryExpr("add", significand, half_less_one), odd)
    return lowering.let("quotient", BinaryExpr("shr", total, shift))


def is_nonzero(lowering: Lowering, codes: Expr, source: DType) -> Expr:
    """The bool register ``x != 0`` for the codes (``uint32``) of the low-bit ``source`` (NaN is not zero;
    e8m0 has no zero; -0.0 is zero)."""
    if source.is_float and not source.has_subnormals:
        return _splat(codes, True, boolean)
    magnitude_bits = source.exponent_bits + source.mantissa_bits if source.is_float else source.nbits
    return lowering.let("nonzero", binary("ne", binary("and", codes, (1 << magnitude_bits) - 1), 0))
