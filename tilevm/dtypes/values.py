"""Helpers built on the codec that the rest of the compiler needs: integer wrap-around, rounding to a
dtype's grid, and the table of all values of a narrow dtype.

>>> from tilevm.dtypes.types import int4, float4_e2m1
>>> wrap_integer([7, 8, -9, 16], int4)
array([ 7, -8,  7,  0])
>>> round_to_dtype([0.3, 2.6, 100.0], float4_e2m1)
array([0.5, 3. , 6. ], dtype=float32)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tilevm.dtypes.codec import decode, encode
from tilevm.dtypes.parse import dtype as as_dtype
from tilevm.dtypes.types import DType

MAX_TABLE_WIDTH = 16


def wrap_integer(values: npt.ArrayLike, dtype: DType | str) -> np.ndarray:
    """Reduce integer `values` modulo 2^n into `dtype`'s range, as two's complement for signed kinds.

    This is what n-bit integer arithmetic does on overflow. Returns int64 (uint64 for uint64). For bool
    the result is truthiness (values != 0), as for a cast to bool.

    >>> from tilevm.dtypes.types import uint3, boolean
    >>> wrap_integer([-1, 8, 9], uint3), wrap_integer([0, 2], boolean)
    (array([7, 0, 1]), array([0, 1]))
    """
    dtype = as_dtype(dtype)
    if not (dtype.is_integer or dtype.kind == "bool"):
        raise ValueError(f"wrap_integer needs an integer or bool dtype, not {dtype.name}")
    array = np.asarray(values)
    if array.dtype.kind not in "iub":
        raise ValueError(f"wrap_integer needs integer values, not {array.dtype}")
    wide = array.astype(np.int64)  # uint64 inputs wrap into int64, which keeps them modulo 2^64
    if dtype.kind == "bool":
        return (wide != 0).astype(np.int64)
    if dtype.nbits == 64:
        return wide if dtype.is_signed else wide.view(np.uint64)
    native = _NUMPY_INTEGERS.get((dtype.nbits, dtype.is_signed))
    if native is not None:
        # numpy's narrowing cast keeps the low bits and reads them in two's complement: the same residue as
        # below, in two casts (the executors' integer arithmetic spends much of its time here).
        return wide.astype(native).astype(np.int64)
    # `&` on int64 takes the low n bits of the two's complement form: the residue modulo 2^n.
    residue = wide & ((1 << dtype.nbits) - 1)
    if not dtype.is_signed:
        return residue
    return residue - ((residue >> (dtype.nbits - 1)) << dtype.nbits)


def round_to_dtype(
    x: npt.ArrayLike,
    dtype: DType | str,
    rounding: str = "nearest",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """The representable value of `dtype` that `x` rounds to: `decode(encode(x, dtype, rounding, rng))`.

    >>> from tilevm.dtypes.types import float8_e4m3
    >>> round_to_dtype([1.07, 1000.0], float8_e4m3)  # the step above 1 is 1/8; 1000 saturates
    array([  1.125, 448.   ], dtype=float32)
    """
    dtype = as_dtype(dtype)
    native = _NUMPY_FLOATS.get(dtype.name)
    if native is not None and rounding == "nearest":
        # numpy's float64 -> float16 / float32 conversions round to nearest even, with IEEE overflow to inf,
        # in one step: the codec's result, bit for bit (checked on every code, the midpoints between codes
        # and their neighbours), hundreds of times faster. NaN comes out as the codec's positive NaN.
        with np.errstate(over="ignore", invalid="ignore"):
            rounded = np.asarray(x, dtype=np.float64).astype(native).astype(np.float32)
        nan = np.isnan(rounded)
        return np.where(nan, np.float32(np.nan), rounded) if nan.any() else rounded
    return decode(encode(x, dtype, rounding, rng), dtype)


#: the integer widths numpy has a type for, by (bits, signed)
_NUMPY_INTEGERS = {
    (8, True): np.int8,
    (16, True): np.int16,
    (32, True): np.int32,
    (8, False): np.uint8,
    (16, False): np.uint16,
    (32, False): np.uint32,
}

#: the formats numpy has a type for, whose conversion from float64 rounds as the codec does
_NUMPY_FLOATS = {"float16": np.float16, "float32": np.float32}


def representable_values(dtype: DType | str) -> np.ndarray:
    """The decoded value of every code 0 .. num_codes - 1, in code order (widths up to 16 bits).

    >>> from tilevm.dtypes.types import float4_e2m1
    >>> representable_values(float4_e2m1)[:8]
    array([0. , 0.5, 1. , 1.5, 2. , 3. , 4. , 6. ], dtype=float32)
    """
    dtype = as_dtype(dtype)
    if dtype.nbits > MAX_TABLE_WIDTH:
        raise ValueError(
            f"representable_values lists at most 2^{MAX_TABLE_WIDTH} codes; "
            f"{dtype.name} has {dtype.nbits} bits"
        )
    return decode(np.arange(dtype.num_codes, dtype=np.uint64), dtype)
