"""Elementwise arithmetic on carriers, shared by scalar expressions and tile instructions.

Every result is computed exactly or in float64 / int64 (uint64 for uint64) and then rounded into the
operand dtype: floats to nearest even (``round_to_dtype``), integers by two's-complement wrap-around.

- ``floordiv`` and ``mod`` on integers follow Python (floor; the remainder has the divisor's sign); a zero
  divisor raises ``ExecutionError``. Float ``div`` by zero gives inf or NaN, as IEEE says.
- shift amounts outside [0, nbits) (the amount read as unsigned, as PTX does) give 0 for ``shl`` and for
  ``shr`` of unsigned values, and the sign fill for ``shr`` of signed values.
- ``max`` and ``min`` on floats ignore NaN (``np.fmax``, PTX ``max.f32``); comparisons with NaN are false
  except ``ne``.
- ``not`` is bitwise invert on integers and logical not on bool; bool arithmetic is done on 0/1 and the
  result is ``!= 0``.

>>> from tilevm.dtypes import int4, float16
>>> binary("add", np.array([7, -8]), np.array([1, -1]), int4).tolist()
[-8, 7]
>>> binary("floordiv", np.array([-7]), np.array([2]), int4).tolist()
[-4]
>>> unary("not", np.array([0]), int4).tolist()
[-1]
>>> binary("max", np.array([np.nan]), np.array([1.0]), float16).tolist()
[1.0]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tilevm.dtypes import DType
from tilevm.ir.expr import COMPARISON_OPS
from tilevm.runtime.reference.carrier import to_carrier
from tilevm.runtime.reference.errors import ExecutionError

__all__ = ["binary", "unary"]

Ufunc = Callable[..., np.ndarray]

FLOAT_UNARY: dict[str, Ufunc] = {
    "neg": np.negative,
    "abs": np.abs,
    "exp": np.exp,
    "exp2": np.exp2,
    "log": np.log,
    "log2": np.log2,
    "sqrt": np.sqrt,
    "rsqrt": lambda x: 1.0 / np.sqrt(x),
    "sin": np.sin,
    "cos": np.cos,
    "tanh": np.tanh,
}
INTEGER_UNARY: dict[str, Ufunc] = {"neg": np.negative, "not": np.invert, "abs": np.abs}

COMPARISONS: dict[str, Ufunc] = {
    "eq": np.equal,
    "ne": np.not_equal,
    "lt": np.less,
    "le": np.less_equal,
    "gt": np.greater,
    "ge": np.greater_equal,
}
FLOAT_BINARY: dict[str, Ufunc] = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "max": np.fmax,
    "min": np.fmin,
}
# On int64 (or uint64) carriers; add, sub, mul and the bitwise ops wrap modulo 2^64, which the final
# wrap into n bits keeps exact. floordiv and mod are numpy's, which floor as Python does.
INTEGER_BINARY: dict[str, Ufunc] = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "max": np.maximum,
    "min": np.minimum,
    "and": np.bitwise_and,
    "or": np.bitwise_or,
    "xor": np.bitwise_xor,
    "floordiv": np.floor_divide,
    "mod": np.mod,
}


def unary(op: str, value: np.ndarray, dtype: DType) -> np.ndarray:
    """``op value`` for a carrier ``value`` of ``dtype``, rounded back into ``dtype``."""
    if dtype.is_float:
        with np.errstate(all="ignore"):
            return to_carrier(FLOAT_UNARY[op](value.astype(np.float64)), dtype)
    if dtype.kind == "bool":
        return np.asarray(~value if op == "not" else value.copy())
    if op == "abs" and not dtype.is_signed:
        return value.copy()
    with np.errstate(all="ignore"):
        return to_carrier(INTEGER_UNARY[op](value), dtype)


def binary(op: str, lhs: np.ndarray, rhs: np.ndarray, dtype: DType) -> np.ndarray:
    """``lhs op rhs`` for carriers of ``dtype`` (broadcasting); comparisons give bool carriers."""
    if op in COMPARISON_OPS:
        return np.asarray(COMPARISONS[op](lhs, rhs))
    if dtype.is_float:
        with np.errstate(all="ignore"):
            return to_carrier(FLOAT_BINARY[op](lhs.astype(np.float64), rhs.astype(np.float64)), dtype)
    if dtype.kind == "bool":
        lhs, rhs = lhs.astype(np.int64), rhs.astype(np.int64)
    if op in ("floordiv", "mod") and np.any(rhs == 0):
        raise ExecutionError(f"integer division by zero in '{op}' on {dtype}")
    with np.errstate(all="ignore"):
        if op in ("shl", "shr"):
            return to_carrier(shift(op, lhs, rhs, dtype), dtype)
        return to_carrier(INTEGER_BINARY[op](lhs, rhs), dtype)


def shift(op: str, value: np.ndarray, amount: np.ndarray, dtype: DType) -> np.ndarray:
    """``value << amount`` or ``value >> amount`` (arithmetic for signed dtypes), with PTX's clamping."""
    nbits = dtype.nbits
    value, amount = np.broadcast_arrays(value, amount)
    too_far = (amount < 0) | (amount >= nbits)
    if op == "shr" and dtype.is_signed:
        # The carrier is sign-extended, so a shift by nbits - 1 leaves only copies of the sign bit.
        return value >> np.where(too_far, nbits - 1, amount).astype(value.dtype)
    safe = np.where(too_far, 0, amount).astype(value.dtype)
    shifted = value << safe if op == "shl" else value >> safe
    return np.where(too_far, np.zeros_like(value), shifted)
