"""Dense bit packing: element i of an n-bit array occupies bits [i*n, (i+1)*n) of the byte stream, least
significant bit first, with no padding; the unused high bits of the last byte are zero.

>>> from tilevm.dtypes.types import uint3
>>> data = pack([1, 2, 3], uint3)  # 001, 010, 011 from the low bit: 0b1_010_001 = 0xd1, 0b0
>>> [hex(b) for b in data], unpack(data, uint3, 3).tolist()
(['0xd1', '0x0'], [1, 2, 3])
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tilevm.dtypes.codec import code_storage_dtype, validate_codes
from tilevm.dtypes.parse import dtype as as_dtype
from tilevm.dtypes.types import DType


def pack(codes: npt.ArrayLike, dtype: DType | str) -> np.ndarray:
    """Pack `codes` (flattened in C order) of `dtype` densely into a 1-D uint8 array.

    The result has ceil(len * nbits / 8) bytes. Codes out of range raise ValueError.

    >>> from tilevm.dtypes.types import int4
    >>> pack([0x1, 0xF, 0x7], int4)
    array([241,   7], dtype=uint8)
    """
    dtype = as_dtype(dtype)
    wide = validate_codes(codes, dtype).reshape(-1)
    shifts = np.arange(dtype.nbits, dtype=np.uint64)
    # bits[i, j] is bit j of element i; raveled row-major this is the little-endian bit stream.
    bits = ((wide[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bits.reshape(-1), bitorder="little")


def unpack(data: npt.ArrayLike, dtype: DType | str, count: int) -> np.ndarray:
    """The first `count` codes of `dtype` packed in the uint8 array `data` (the inverse of `pack`).

    Returns codes in `code_storage_dtype(dtype)`. A count that needs more bits than `data` has, or codes
    out of range (ue4m3 bytes with the top bit set), raise ValueError.

    >>> from tilevm.dtypes.types import int4
    >>> unpack(np.array([241, 7], dtype=np.uint8), int4, 3)
    array([ 1, 15,  7], dtype=uint8)
    """
    dtype = as_dtype(dtype)
    stream = np.asarray(data)
    if stream.dtype != np.uint8:
        raise ValueError(f"packed data must be a uint8 array, not {stream.dtype}")
    stream = stream.reshape(-1)
    needed = count * dtype.nbits
    if count < 0 or needed > 8 * stream.size:
        raise ValueError(
            f"cannot unpack {count} codes of {dtype.name} ({needed} bits) from {stream.size} bytes "
            f"({8 * stream.size} bits)"
        )
    bits = np.unpackbits(stream, count=needed, bitorder="little").astype(np.uint64)
    shifts = np.arange(dtype.nbits, dtype=np.uint64)
    wide = (bits.reshape(count, dtype.nbits) << shifts).sum(axis=1, dtype=np.uint64)
    return validate_codes(wide, dtype).astype(code_storage_dtype(dtype))
