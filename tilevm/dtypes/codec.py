"""The numpy reference codec: `encode` values to integer codes, `decode` codes to values.

This is the ground truth that kernels are tested against, so it is exact: values are float64, formats
are handled by integer bit manipulation and exact power-of-two scaling, and every format (float32
included) is rounded in one step from the float64 input, never through an intermediate format.

Rules (see also `tilevm.dtypes.types` for the formats):

- rounding "nearest" is to nearest, ties to the even significand. For m >= 1 that is the even mantissa
  (the even code); for formats without mantissa bits (e8m0, float*_e*m0) a tie between 2^k and 2^(k+1)
  goes up, since 2^(k+1) is 2 * 2^k (even) and 2^k is 1 * 2^k (odd), as torch's float8_e8m0fnu does.
- out of range: formats without inf (integers too) saturate to the largest finite value of that sign;
  formats with inf (float8_e5m2, float16, bfloat16, float32) follow IEEE round-to-nearest and give inf
  beyond max + half an ulp. Rounding "zero" and "stochastic" saturate to max for every format (only an
  infinite input gives inf). +-inf inputs give +-inf where the format has it, and +-max otherwise.
- NaN gives the canonical positive NaN where the format has one (IEEE formats: the quiet NaN, exponent
  all ones and only the top mantissa bit set; e4m3fn and ue4m3: 0x7F; e8m0: 0xFF), and code 0 (+0)
  in every format without NaN, integers and finite-only floats alike. For bool, NaN is True.
- -0.0 gives the negative-zero code (sign bit set) in signed floats, and so does a negative value that
  rounds to zero; decoding it gives -0.0, so encode(decode(c)) == c for every non-NaN code.
- negative values (and -inf) give code 0 in unsigned formats: 0 for uint{n} and ue4m3, 2^-127 for e8m0.
- e8m0 has no zero: everything at or below 2^-127 (0 included) gives code 0.
- bool: encode is truthiness (x != 0, as numpy's and torch's casts to bool), whatever the rounding.
- integer inputs go through float64, so int64/uint64 values above 2^53 are not exact.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tilevm.dtypes.parse import dtype as as_dtype
from tilevm.dtypes.rounding import check_rounding, round_to_integer
from tilevm.dtypes.types import DType

__all__ = ["code_storage_dtype", "decode", "encode", "validate_codes"]


def code_storage_dtype(dtype: DType | str) -> type[np.unsignedinteger]:
    """The numpy type of `dtype`'s codes: uint8 for widths <= 8, else uint16, uint32 or uint64.

    >>> from tilevm.dtypes.types import float16, int4
    >>> code_storage_dtype(float16).__name__, code_storage_dtype(int4).__name__
    ('uint16', 'uint8')
    """
    dtype = as_dtype(dtype)
    for storage in (np.uint8, np.uint16, np.uint32):
        if dtype.nbits <= np.iinfo(storage).bits:
            return storage
    return np.uint64


def encode(
    x: npt.ArrayLike,
    dtype: DType | str,
    rounding: str = "nearest",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Encode values `x` (converted to float64) as integer codes of `dtype`, with the module's rules.

    `dtype` is a DType or a name that `dtype()` parses. `rounding` is "nearest" (ties to even), "zero"
    (toward zero) or "stochastic" (needs `rng`, a numpy Generator).

    >>> from tilevm.dtypes.types import float4_e2m1, int4
    >>> encode([0.25, 0.75, 5.0, -7.0, float("nan")], float4_e2m1)
    array([ 0,  2,  6, 15,  0], dtype=uint8)
    >>> encode([2.5, -3.5, 9.0], int4)
    array([ 2, 12,  7], dtype=uint8)
    """
    dtype = as_dtype(dtype)
    check_rounding(rounding, rng)
    values = np.asarray(x, dtype=np.float64)
    if dtype.kind == "bool":
        codes = (values != 0).astype(np.uint64)
    elif dtype.is_integer:
        codes = _encode_integer(values, dtype, rounding, rng)
    else:
        codes = _encode_float(values, dtype, rounding, rng).astype(np.uint64)
    return codes.astype(code_storage_dtype(dtype))


