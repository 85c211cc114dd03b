"""``round_to_dtype``'s numpy path for float16 and float32 (which the interpreter's arithmetic, through
``tilevm.ir.semantics``, spends most of its time in) against the reference codec, ``decode(encode(x))``:
every float16 code, the midpoints between neighbouring values and the doubles next to them, random values
over the whole exponent range, and the overflow, underflow and NaN edges."""

from __future__ import annotations

import numpy as np
import pytest

from tilevm.dtypes import decode, encode, float16, float32
from tilevm.dtypes.values import round_to_dtype


def _grid(dtype, rng):
    if dtype == float16:
        values = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float64)
    else:
        values = rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
        with np.errstate(invalid="ignore"):  # signalling NaN codes
            values = values.astype(np.float64)
    finite = np.unique(values[np.isfinite(values)])
    midpoints = (finite[:-1] + finite[1:]) / 2
    return [values, midpoints, np.nextafter(midpoints, np.inf), np.nextafter(midpoints, -np.inf)]


@pytest.mark.parametrize("dtype", [float16, float32])
def test_the_numpy_rounding_path_is_the_codec_bit_for_bit(dtype):
    rng = np.random.default_rng(dtype.nbits)
    top = float(dtype.max_value)
    edges = np.array([top, top * (1 + 2.0**-12), top * 1.01, 1e300, -1e300, np.inf, -np.inf, np.nan, -np.nan,
                      -0.0, 5e-324, 2.0**-25, 2.0**-150, 2.0**-149 * 1.5, 7e-46])  # fmt: skip
    random = rng.standard_normal(200_000) * 10.0 ** rng.integers(-50, 40, 200_000)
    for values in [*_grid(dtype, rng), random, edges]:
        with np.errstate(over="ignore"):
            expected = decode(encode(values, dtype), dtype)
        got = round_to_dtype(values, dtype)
        assert got.dtype == expected.dtype
        assert np.array_equal(got.view(np.uint32), expected.view(np.uint32))
