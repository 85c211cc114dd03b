"""The interpreter's registers: bitcasts between any two element widths agree with the reference packing
(``tilevm.dtypes.pack`` / ``unpack``: element i at bits [i n, (i + 1) n), LSB first), and values round-trip
between registers and semantics carriers for every dtype."""

from __future__ import annotations

import numpy as np
import pytest

from tilevm.dtypes import all_dtypes, decode, encode, pack, unpack
from tilevm.dtypes import dtype as parse_dtype
from tilevm.runtime.cpu.registers import bitcast, codes_of, from_carrier, from_codes, to_carrier

PAIRS = [
    ("uint8", "int4"), ("int4", "uint8"), ("uint32", "float16"), ("float16", "uint32"), ("uint8", "bool"),
    ("bool", "uint16"), ("float6_e3m2", "uint8"), ("uint8", "float6_e2m3"), ("int3", "uint8"),
    ("bfloat16", "float8_e4m3"), ("uint64", "int2"), ("int2", "float32"), ("float4_e2m1", "int8"),
]  # fmt: skip


@pytest.mark.parametrize(("source_name", "target_name"), PAIRS)
def test_bitcast_is_the_reference_packing(source_name, target_name):
    source, target = parse_dtype(source_name), parse_dtype(target_name)
    rng = np.random.default_rng(len(source_name) * 13 + len(target_name))
    bits = 96 if 96 % source.nbits == 0 and 96 % target.nbits == 0 else 192
    count, result_count = bits // source.nbits, bits // target.nbits
    codes = rng.integers(0, source.num_codes, size=(7, count), dtype=np.uint64)
    if source.name == "ue4m3":
        codes &= 0x7F
    register = from_codes(codes.astype(np.uint64), source)
    result = bitcast(register, source, count, target, result_count)
    expected = np.stack([unpack(pack(row, source), target, result_count) for row in codes])
    assert result.shape == (7, result_count)
    assert np.array_equal(codes_of(result, target).astype(np.uint64), expected.astype(np.uint64))


@pytest.mark.parametrize("dtype", [dtype for dtype in all_dtypes() if dtype.nbits <= 16], ids=str)
def test_every_code_round_trips_through_the_carrier(dtype):
    codes = np.arange(dtype.num_codes, dtype=np.uint64)
    if dtype.name == "ue4m3":
        codes = codes[:128]
    register = from_codes(codes, dtype)
    carrier = to_carrier(register, dtype)
    values = decode(codes, dtype)
    if dtype.is_float:
        assert np.array_equal(carrier, values.astype(np.float64), equal_nan=True)
    else:
        assert np.array_equal(carrier.astype(np.float64), values.astype(np.float64))
    back = codes_of(from_carrier(carrier, dtype), dtype).astype(np.uint64)
    canonical = encode(values, dtype).astype(np.uint64)  # NaN codes come back as the canonical NaN
    assert np.array_equal(back, canonical)