def _encode_integer(
    values: np.ndarray, dtype: DType, rounding: str, rng: np.random.Generator | None
) -> np.ndarray:
    # min_value and max_value + 1 are 0 or powers of two, so exact in float64 even for 64 bits.
    low, high = float(dtype.min_value), float(dtype.max_value + 1)
    # Clipping to [low - 1, high] first removes inf and keeps every out-of-range value out of range
    # after rounding; NaN becomes 0.
    clipped = np.clip(np.nan_to_num(values, nan=0.0), low - 1, high)
    rounded = round_to_integer(clipped, rounding, rng)
    too_high = rounded >= high
    rounded = np.where(too_high, 0.0, np.maximum(rounded, low))
    # Signed values go through int64 to get their two's complement bits; unsigned ones may exceed 2^63.
    integers = rounded.astype(np.int64).view(np.uint64) if dtype.is_signed else rounded.astype(np.uint64)
    integers = np.where(too_high, np.uint64(dtype.max_value), integers)
    return integers & np.uint64((1 << dtype.nbits) - 1)


def _encode_float(
    values: np.ndarray, dtype: DType, rounding: str, rng: np.random.Generator | None
) -> np.ndarray:
    magnitude = np.abs(values)
    finite = np.isfinite(magnitude)
    codes = _round_magnitude(np.where(finite, magnitude, 0.0), dtype, rounding, rng)
    overflow = infinity_code(dtype) if rounding == "nearest" else dtype.max_magnitude_code
    codes = np.where(codes > dtype.max_magnitude_code, overflow, codes)
    codes = np.where(np.isinf(magnitude), infinity_code(dtype), codes)
    negative = np.signbit(values)
    if dtype.is_signed:
        codes = codes | (negative.astype(np.int64) << (dtype.value_bits - 1))
    else:
        codes = np.where(negative, 0, codes)
    return np.where(np.isnan(values), nan_code(dtype), codes)


def _round_magnitude(
    magnitude: np.ndarray, dtype: DType, rounding: str, rng: np.random.Generator | None
) -> np.ndarray:
    """Magnitude codes (int64, possibly beyond max) of finite non-negative float64 values."""
    m = dtype.mantissa_bits
    # The smallest binade [2^e0, 2^(e0+1)) has step 2^(e0 - m); below it, subnormals continue with the
    # same step down to 0 (e0 = 1 - bias), or, without subnormals (e8m0), field 0 is normal (e0 = -bias).
    smallest = (1 if dtype.has_subnormals else 0) - dtype.bias
    _, frexp_exponent = np.frexp(magnitude)  # magnitude in [2^(frexp_exponent - 1), 2^frexp_exponent)
    exponent = np.maximum(frexp_exponent.astype(np.int64) - 1, smallest)
    exponent = np.where(magnitude == 0, smallest, exponent)  # frexp(0) reports 0, not the smallest binade
    # Scaling by a power of two is exact here: down only when the result is >= 2^m >= 1, never subnormal.
    # The neighbours of the value are then consecutive integers: the significand at the binade's step.
    significand = round_to_integer(np.ldexp(magnitude, m - exponent), rounding, rng).astype(np.int64)
    # With subnormals, code = ((exponent - smallest + 1) << m) + significand - 2^m; a significand that
    # rounds up to 2^(m+1) carries into the exponent field, which is the next binade's first code.
    codes = ((exponent - smallest) << m) + significand
    if not dtype.has_subnormals:
        codes = np.maximum(codes - (1 << m), 0)  # below 2^-bias saturates to the smallest value
    return codes


def infinity_code(dtype: DType) -> int:
    """The code of +inf, or of +max for formats without inf (where inf saturates).

    >>> from tilevm.dtypes.types import float8_e5m2, float8_e4m3
    >>> hex(infinity_code(float8_e5m2)), hex(infinity_code(float8_e4m3))
    ('0x7c', '0x7e')
    """
    if dtype.has_inf:
        return ((1 << dtype.exponent_bits) - 1) << dtype.mantissa_bits
    return dtype.max_magnitude_code


