"""``round_to_dtype``'s numpy path for float16 and float32 (which the interpreter's arithmetic, through
``tilevm.ir.semantics``, spends most of its time in) against the reference codec, ``decode(encode(x))``:
every float16 code, the midpoints between neighbouring values and the doubles next to them, random values
over the whole exponent range, and the overflow, underflow and NaN edges; and ``wrap_integer``'s numpy path
for 8-, 16- and 32-bit integers against Python's exact residues."""

from __future__ import annotations

import numpy as np
import pytest

from tilevm.dtypes import decode, encode, float16, float32, int_type
from tilevm.dtypes.values import round_to_dtype, wrap_integer


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


@pytest.mark.parametrize("bits", [8, 16, 32])
@pytest.mark.parametrize("signed", [True, False])
def test_wrapping_to_a_numpy_integer_width_is_the_residue_in_twos_complement(bits, signed):
    rng = np.random.default_rng(bits + signed)
    inputs = [
        rng.integers(-(2**63), 2**63 - 1, 100_000, endpoint=True),
        rng.integers(0, 2**64 - 1, 100_000, dtype=np.uint64, endpoint=True),
        np.array([-(2**63), 2**63 - 1, 0, -1, 1, 2**31, -(2**31) - 1, 255, 256, -129, 2**bits, -(2**bits)]),
    ]
    for values in inputs:
        exact = [int(value) % 2**bits for value in values.tolist()]  # Python ints: the residue, exactly
        if signed:
            exact = [value - 2**bits if value >= 2 ** (bits - 1) else value for value in exact]
        got = wrap_integer(values, int_type(bits, signed))
        assert got.dtype == np.int64
        assert got.tolist() == exact
