"""Which machine dtype an elementwise operation on a storage-only dtype computes in.

In Thread IR, arithmetic runs only on the *machine dtypes* (``MACHINE_DTYPES``: bool, the 8- to 64-bit
integers, float16, bfloat16, float32). A low-bit integer or small float is widened (by
``tilevm.passes.lower.casts.convert``), computed on, and narrowed back. That must give exactly Tile IR's
result (``tilevm.ir.semantics``: the exact result, rounded once into the dtype; integers wrap), so the wide
type is chosen per operation:

- integers: ``int{n}`` computes in int8, ``uint{n}`` in uint8. Add, sub, mul, neg, not and the bitwise ops
  wrap modulo 2^8, which the narrowing wrap modulo 2^n keeps; floordiv, mod, max, min, abs and comparisons
  of n-bit values are exact in 8 bits (``-64 // -1`` is 64). A shift amount keeps its value when widened
  (sign-extended); amounts of n or more give 0 (or the sign fill) both in n bits and, after the narrowing
  wrap, in 8 bits; a negative amount is huge when read as unsigned in both widths.
- floats of ``p`` significant bits: the narrowest of float16 and float32 that holds every value of the
  format exactly and where the operation's one rounding in the wide type is innocuous:

  - exact operations (neg, abs, max, min, comparisons, floor, ceil, round, trunc): the values fit;
  - add, sub, mul, div, sqrt: a result rounded to ``P >= 2p + 2`` bits and then to ``p`` bits is the
    result rounded once (Figueroa, "When is double rounding innocuous?", 1995). ``P`` is the wide type's
    precision where the small format's midpoints are: its smallest midpoint (half the smallest subnormal;
    e8m0, which has no zero, saturates below its smallest value) may lie among the wide type's subnormals,
    which have fewer bits. A result beyond the wide type's largest value is inf there, and narrows as the
    exact result does (to inf, or saturated to the largest value where the format has no inf);
  - the approximate functions (exp, log, sin, rsqrt, ...): the values fit, in float32 at least, as the
    target's approximate instructions are float32's.

  ``tests/test_lower_registers_widening.py`` checks every choice on every pair of codes of every low-bit
  float against ``tilevm.ir.semantics``.

>>> from tilevm.dtypes import float4_e2m1, float8_e4m3, int4, uint3
>>> [str(arithmetic_dtype(op, float8_e4m3)) for op in ("max", "add", "mul", "exp")]
['float16', 'float16', 'float16', 'float32']
>>> str(arithmetic_dtype("mul", float4_e2m1)), str(arithmetic_dtype("shl", int4)), str(code_dtype(uint3))
('float16', 'int8', 'uint3')
"""

from __future__ import annotations

import math
from typing import NamedTuple

from tilevm.dtypes import (
    DType,
    bfloat16,
    boolean,
    float16,
    float32,
    int8,
    int16,
    int32,
    int64,
    int_type,
    uint8,
    uint16,
    uint32,
    uint64,
)
from tilevm.ir.expr import COMPARISON_OPS, ROUNDING_OPS

__all__ = ["MACHINE_DTYPES", "arithmetic_dtype", "code_dtype", "is_machine"]

#: the dtypes Thread IR computes on (the others are storage only: loaded, stored, moved, converted)
MACHINE_DTYPES = frozenset(
    {boolean, int8, int16, int32, int64, uint8, uint16, uint32, uint64, float16, bfloat16, float32}
)
#: the wide floats a small float computes in, narrowest first
WIDE_FLOATS = (float16, float32)

_EXACT_OPS = frozenset({"neg", "abs", "max", "min", *COMPARISON_OPS, *ROUNDING_OPS})
_ROUNDED_OPS = frozenset({"add", "sub", "mul", "div", "sqrt"})


class _Format(NamedTuple):
    """What the choice needs to know of a float format: its significant bits, its smallest positive value
    (a subnormal where there are subnormals), the smallest midpoint between two of its values (half the
    smallest positive value; the smallest value itself without zero, where all below saturates), and its
    largest finite value."""

    precision: int
    smallest: float
    smallest_midpoint: float
    largest: float


def is_machine(dtype: DType) -> bool:
    """Whether Thread IR computes on ``dtype`` directly."""
    return dtype in MACHINE_DTYPES


def code_dtype(dtype: DType) -> DType:
    """The unsigned integer of ``dtype``'s width, whose values are ``dtype``'s codes: moving codes moves the
    values bit for bit (NaN payloads and -0.0 included), so a select or a copy may work on them."""
    return int_type(dtype.nbits, signed=False)


def arithmetic_dtype(op: str, dtype: DType) -> DType:
    """The machine dtype in which ``op`` (a unary or binary op name) on ``dtype`` is computed exactly."""
    if is_machine(dtype):
        return dtype
    if dtype.is_integer:
        return int8 if dtype.is_signed else uint8
    small = _format(dtype)
    for wide in WIDE_FLOATS:
        if _fits(op, small, _format(wide)):
            return wide
    raise ValueError(f"no machine float computes '{op}' on {dtype} exactly")


def _format(dtype: DType) -> _Format:
    exponent_min = 1 - dtype.bias if dtype.has_subnormals else -dtype.bias
    smallest = math.ldexp(1.0, exponent_min - (dtype.mantissa_bits if dtype.has_subnormals else 0))
    smallest_midpoint = smallest / 2 if dtype.min_value <= 0 else smallest
    return _Format(dtype.mantissa_bits + 1, smallest, smallest_midpoint, float(dtype.max_value))


def _fits(op: str, small: _Format, wide: _Format) -> bool:
    holds = (
        small.precision <= wide.precision
        and small.smallest >= wide.smallest
        and small.largest <= wide.largest
    )
    if not holds or op in _EXACT_OPS:
        return holds
    if op in _ROUNDED_OPS:
        # the wide type's bits at the small format's smallest midpoint (all of them once it is normal)
        bits_there = math.floor(math.log2(small.smallest_midpoint / wide.smallest)) + 1
        return min(wide.precision, bits_there) >= 2 * small.precision + 2
    return wide.precision >= _format(float32).precision
