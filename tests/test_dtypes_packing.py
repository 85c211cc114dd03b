"""Dense LSB-first packing against a bit-by-bit reference loop, round trips at every width, and errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tilevm import dtypes as dt

WIDTHS = [1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 64]
LENGTHS = [0, 1, 3, 7, 13, 101]


def reference_pack(codes: list[int], nbits: int) -> list[int]:
    """Bit j of element i goes to bit (i * nbits + j) % 8 of byte (i * nbits + j) // 8."""
    out = [0] * ((len(codes) * nbits + 7) // 8)
    for i, code in enumerate(codes):
        for j in range(nbits):
            position = i * nbits + j
            out[position // 8] |= ((code >> j) & 1) << (position % 8)
    return out


def random_codes(d: dt.DType, length: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    storage = dt.code_storage_dtype(d)
    return rng.integers(0, d.num_codes, length, dtype=np.uint64, endpoint=False).astype(storage)


@pytest.mark.parametrize("nbits", WIDTHS)
@pytest.mark.parametrize("length", LENGTHS)
def test_pack_matches_the_reference_loop_and_unpacks_back(nbits, length):
    for d in (dt.int_type(nbits), dt.int_type(nbits, signed=False)):
        codes = random_codes(d, length, seed=nbits * 1000 + length)
        packed = dt.pack(codes, d)
        assert packed.dtype == np.uint8 and packed.ndim == 1
        assert packed.tolist() == reference_pack(codes.tolist(), nbits)
        assert packed.size == -(-length * nbits // 8)  # no padding beyond the last byte
        unpacked = dt.unpack(packed, d, length)
        assert unpacked.dtype == codes.dtype
        np.testing.assert_array_equal(unpacked, codes)


def test_trailing_bits_are_zero():
    for nbits in range(1, 8):
        packed = dt.pack([2**nbits - 1] * 3, dt.int_type(nbits, signed=False))
        used = 3 * nbits
        assert int.from_bytes(packed.tobytes(), "little") == 2**used - 1  # every bit past `used` is 0


def test_pack_by_hand():
    assert dt.pack([1, 2, 3], dt.uint3).tolist() == [0b11_010_001, 0b0]
    assert dt.pack([0x1, 0xF, 0x7], dt.int4).tolist() == [0xF1, 0x07]
    assert dt.pack([1, 0, 1, 1, 0, 0, 0, 0, 1], dt.boolean).tolist() == [0b00001101, 0b1]
    assert dt.pack([0x1234], dt.float16).tolist() == [0x34, 0x12]  # little-endian, as memory holds it


@pytest.mark.parametrize("d", [dt.float4_e2m1, dt.float6_e3m2, dt.float8_e4m3, dt.e8m0, dt.ue4m3], ids=str)
def test_float_codes_round_trip(d):
    codes = np.arange(d.num_codes, dtype=np.uint8)
    packed = dt.pack(codes, d)
    assert packed.tolist() == reference_pack(codes.tolist(), d.nbits)
    np.testing.assert_array_equal(dt.unpack(packed, d, codes.size), codes)


def test_pack_flattens_in_c_order_and_unpack_reads_a_prefix():
    codes = np.arange(12, dtype=np.uint8).reshape(3, 4) % 8
    packed = dt.pack(codes, dt.uint3)
    np.testing.assert_array_equal(dt.unpack(packed, dt.uint3, 12), codes.reshape(-1))
    np.testing.assert_array_equal(dt.unpack(packed, dt.uint3, 5), codes.reshape(-1)[:5])
    assert dt.unpack(packed, dt.uint3, 0).size == 0


@pytest.mark.parametrize(
    ("data", "d", "count", "message"),
    [
        (
            np.zeros(2, np.uint8),
            dt.uint3,
            6,
            r"cannot unpack 6 codes of uint3 \(18 bits\) from 2 bytes \(16 bits\)",
        ),
        (np.zeros(0, np.uint8), dt.int1, 1, r"cannot unpack 1 codes of int1 \(1 bits\) from 0 bytes"),
        (np.zeros(1, np.uint8), dt.int4, -1, r"cannot unpack -1 codes of int4"),
        (np.zeros(2, np.int32), dt.int4, 1, r"packed data must be a uint8 array, not int32"),
        (np.array([0x80], np.uint8), dt.ue4m3, 1, r"code 128 is out of range for ue4m3"),
    ],
)
def test_unpack_errors(data, d, count, message):
    with pytest.raises(ValueError, match=message):
        dt.unpack(data, d, count)


def test_pack_errors():
    with pytest.raises(ValueError, match=r"code 8 is out of range for int3: valid codes are 0\.\.7"):
        dt.pack([1, 8], dt.int3)
    with pytest.raises(ValueError, match=r"codes of uint4 must be integers, not float64"):
        dt.pack([1.0], dt.uint4)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(WIDTHS), st.data())
def test_round_trip_property(nbits, data):
    d = dt.int_type(nbits, signed=False)
    codes = data.draw(st.lists(st.integers(0, 2**nbits - 1), max_size=40))
    packed = dt.pack(np.array(codes, dtype=np.uint64), d)
    assert packed.tolist() == reference_pack(codes, nbits)
    assert dt.unpack(packed, d, len(codes)).tolist() == codes


def test_encode_pack_unpack_decode():
    x = np.linspace(-6, 6, 29)
    packed = dt.pack(dt.encode(x, dt.float4_e2m1), dt.float4_e2m1)
    assert packed.size == 15
    decoded = dt.decode(dt.unpack(packed, dt.float4_e2m1, x.size), dt.float4_e2m1)
    np.testing.assert_array_equal(decoded, dt.round_to_dtype(x, dt.float4_e2m1))
