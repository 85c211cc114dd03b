"""What Tile IR's operators compute, defined once: the reference executor applies these functions to whole
tiles and to scalar expressions, and ``fold_constants`` to constants at compile time, so the two agree bit
for bit.

Values are numpy arrays (0-d for a scalar) in a *carrier* type: int64 for every integer dtype but uint64
(uint64), float64 for every float dtype, numpy bool for ``bool``. A carrier holds a value already rounded to
its IR dtype: an n-bit integer in the dtype's range, a float on the format's grid (NaN is the canonical NaN;
a format without NaN never holds one). Every result is computed exactly or in float64 / int64 (uint64) and
then rounded into the dtype by ``to_carrier``: floats to nearest even, integers by two's-complement wrap.

- ``floordiv`` and ``mod`` on integers follow Python (floor; the remainder has the divisor's sign); a zero
  divisor raises ``IntegerDivisionByZero``. Float ``div`` by zero gives inf or NaN, as IEEE says.
- shift amounts outside [0, nbits) (the amount read as unsigned, as PTX does) give 0 for ``shl`` and for
  ``shr`` of unsigned values, and the sign fill for ``shr`` of signed values.
- ``max`` and ``min`` on floats ignore NaN (``np.fmax``, PTX ``max.f32``); comparisons with NaN are false
  except ``ne``.
- ``floor``, ``ceil``, ``round`` (half to even) and ``trunc`` are exact, keep the dtype, -0.0, inf and
  NaN (``floor(-0.5)`` is -1.0, ``ceil(-0.5)`` and ``round(-0.5)`` are -0.0), and are the identity on
  integers, as torch's.
- ``not`` is bitwise invert on integers and logical not on bool; bool arithmetic is done on 0/1 and the
  result is ``!= 0``.
- ``cast`` converts by the rules in the docstring of ``tilevm.ir.elementwise.Cast`` (round by the rounding
  mode, saturate float to integer, NaN to 0, wrap integer to integer, ``x != 0`` to bool).

Only ``CORRECTLY_ROUNDED_UNARY`` float functions give the target's result exactly; the target computes
``exp``, ``sin``, ``rsqrt``, ... approximately, so those are not computed at compile time.

>>> from tilevm.dtypes import float16, float32, int4
>>> binary("add", np.array([7, -8]), np.array([1, -1]), int4).tolist()
[-8, 7]
>>> binary("floordiv", np.array(-7), np.array(2), int4).item(), binary("shl", np.array(1), np.array(9), int4)
(-4, array(0))
>>> unary("not", np.array([0]), int4).tolist(), binary("max", np.array(np.nan), np.array(1.0), float16).item()
([-1], 1.0)
>>> unary("round", np.array([0.5, 1.5, 2.5, -0.5]), float16).tolist()
[0.0, 2.0, 2.0, -0.0]
>>> cast(np.array([7.6, -100.0, np.nan]), float32, int4, "nearest").tolist()
[7, -8, 0]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from tilevm.dtypes import DType, encode, round_to_dtype, wrap_integer
from tilevm.errors import TilevmError
from tilevm.ir.expr import COMPARISON_OPS, ROUNDING_OPS

__all__ = ["CORRECTLY_ROUNDED_UNARY", "IntegerDivisionByZero", "binary", "cast", "to_carrier", "unary"]

Ufunc = Callable[..., np.ndarray]


class IntegerDivisionByZero(TilevmError):
    """``floordiv`` or ``mod`` of integers by zero, which has no value (the executor reports it where it ran;
    constant folding leaves the expression for run time)."""


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
    # exact: the integral value of a float is on its format's grid (beyond 2^mantissa every value is one)
    "floor": np.floor,
    "ceil": np.ceil,
    "round": np.rint,  # half to even, as torch.round
    "trunc": np.trunc,
}
#: the float functions whose rounded float64 result is the correctly rounded one, as the target computes it
CORRECTLY_ROUNDED_UNARY = frozenset({"neg", "abs", "sqrt", *ROUNDING_OPS})
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


def to_carrier(values: npt.ArrayLike, dtype: DType, rounding: str = "nearest") -> np.ndarray:
    """``values`` (exact results: float64, or integers of any width) rounded into ``dtype``'s carrier.

    Floats round by ``rounding`` (saturating where the format has no inf), integers wrap around modulo 2^n,
    and bool is ``values != 0``.

    >>> from tilevm.dtypes import float4_e2m1, int4
    >>> to_carrier([7.2, -0.2], float4_e2m1).tolist(), to_carrier([9, -9], int4).tolist()
    ([6.0, -0.0], [-7, 7])
    """
    array = np.asarray(values)
    if dtype.kind == "bool":
        return np.asarray(array != 0)
    if dtype.is_integer:
        return np.asarray(wrap_integer(array, dtype))
    with np.errstate(invalid="ignore", over="ignore"):
        rounded = round_to_dtype(array.astype(np.float64), dtype, rounding)
    return np.asarray(rounded, dtype=np.float64)


def unary(op: str, value: np.ndarray, dtype: DType) -> np.ndarray:
    """``op value`` for a carrier ``value`` of ``dtype``, rounded back into ``dtype``."""
    if dtype.is_float:
        with np.errstate(all="ignore"):
            return to_carrier(FLOAT_UNARY[op](value.astype(np.float64)), dtype)
    if dtype.kind == "bool":
        return np.asarray(~value if op == "not" else value.copy())
    if op in ROUNDING_OPS or (op == "abs" and not dtype.is_signed):
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
        raise IntegerDivisionByZero(f"integer division by zero in '{op}' on {dtype}")
    with np.errstate(all="ignore"):
        if op in ("shl", "shr"):
            return to_carrier(_shift(op, lhs, rhs, dtype), dtype)
        return to_carrier(INTEGER_BINARY[op](lhs, rhs), dtype)


def _shift(op: str, value: np.ndarray, amount: np.ndarray, dtype: DType) -> np.ndarray:
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


def cast(values: np.ndarray, source: DType, target: DType, rounding: str) -> np.ndarray:
    """Carrier ``values`` of ``source`` converted to a carrier of ``target`` (rules: ``Cast``'s docstring)."""
    if target.kind == "bool":
        return np.asarray(values != 0)
    if source.kind == "bool":
        return to_carrier(values.astype(np.int64), target)
    if source.is_float and target.is_integer:
        # encode rounds, saturates to the range and sends NaN to 0: the float-to-int rule exactly. Its codes
        # are the low n bits, which wrap_integer sign-extends for signed kinds.
        return np.asarray(wrap_integer(encode(values, target, rounding).astype(np.uint64), target))
    if target.is_float:
        return to_carrier(values.astype(np.float64), target, rounding)
    return to_carrier(values, target)
