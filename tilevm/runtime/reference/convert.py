"""Conversions: ``cast`` (value to value, with rounding) and ``view`` (the same bits read as another dtype).

Cast rules, by kind of source and target:

- float -> float: ``round_to_dtype`` with the rounding mode, saturating where the target has no inf
  (with rounding "zero", every format saturates; only inf stays inf);
- float -> int: round (nearest even, or toward zero), saturate to the integer range, NaN gives 0;
- int -> float: ``round_to_dtype`` of the integer (through float64, so |x| > 2^53 rounds twice);
- int -> int: two's-complement wrap-around; bool -> anything: 0 or 1; anything -> bool: ``x != 0``.

View reads the tile's bits in row-major order (element 0 in the lowest bits) as the new dtype and shape:
encode to codes, pack, unpack as the new dtype, decode. Layouts do not enter: the view's layout rule (see
``tilevm.ir.compute.View``) makes sure that a lowering reading each thread's own bits computes the same.

>>> from tilevm.dtypes import float32, int4, uint8
>>> cast(np.array([7.6, -100.0, np.nan]), float32, int4, "nearest").tolist()
[7, -8, 0]
>>> view(np.array([0x21, 0xF3]), uint8, int4, (4,)).tolist()
[1, 2, 3, -1]
"""

from __future__ import annotations

import numpy as np

from tilevm.dtypes import DType, encode, pack, unpack
from tilevm.runtime.reference.carrier import carrier_to_codes, codes_to_carrier, to_carrier
from tilevm.runtime.reference.errors import ExecutionError

__all__ = ["cast", "view"]


def cast(values: np.ndarray, source: DType, target: DType, rounding: str) -> np.ndarray:
    """Carrier ``values`` of ``source`` converted to a carrier of ``target``."""
    if target.kind == "bool":
        return np.asarray(values != 0)
    if source.kind == "bool":
        return to_carrier(values.astype(np.int64), target)
    if source.is_float and target.is_integer:
        # encode rounds, saturates to the range and sends NaN to 0: the float-to-int rule exactly.
        return codes_to_carrier(encode(values, target, rounding), target)
    if target.is_float:
        return to_carrier(values.astype(np.float64), target, rounding)
    return to_carrier(values, target)


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
