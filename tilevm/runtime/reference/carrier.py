"""How the executor holds values: numpy arrays in the "carrier" types of ``tilevm.ir.semantics`` (int64 or
uint64, float64, bool; scalars are 0-d arrays), already rounded to the IR dtype by its ``to_carrier``; here
the conversions between carriers and the reference codec's integer codes, and the contents of memory that is
undefined until written.

>>> from tilevm.dtypes import int4
>>> codes_to_carrier(carrier_to_codes(np.array([-1, 5]), int4), int4).tolist()
[-1, 5]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tilevm.dtypes import DType, code_storage_dtype, decode, encode, wrap_integer

__all__ = ["carrier_to_codes", "carrier_type", "codes_to_carrier", "poison"]


def carrier_type(dtype: DType) -> type[np.generic]:
    """The numpy type that holds values of ``dtype``.

    >>> from tilevm.dtypes import uint64, float16
    >>> carrier_type(uint64).__name__, carrier_type(float16).__name__
    ('uint64', 'float64')
    """
    if dtype.kind == "bool":
        return np.bool_
    if dtype.is_float:
        return np.float64
    return np.uint64 if dtype.kind == "uint" and dtype.nbits == 64 else np.int64


def codes_to_carrier(codes: npt.ArrayLike, dtype: DType) -> np.ndarray:
    """The values of the integer codes of ``dtype`` (as the reference codec reads them), in the carrier."""
    array = np.asarray(codes)
    if dtype.kind == "bool":
        return np.asarray(array != 0)
    if dtype.is_integer:
        # Codes are the low n bits; wrap_integer sign-extends them for signed kinds.
        return np.asarray(wrap_integer(array.astype(np.uint64), dtype))
    return np.asarray(decode(array, dtype), dtype=np.float64)


def carrier_to_codes(values: npt.ArrayLike, dtype: DType) -> np.ndarray:
    """The integer codes of carrier ``values`` of ``dtype`` (the inverse of ``codes_to_carrier``)."""
    array = np.asarray(values)
    storage = code_storage_dtype(dtype)
    if dtype.kind == "bool":
        return array.astype(storage)
    if dtype.is_integer:
        # A cast of int64 to uint64 keeps the two's complement bits; the mask keeps the low n of them.
        mask = np.uint64((1 << dtype.nbits) - 1)
        return (array.astype(np.uint64) & mask).astype(storage)
    return encode(array, dtype)


def poison(dtype: DType, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Contents for memory that is undefined until written (fresh shared or register tiles).

    NaN for float formats that have it; random bit patterns otherwise, so that a kernel reading before
    writing gets garbage that tests notice rather than a lucky zero.
    """
    if dtype.is_float and dtype.has_nan:
        return np.full(shape, np.nan)
    codes = rng.integers(0, dtype.num_codes, size=shape, dtype=np.uint64, endpoint=False)
    return codes_to_carrier(codes, dtype)
