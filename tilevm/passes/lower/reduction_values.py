"""What the lowerings of ``reduce`` and ``dot`` share: the machine dtype a sum is computed in, and picking
elements of a thread's register by their local indices.

>>> from tilevm.dtypes import float16, float8_e4m3, int3
>>> [str(arithmetic_dtype(d)) for d in (float16, float8_e4m3, int3)]
['float16', 'float32', 'int32']
"""

from __future__ import annotations

from collections.abc import Sequence

from tilevm.dtypes import (
    DType,
    bfloat16,
    float16,
    float32,
    int8,
    int16,
    int32,
    int64,
    uint8,
    uint16,
    uint32,
    uint64,
)
from tilevm.ir.expr import Expr
from tilevm.ir.thread import Gather
from tilevm.passes.lower.lowering import vector_length

__all__ = ["ARITHMETIC_DTYPES", "arithmetic_dtype", "pick"]

#: the dtypes lowered Thread IR computes in (the others are storage only, widened by ``convert``)
ARITHMETIC_DTYPES = frozenset(
    (float16, bfloat16, float32, int8, int16, int32, int64, uint8, uint16, uint32, uint64)
)


def arithmetic_dtype(dtype: DType) -> DType:
    """``dtype`` itself where Thread IR computes in it, else the dtype its values are computed in: float32
    for a low-bit float, int32 for a low-bit integer or a bool (each holds every value exactly; integer
    results wrap back into ``dtype`` when converted to it, as Tile IR's integer arithmetic does)."""
    if dtype in ARITHMETIC_DTYPES:
        return dtype
    return float32 if dtype.is_float else int32


def pick(value: Expr, indices: Sequence[int]) -> Expr:
    """Elements ``indices`` of the register ``value`` (a scalar for one index), or ``value`` itself when
    that is all of it in order."""
    if tuple(indices) == tuple(range(vector_length(value.type))):
        return value
    return Gather((value,), tuple(indices))
