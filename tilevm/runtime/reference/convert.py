"""``view``: a tile's bits read as another dtype (``cast``, which converts values, is
``tilevm.ir.semantics.cast``).

View reads the tile's bits in row-major order (element 0 in the lowest bits) as the new dtype and shape:
encode to codes, pack, unpack as the new dtype, decode. Layouts do not enter: the view's layout rule (see
``tilevm.ir.layout_ops.View``) makes sure that a lowering reading each thread's own bits computes the same.

>>> from tilevm.dtypes import uint8, int4
>>> view(np.array([0x21, 0xF3]), uint8, int4, (4,)).tolist()
[1, 2, 3, -1]
"""

from __future__ import annotations

import numpy as np

from tilevm.dtypes import DType, pack, unpack
from tilevm.runtime.reference.carrier import carrier_to_codes, codes_to_carrier
from tilevm.runtime.reference.errors import ExecutionError

__all__ = ["view"]


def _reread(codes: np.ndarray, source: DType, target: DType, count: int) -> np.ndarray:
    """The codes of ``count`` elements of ``target`` in the packed bits of ``codes`` of ``source``."""
    try:
        return unpack(pack(codes, source), target, count)
    except ValueError as error:  # bits that are no code of the target (ue4m3 with its top bit set)
        raise ExecutionError(f"view as {target}: {error}") from None


def view(values: np.ndarray, source: DType, target: DType, shape: tuple[int, ...]) -> np.ndarray:
    """The tile's bits, in row-major order, read as a ``target`` tile of ``shape``."""
    count = int(np.prod(shape, dtype=np.int64))
    codes = _reread(carrier_to_codes(values, source).reshape(-1), source, target, count)
    return codes_to_carrier(codes, target).reshape(shape)
