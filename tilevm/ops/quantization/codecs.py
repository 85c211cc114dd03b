"""Vectorised torch versions of the reference codec (`tilevm.dtypes.encode` / `decode`) for the code and
scale dtypes of quantized weights, on the tensors' own device, and a float64 narrowing that rounds once.

They follow the codec's rules (round to nearest, ties to even; the negative-zero code for negative values
that round to zero) with one difference: values beyond the format's range saturate to its largest finite
value, also in float8_e5m2 (the codec gives inf there), as quantization needs. The numpy codec is the
reference they are tested against; it is far too slow for a 28672 x 8192 weight.

>>> import torch, tilevm as tv
>>> encode_float(torch.tensor([0.25, 0.75, 5.0, -7.0], dtype=torch.float64), tv.float4_e2m1).tolist()
[0, 2, 6, 15]
>>> decode(torch.tensor([0, 2, 6, 15], dtype=torch.uint8), tv.float4_e2m1).tolist()
[0.0, 1.0, 4.0, -6.0]
"""

from __future__ import annotations

import torch

import tilevm as tv

__all__ = ["decode", "encode", "encode_float", "encode_integer", "power_of_two", "round_float64"]

#: float64's exponent bias and where its exponent field starts
_FLOAT64_BIAS, _FLOAT64_MANTISSA_BITS = 1023, 52


def power_of_two(exponent: torch.Tensor) -> torch.Tensor:
    """``2.0 ** exponent`` in float64, exact, for integer exponents in -1022 .. 1023 (normal float64).

    Built from the bit pattern (biased exponent, zero mantissa), so no ``pow`` rounding can creep in.
    """
    biased = exponent.to(torch.int64) + _FLOAT64_BIAS
    return (biased << _FLOAT64_MANTISSA_BITS).view(torch.float64)


def encode_integer(values: torch.Tensor, dtype: tv.DType) -> torch.Tensor:
    """uint8 codes (two's complement for int) of float64 ``values`` rounded to nearest even, saturating."""
    rounded = torch.round(values).clamp(dtype.min_value, dtype.max_value)
    return (rounded.to(torch.int64) & ((1 << dtype.nbits) - 1)).to(torch.uint8)


def encode_float(values: torch.Tensor, dtype: tv.DType) -> torch.Tensor:
    """uint8 codes of finite float64 ``values`` in a float format with subnormals (every low-bit float and
    ue4m3), rounded to nearest even and saturating to the largest finite magnitude.

    As in the codec: the value's binade ``[2^e, 2^(e+1))`` (at least the smallest one, where subnormals
    continue with the same step) has step ``2^(e - m)``, so ``magnitude * 2^(m - e)`` rounded to an integer
    is the significand, and ``((e - smallest) << m) + significand`` the magnitude code (a significand that
    rounds up to ``2^(m + 1)`` carries into the next binade's first code). Clamping to the largest finite
    value first makes round-to-nearest saturate.
    """
    m = dtype.mantissa_bits
    smallest = 1 - dtype.bias
    magnitude = values.abs().clamp(max=float(dtype.max_value))
    _, frexp_exponent = torch.frexp(magnitude)  # magnitude in [2^(frexp_exponent - 1), 2^frexp_exponent)
    exponent = (frexp_exponent.to(torch.int64) - 1).clamp(min=smallest)
    exponent = torch.where(magnitude == 0, smallest, exponent)  # frexp(0) reports 0, not the smallest binade
    significand = torch.round(magnitude * power_of_two(m - exponent)).to(torch.int64)
    codes = ((exponent - smallest) << m) + significand
    if dtype.is_signed:
        codes = codes | (torch.signbit(values).to(torch.int64) << (dtype.value_bits - 1))
    return codes.to(torch.uint8)


def encode(values: torch.Tensor, dtype: tv.DType) -> torch.Tensor:
    """uint8 codes of float64 ``values`` in a code dtype: `encode_integer` or `encode_float`."""
    return encode_float(values, dtype) if dtype.is_float else encode_integer(values, dtype)


def decode(codes: torch.Tensor, dtype: tv.DType) -> torch.Tensor:
    """The float64 values of uint8 ``codes`` of a dtype of at most 8 bits (a table lookup; the table is
    the reference codec's, so decoding agrees with it exactly)."""
    table = torch.from_numpy(tv.representable_values(dtype).astype("float64")).to(codes.device)
    return table[codes.to(torch.int64)]


def round_float64(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """float64 ``values`` rounded once, to nearest even, to float64, float32, float16 or bfloat16.

    torch narrows float64 to float16 and bfloat16 through float32, which rounds twice (a value just above
    a float16 midpoint can first round onto it, then to even). Rounding to float32 *to odd* first (toward
    zero, then setting the last bit when inexact) keeps enough information with 13 or more spare bits that
    the second rounding is the correct one.
    """
    if dtype in (torch.float64, torch.float32):
        return values.to(dtype)
    if dtype not in (torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be torch.float64, float32, float16 or bfloat16, not {dtype}")
    nearest = values.to(torch.float32)
    widened = nearest.to(torch.float64)
    toward_zero = nearest.view(torch.int32) - (widened.abs() > values.abs()).to(torch.int32)
    odd = toward_zero | (widened != values).to(torch.int32)
    return odd.view(torch.float32).to(dtype)
