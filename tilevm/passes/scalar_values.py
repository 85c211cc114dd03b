"""Scalar arithmetic on Python values at compile time, with the reference executor's semantics exactly.

A value of an integer dtype is a Python int in the dtype's range, of a float dtype a Python float on the
dtype's grid, of ``bool`` a Python bool. The rules are those of ``tilevm.ir.expr`` and the executor
(``runtime/reference/arith.py``, ``convert.py``): integers wrap around at the dtype's width; ``floordiv`` and
``mod`` floor as Python does; shifts by ``nbits`` or more (or by a negative amount) give 0, or the sign fill
for ``shr`` of a signed value; float results are computed in float64 and rounded to the dtype (nearest even,
saturating where the format has no inf); ``max`` and ``min`` ignore NaN.

Operations whose result the target computes approximately (``exp``, ``sin``, ``rsqrt``, ...) and integer
division by zero (an error when executed) are not computed here: they return None, so the expression stays.

>>> from tilevm.dtypes import float4_e2m1, int4, uint8
>>> binary_value("add", 7, 1, int4), binary_value("floordiv", -7, 2, int4), binary_value("shl", 1, 9, uint8)
(-8, -4, 0)
>>> binary_value("mul", 1.5, 3.0, float4_e2m1), binary_value("mod", 3, 0, int4) is None
(4.0, True)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tilevm.dtypes import DType, encode, round_to_dtype
from tilevm.ir.expr import COMPARISON_OPS

__all__ = ["binary_value", "cast_value", "to_value", "unary_value"]

Value = int | float | bool

_COMPARISONS: dict[str, Callable[[Value, Value], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
}
# Exact results, rounded afterwards by to_value.
_FLOAT_BINARY: dict[str, Callable[[np.float64, np.float64], np.float64]] = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "max": np.fmax,
    "min": np.fmin,
}
_INTEGER_BINARY: dict[str, Callable[[int, int], int]] = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "max": max,
    "min": min,
    "and": lambda a, b: a & b,
    "or": lambda a, b: a | b,
    "xor": lambda a, b: a ^ b,
    "floordiv": lambda a, b: a // b,
    "mod": lambda a, b: a % b,
}
# Only the correctly rounded functions: the target computes exp, log, sin, ... approximately.
_FLOAT_UNARY: dict[str, Callable[[np.float64], np.float64]] = {
    "neg": np.negative,
    "abs": np.abs,
    "sqrt": np.sqrt,
}
_INTEGER_UNARY: dict[str, Callable[[int], int]] = {"neg": lambda a: -a, "not": lambda a: ~a, "abs": abs}


def to_value(value: Value, dtype: DType, rounding: str = "nearest") -> Value:
    """``value`` (exact) as a value of ``dtype``: wrapped (integers), rounded (floats) or ``!= 0`` (bool)."""
    if dtype.kind == "bool":
        return bool(value != 0)
    if dtype.is_integer:
        return _wrap(int(value), dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        return float(round_to_dtype(np.array([value], dtype=np.float64), dtype, rounding)[0])


def _wrap(value: int, dtype: DType) -> int:
    """Two's-complement wrap-around into ``dtype``'s n bits."""
    modulus = 1 << dtype.nbits
    value %= modulus
    return value - modulus if dtype.is_signed and value >= modulus >> 1 else value


def unary_value(op: str, value: Value, dtype: DType) -> Value | None:
    """``op value`` for a value of ``dtype``, or None when it is left to run time."""
    if dtype.kind == "bool":
        return (not value) if op == "not" else value
    if dtype.is_float:
        function = _FLOAT_UNARY.get(op)
        if function is None:
            return None
        with np.errstate(all="ignore"):
            return to_value(float(function(np.float64(value))), dtype)
    return to_value(_INTEGER_UNARY[op](value), dtype)


def binary_value(op: str, lhs: Value, rhs: Value, dtype: DType) -> Value | None:
    """``lhs op rhs`` for values of ``dtype`` (a bool for comparisons), or None when left to run time."""
    if op in COMPARISON_OPS:
        return _COMPARISONS[op](lhs, rhs)
    if dtype.is_float:
        with np.errstate(all="ignore"):
            return to_value(float(_FLOAT_BINARY[op](np.float64(lhs), np.float64(rhs))), dtype)
    lhs, rhs = int(lhs), int(rhs)  # bool arithmetic is done on 0 and 1, then read as != 0
    if op in ("floordiv", "mod") and rhs == 0:
        return None
    if op in ("shl", "shr"):
        return to_value(_shift(op, lhs, rhs, dtype), dtype)
    return to_value(_INTEGER_BINARY[op](lhs, rhs), dtype)


def _shift(op: str, value: int, amount: int, dtype: DType) -> int:
    too_far = not 0 <= amount < dtype.nbits
    if op == "shr" and dtype.is_signed:
        return value >> (dtype.nbits - 1 if too_far else amount)  # an arithmetic shift: Python's >> on ints
    if too_far:
        return 0
    return value << amount if op == "shl" else value >> amount


def cast_value(value: Value, source: DType, target: DType, rounding: str) -> Value:
    """``value`` of ``source`` converted to ``target``, as the ``cast`` instruction converts.

    >>> from tilevm.dtypes import float32, int4
    >>> cast_value(7.6, float32, int4, "nearest"), cast_value(-100.0, float32, int4, "nearest")
    (7, -8)
    """
    if target.kind == "bool":
        return bool(value != 0)
    if source.kind == "bool":
        return to_value(int(value), target)
    if source.is_float and target.is_integer:
        # encode rounds, saturates to the range and sends NaN to 0: the float-to-integer rule exactly.
        return _wrap(int(encode(np.array([value], dtype=np.float64), target, rounding)[0]), target)
    if target.is_float:
        return to_value(float(value), target, rounding)
    return to_value(value, target)
