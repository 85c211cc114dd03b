"""Which dtypes a reduction may accumulate in: one that holds every value of the operand's dtype, by default
a wide one (``reduce_dtype``), so that a sum of small integers or half-precision floats does not wrap or lose
precision in the operand's dtype.
"""

from __future__ import annotations

from tilevm.dtypes import DType, float32, int32, uint32
from tilevm.dtypes.types import magnitude_value

__all__ = ["holds_every_value", "reduce_dtype"]


def reduce_dtype(op: str, dtype: DType) -> DType:
    """The dtype a reduction of ``dtype`` values accumulates in unless told otherwise: a sum of integers of
    up to 32 bits (or of bools) in int32 (uint32 when unsigned), of floats in float32; sums of 64-bit
    integers, and every ``max`` and ``min``, keep the operand's dtype.

    >>> from tilevm.dtypes import bfloat16, boolean, int3, int64, uint5
    >>> [str(reduce_dtype("sum", d)) for d in (int3, uint5, boolean, bfloat16, int64)]
    ['int32', 'uint32', 'int32', 'float32', 'int64']
    >>> str(reduce_dtype("max", int3))
    'int3'
    """
    if op != "sum":
        return dtype
    if dtype.is_float:
        return float32
    if dtype.nbits == 64:
        return dtype
    return uint32 if dtype.kind == "uint" else int32


def holds_every_value(wide: DType, narrow: DType) -> bool:
    """Whether every value of ``narrow`` is a value of ``wide``, of the same class (integers and bools in an
    integer dtype, floats in a float dtype, a dtype in itself), so that converting to ``wide`` is exact.

    >>> from tilevm.dtypes import bfloat16, e8m0, float16, int3, int8, uint3
    >>> holds_every_value(int8, int3), holds_every_value(int8, uint3), holds_every_value(uint32, int3)
    (True, True, False)
    >>> holds_every_value(float32, e8m0), holds_every_value(float16, bfloat16)
    (True, False)
    """
    if wide == narrow:
        return True
    if narrow.is_float != wide.is_float or wide.kind == "bool":
        return False
    if not narrow.is_float:
        low, high = (0, 1) if narrow.kind == "bool" else (narrow.min_value, narrow.max_value)
        return wide.min_value <= low and high <= wide.max_value
    return (
        wide.mantissa_bits >= narrow.mantissa_bits
        and wide.max_value >= narrow.max_value
        and _smallest_positive(wide) <= _smallest_positive(narrow)
        and (wide.is_signed or not narrow.is_signed)
        and (wide.has_inf or not narrow.has_inf)
        and (wide.has_nan or not narrow.has_nan)
    )


def _smallest_positive(dtype: DType) -> float:
    return magnitude_value(dtype, 1 if dtype.has_subnormals else 0)