def nan_code(dtype: DType) -> int:
    """The code NaN encodes to: the canonical positive NaN, or 0 where the format has no NaN.

    >>> from tilevm.dtypes.types import float8_e5m2, float8_e4m3, float16, e8m0, float6_e3m2
    >>> [hex(nan_code(d)) for d in (float8_e5m2, float8_e4m3, float16, e8m0, float6_e3m2)]
    ['0x7e', '0x7f', '0x7e00', '0xff', '0x0']
    """
    if dtype.has_inf:  # IEEE quiet NaN: exponent all ones, top mantissa bit set
        return infinity_code(dtype) | (1 << (dtype.mantissa_bits - 1))
    if dtype.has_nan:  # "fn" formats: the all-ones magnitude
        return (1 << (dtype.exponent_bits + dtype.mantissa_bits)) - 1
    return 0


def validate_codes(codes: npt.ArrayLike, dtype: DType | str) -> np.ndarray:
    """`codes` as a uint64 array, after checking they are integers in 0 .. dtype.num_codes - 1.

    >>> from tilevm.dtypes.types import ue4m3
    >>> validate_codes([0, 127], ue4m3)
    array([  0, 127], dtype=uint64)
    """
    dtype = as_dtype(dtype)
    array = np.asarray(codes)
    if array.dtype.kind not in "iub":
        raise ValueError(f"codes of {dtype.name} must be integers, not {array.dtype}")
    if array.dtype.kind == "i" and (array < 0).any():
        _raise_out_of_range(array[array < 0].flat[0], dtype)
    wide = array.astype(np.uint64)
    if dtype.value_bits < 64 and (wide >= dtype.num_codes).any():
        _raise_out_of_range(wide[wide >= dtype.num_codes].flat[0], dtype)
    return wide


def _raise_out_of_range(code: int, dtype: DType) -> None:
    why = " (ue4m3 is stored in 8 bits whose top bit is zero)" if dtype.value_bits < dtype.nbits else ""
    raise ValueError(
        f"code {int(code)} is out of range for {dtype.name}: valid codes are 0..{dtype.num_codes - 1}{why}"
    )


def decode(codes: npt.ArrayLike, dtype: DType | str) -> np.ndarray:
    """Decode integer codes of `dtype` to values.

    The result is float32 for every float format (float32 holds all their values exactly, e8m0's 2^-127
    as a subnormal) and for integers of up to 16 bits and bool; float64 for 32- and 64-bit integers
    (int64/uint64 values beyond 2^53 are rounded). Codes out of range raise ValueError.

    >>> from tilevm.dtypes.types import float4_e2m1, int4
    >>> decode([0, 2, 6, 15], float4_e2m1), decode([2, 12, 7], int4)
    (array([ 0.,  1.,  4., -6.], dtype=float32), array([ 2., -4.,  7.], dtype=float32))
    """
    dtype = as_dtype(dtype)
    wide = validate_codes(codes, dtype)
    if dtype.is_float:
        return _decode_float(wide.astype(np.int64), dtype).astype(np.float32)
    values = _decode_integer(wide, dtype)
    return values.astype(np.float32 if dtype.nbits <= 16 else np.float64)


def _decode_integer(codes: np.ndarray, dtype: DType) -> np.ndarray:
    if not dtype.is_signed:
        return codes
    if dtype.nbits == 64:
        return codes.view(np.int64)
    signed = codes.astype(np.int64)
    # two's complement: a code with the top bit set stands for code - 2^n
    return signed - ((signed >> (dtype.nbits - 1)) << dtype.nbits)


def _decode_float(codes: np.ndarray, dtype: DType) -> np.ndarray:
    e, m = dtype.exponent_bits, dtype.mantissa_bits
    magnitude = codes & ((1 << (e + m)) - 1)
    exponent_field = magnitude >> m
    mantissa_field = magnitude & ((1 << m) - 1)
    subnormal = (exponent_field == 0) & dtype.has_subnormals
    significand = np.where(subnormal, mantissa_field, mantissa_field + (1 << m))
    exponent = np.where(subnormal, 1, exponent_field) - dtype.bias - m
    values = np.ldexp(significand.astype(np.float64), exponent)
    if dtype.has_inf:
        special = np.where(mantissa_field == 0, np.inf, np.nan)
        values = np.where(exponent_field == (1 << e) - 1, special, values)
    elif dtype.has_nan:
        values = np.where(magnitude == (1 << (e + m)) - 1, np.nan, values)
    if dtype.is_signed:
        values = np.where(codes >> (e + m) == 1, -values, values)  # -0.0 for the negative-zero code
    return values
