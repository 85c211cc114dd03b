"""The reference codec against independent references: a per-code formula in plain Python floats for
every code of every format of width <= 8, torch's float8 types, numpy's float16 and float32, and torch's
bfloat16; then the special values (NaN, -0, inf, unsigned negatives) and the errors."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from tilevm import dtypes as dt

NARROW_INTEGERS = [getattr(dt, f"{kind}{n}") for kind in ("int", "uint") for n in range(1, 9)]
NARROW_FLOATS = [*dt.low_bit_floats(), dt.e8m0, dt.ue4m3]


def reference_float(code: int, e: int, m: int, special: str, signed: bool = True) -> float:
    """(-1)^S * 2^(E - bias) * 1.M, or * 0.M with exponent 1 - bias for E == 0; specials by `special`."""
    sign = -1.0 if signed and (code >> (e + m)) & 1 else 1.0
    exponent_field = (code >> m) & (2**e - 1)
    mantissa_field = code & (2**m - 1)
    bias = 2 ** (e - 1) - 1
    if special == "ieee" and exponent_field == 2**e - 1:
        return sign * math.inf if mantissa_field == 0 else math.nan
    if special == "fn" and exponent_field == 2**e - 1 and mantissa_field == 2**m - 1:
        return math.nan
    if exponent_field == 0:
        return sign * mantissa_field / 2**m * 2.0 ** (1 - bias)
    return sign * (1 + mantissa_field / 2**m) * 2.0 ** (exponent_field - bias)


def reference_value(d: dt.DType, code: int) -> float:
    """The value of `code` from the format's published definition, by name, not from the DType fields."""
    if d.name == "e8m0":
        return math.nan if code == 255 else 2.0 ** (code - 127)
    if d.name == "ue4m3":
        return reference_float(code, 4, 3, "fn", signed=False)
    if d.name.startswith("float"):
        e, m = (int(part) for part in d.name.split("_e")[1].split("m"))
        special = {"float8_e5m2": "ieee", "float8_e4m3": "fn"}.get(d.name, "finite")
        return reference_float(code, e, m, special)
    n = int(d.name.removeprefix("u").removeprefix("int"))
    return float(code - 2**n if d.name.startswith("int") and code >= 2 ** (n - 1) else code)


def assert_same_values(actual: np.ndarray, expected: np.ndarray) -> None:
    """Exactly equal, NaN where NaN, and the same sign of zero (the sign of NaN means nothing)."""
    np.testing.assert_array_equal(actual, expected)
    numbers = ~np.isnan(expected)
    assert np.array_equal(np.signbit(actual[numbers]), np.signbit(expected[numbers]))


@pytest.mark.parametrize("d", NARROW_INTEGERS + NARROW_FLOATS, ids=str)
def test_decode_every_code_matches_the_formula(d):
    count = 128 if d.name == "ue4m3" else 2**d.nbits
    codes = np.arange(count)
    decoded = dt.decode(codes, d)
    assert decoded.dtype == np.float32
    assert_same_values(decoded, np.array([reference_value(d, int(c)) for c in codes]))


@pytest.mark.parametrize("d", NARROW_INTEGERS + NARROW_FLOATS, ids=str)
def test_encode_of_decode_is_the_code(d):
    codes = np.arange(d.num_codes)
    decoded = dt.decode(codes, d)
    encoded = dt.encode(decoded, d)
    assert encoded.dtype == np.uint8
    nan = np.isnan(decoded)
    np.testing.assert_array_equal(encoded[~nan], codes[~nan])
    # every NaN code comes back as the one canonical NaN, which decodes to NaN
    assert len(set(encoded[nan].tolist())) <= 1
    assert np.isnan(dt.decode(encoded[nan], d)).all()


def test_decode_wide_floats_against_numpy_and_torch():
    codes = np.arange(2**16, dtype=np.uint16)
    np.testing.assert_array_equal(dt.decode(codes, dt.float16), codes.view(np.float16).astype(np.float32))
    as_bf16 = torch.from_numpy(codes.view(np.int16)).view(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(dt.decode(codes, dt.bfloat16), as_bf16)
    assert np.array_equal(np.signbit(dt.decode(codes, dt.bfloat16)), np.signbit(as_bf16))
    rng = np.random.default_rng(1)
    words = np.concatenate([rng.integers(0, 2**32, 100_000), [0, 1, 0x7F800000, 0xFF800000, 0x80000000]])
    words = words.astype(np.uint32)
    np.testing.assert_array_equal(dt.decode(words, dt.float32), words.view(np.float32))


def test_decode_wide_integers():
    assert dt.decode(np.array([0xFFFFFFFF], np.uint32), dt.int32).tolist() == [-1.0]
    assert dt.decode(np.array([0xFFFFFFFF], np.uint32), dt.uint32).dtype == np.float64
    assert dt.decode(np.array([2**63], np.uint64), dt.int64).tolist() == [-(2.0**63)]
    assert dt.decode(np.array([2**64 - 1], np.uint64), dt.uint64).tolist() == [2.0**64]  # rounded
    assert dt.decode([0x8000], dt.int16).tolist() == [-32768.0]
    assert dt.decode([0x8000], dt.int16).dtype == np.float32


TORCH_FLOAT8 = [(dt.float8_e4m3, torch.float8_e4m3fn), (dt.float8_e5m2, torch.float8_e5m2)]


@pytest.mark.parametrize(("d", "torch_dtype"), TORCH_FLOAT8, ids=str)
def test_decode_matches_torch_float8(d, torch_dtype):
    codes = np.arange(256, dtype=np.uint8)
    expected = torch.from_numpy(codes).view(torch_dtype).float().numpy()
    assert_same_values(dt.decode(codes, d), expected)


def float8_test_inputs(d: dt.DType) -> np.ndarray:
    """float32 values: random over the whole range, exact ties, near-ties, and beyond max."""
    rng = np.random.default_rng(2)
    table = np.unique(dt.representable_values(d)[np.isfinite(dt.representable_values(d))].astype(np.float64))
    ties = (table[1:] + table[:-1]) / 2
    near = np.concatenate([np.nextafter(ties, np.inf), np.nextafter(ties, -np.inf)])
    scale = np.exp2(
        rng.uniform(np.log2(np.abs(table[table != 0]).min()) - 3, np.log2(d.max_value) + 2, 20000)
    )
    random = scale * rng.choice([-1.0, 1.0], scale.size)
    return np.concatenate([table, ties, near, random, [0.0, -0.0, np.inf, -np.inf]]).astype(np.float32)


@pytest.mark.parametrize(("d", "torch_dtype"), TORCH_FLOAT8, ids=str)
def test_encode_matches_torch_float8_in_range(d, torch_dtype):
    x = float8_test_inputs(d)
    expected = torch.from_numpy(x).to(torch_dtype).view(torch.uint8).numpy()
    actual = dt.encode(x, d)
    # torch's e4m3fn conversion saturates and turns inf into max, while its e5m2 one overflows to inf as
    # IEEE does; the values past max are checked against the formats' rules in the saturation tests.
    in_range = np.abs(x) <= d.max_value
    np.testing.assert_array_equal(actual[in_range], expected[in_range])
    if d.has_inf:
        np.testing.assert_array_equal(actual, expected)


def test_float8_nan_matches_torch_as_nan():
    for d, torch_dtype in TORCH_FLOAT8:
        expected = torch.tensor([math.nan]).to(torch_dtype).float().item()
        assert math.isnan(expected) and math.isnan(dt.round_to_dtype([math.nan], d)[0])


def test_e8m0_against_torch():
    if not hasattr(torch, "float8_e8m0fnu"):
        pytest.skip("this torch has no float8_e8m0fnu")
    codes = np.arange(256, dtype=np.uint8)
    expected = torch.from_numpy(codes).view(torch.float8_e8m0fnu).float().numpy()
    assert_same_values(dt.decode(codes, dt.e8m0), expected)
    # torch rounds to nearest with ties up (the implicit significand bit is odd), as we do; we compare
    # where both are specified: positive finite float32 normals, below the overflow at 1.5 * 2^127.
    rng = np.random.default_rng(3)
    powers = np.exp2(np.arange(-126.0, 127.0))
    x = np.concatenate([rng.uniform(1, 2, 20000) * np.exp2(rng.integers(-126, 127, 20000)), powers * 1.5])
    x = np.concatenate([x, powers, np.nextafter(powers * 1.5, 0), np.nextafter(powers * 1.5, np.inf)])
    x = x.astype(np.float32)
    x = x[(x < 1.5 * 2.0**127) & (x >= 2.0**-126)]
    expected_codes = torch.from_numpy(x).to(torch.float8_e8m0fnu).view(torch.uint8).numpy()
    np.testing.assert_array_equal(dt.encode(x, dt.e8m0), expected_codes)


# The OCP Microscaling Formats spec (v1.0) lists every FP4 E2M1 value and the largest finite value of the
# FP6 and FP8 formats; these tables are copied from the spec, not computed by tilevm.
OCP_FP4_E2M1_VALUES = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
OCP_MAX_NORMAL = {"float6_e2m3": 7.5, "float6_e3m2": 28.0, "float8_e4m3": 448.0, "float8_e5m2": 57344.0}


def test_float4_e2m1_against_the_ocp_table_and_torch():
    codes = np.arange(16, dtype=np.uint8)
    expected = np.array(OCP_FP4_E2M1_VALUES + [-value for value in OCP_FP4_E2M1_VALUES], dtype=np.float32)
    assert_same_values(dt.decode(codes, dt.float4_e2m1), expected)
    for name, largest in OCP_MAX_NORMAL.items():
        assert dt.dtype(name).max_value == largest
    if hasattr(torch, "float4_e2m1fn_x2"):  # where this torch can decode packed float4, it must agree too
        packed = torch.arange(256, dtype=torch.int32).to(torch.uint8).view(torch.float4_e2m1fn_x2)
        try:
            torch_values = packed.float().numpy().reshape(-1)
        except (RuntimeError, NotImplementedError):
            return  # torch 2.13 on the CPU cannot convert float4; the OCP table above is the reference
        both = np.arange(256, dtype=np.uint8)
        low_then_high = np.stack([both & 0xF, both >> 4], axis=1).reshape(-1)
        assert_same_values(dt.decode(low_then_high, dt.float4_e2m1), torch_values)


def wide_float_inputs(seed: int) -> np.ndarray:
    """float64 values over every binade of bfloat16/float32 and below, with sign, zeros and infinities."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(1, 2, 60000) * np.exp2(rng.integers(-160, 130, 60000)) * rng.choice([-1, 1], 60000)
    return np.concatenate([x, [0.0, -0.0, np.inf, -np.inf, 65520.0, 65519.99, 2.0**-25, 2.0**-24 * 1.5]])


def test_float16_matches_numpy():
    x = wide_float_inputs(4) / 2.0**100  # bring them near float16's range
    x = np.concatenate([x, wide_float_inputs(5) / 2.0**110, [65504.0, 65520.0, 65536.0, -1e9]])
    with np.errstate(over="ignore"):  # numpy warns as it overflows to inf, which is what we compare
        expected, x32 = x.astype(np.float16).view(np.uint16), x.astype(np.float32)
        expected32 = x32.astype(np.float16).view(np.uint16)
    np.testing.assert_array_equal(dt.encode(x, dt.float16), expected)
    np.testing.assert_array_equal(dt.encode(x32, dt.float16), expected32)


def test_float32_matches_numpy():
    x = wide_float_inputs(6)
    with np.errstate(over="ignore"):
        expected = x.astype(np.float32).view(np.uint32)
    np.testing.assert_array_equal(dt.encode(x, dt.float32), expected)


def torch_bfloat16_codes(x: np.ndarray) -> np.ndarray:
    return torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)


def test_bfloat16_matches_torch_on_float32_inputs():
    with np.errstate(over="ignore"):
        x = wide_float_inputs(7).astype(np.float32)
    np.testing.assert_array_equal(dt.encode(x, dt.bfloat16), torch_bfloat16_codes(x))


def test_bfloat16_matches_torch_on_float64_where_torch_rounds_once():
    # torch converts float64 to bfloat16 through float32, which rounds twice; where the float32 value is
    # not exactly a bfloat16 tie (low 16 bits 0x8000), that double rounding gives the right answer.
    x = wide_float_inputs(8)
    x = np.concatenate([x, 1 + np.random.default_rng(9).uniform(0, 1, 50000)])
    with np.errstate(over="ignore"):
        single_rounding = (x.astype(np.float32).view(np.uint32) & 0xFFFF) != 0x8000
    np.testing.assert_array_equal(
        dt.encode(x, dt.bfloat16)[single_rounding], torch_bfloat16_codes(x)[single_rounding]
    )


def test_bfloat16_rounds_float64_once():
    # 1 + 2^-8 + 2^-30 lies just above the tie between 1 (0x3F80) and 1 + 2^-7 (0x3F81): it must go up,
    # though rounding to float32 first drops the 2^-30 and then ties to even, down.
    x = 1 + 2.0**-8 + 2.0**-30
    assert Fraction(x) - 1 > Fraction(1, 2**8)
    assert dt.encode([x], dt.bfloat16).tolist() == [0x3F81]
    assert dt.encode([1 + 2.0**-11 + 2.0**-40], dt.float16).tolist() == [0x3C01]
    assert dt.encode([1 + 2.0**-24 + 2.0**-50], dt.float32).tolist() == [0x3F800001]


CANONICAL_NAN = {
    "float8_e5m2": 0x7E,
    "float8_e4m3": 0x7F,
    "float16": 0x7E00,
    "bfloat16": 0x7FC0,
    "float32": 0x7FC00000,
    "e8m0": 0xFF,
    "ue4m3": 0x7F,
    "bool": 1,
}


@pytest.mark.parametrize("d", dt.all_dtypes(), ids=str)
def test_nan_encodes_to_the_canonical_nan_or_zero(d):
    codes = dt.encode([math.nan, -math.nan], d)
    expected = CANONICAL_NAN.get(d.name, 0)
    assert codes.tolist() == [expected, expected]
    storage = np.uint8 if d.nbits <= 8 else {16: np.uint16, 32: np.uint32, 64: np.uint64}[d.nbits]
    assert codes.dtype == storage


@pytest.mark.parametrize("d", dt.all_dtypes(), ids=str)
def test_negative_zero(d):
    (code,) = dt.encode([-0.0], d).tolist()
    if d.is_float and d.is_signed:
        assert code == 1 << (d.nbits - 1)  # the sign bit alone
        assert math.copysign(1.0, float(dt.decode([code], d)[0])) == -1.0
    else:
        assert code == 0
    if d.is_float and d.is_signed:
        assert dt.encode([-1e-60], d).tolist() == [code]  # below every subnormal: -0, keeping the sign


@pytest.mark.parametrize("d", [dt.ue4m3, dt.e8m0, dt.uint4, dt.uint32, dt.uint64], ids=str)
def test_unsigned_formats_saturate_negatives_to_code_zero(d):
    assert dt.encode([-1.0, -1e30, -math.inf, -(2.0**-140)], d).tolist() == [0, 0, 0, 0]


def test_e8m0_has_no_zero_and_saturates():
    assert dt.encode([0.0, 2.0**-127, 2.0**-200, 2.0**-127 * 1.49], dt.e8m0).tolist() == [0, 0, 0, 0]
    large = [2.0**-127 * 1.51, 1.0, 2.0**127, 1e300, math.inf]
    assert dt.encode(large, dt.e8m0).tolist() == [1, 127, 254, 254, 254]


@pytest.mark.parametrize("d", [d for d in dt.all_dtypes() if d.is_float], ids=str)
def test_infinities(d):
    positive, negative = dt.decode(dt.encode([math.inf, -math.inf], d), d).tolist()
    if d.has_inf:
        assert (positive, negative) == (math.inf, -math.inf)
    else:
        assert positive == d.max_value and negative == d.min_value


@pytest.mark.parametrize(
    ("codes", "d", "message"),
    [
        ([16], dt.int4, r"code 16 is out of range for int4: valid codes are 0\.\.15"),
        (
            [0, 128],
            dt.ue4m3,
            r"code 128 is out of range for ue4m3: valid codes are 0\.\.127 \(ue4m3 is stored",
        ),
        ([-1], dt.uint8, r"code -1 is out of range for uint8"),
        ([4], dt.boolean, r"code 4 is out of range for bool: valid codes are 0\.\.1"),
        ([2**16], dt.float16, r"code 65536 is out of range for float16"),
        ([1.5], dt.float4_e2m1, r"codes of float4_e2m1 must be integers, not float64"),
    ],
)
def test_decode_errors(codes, d, message):
    with pytest.raises(ValueError, match=message):
        dt.decode(codes, d)


def test_scalars_empty_arrays_and_names():
    for rounding in dt.ROUNDING_MODES:
        code = dt.encode(1.3, dt.float4_e2m1, rounding, np.random.default_rng(0))
        assert code.shape == () and int(code) in (0b010, 0b011)
    assert dt.encode(np.zeros((0, 3)), dt.int4).shape == (0, 3)
    assert dt.decode(np.zeros(0, np.uint8), dt.float8_e4m3).shape == (0,)
    # the functions take a name where they take a dtype
    assert dt.encode([1.5], "f4e2m1").tolist() == [0b011] and dt.decode([0b011], "fp4_e2m1").tolist() == [1.5]
    with pytest.raises(ValueError, match="unknown dtype name 'f4'"):
        dt.encode([1.0], "f4")


def test_encode_keeps_shape_and_bool_is_truthiness():
    x = np.arange(12.0).reshape(3, 4) - 6
    assert dt.encode(x, dt.int8).shape == (3, 4)
    assert dt.encode([0.0, -0.0, 0.2, -3.0, math.inf], dt.boolean).tolist() == [0, 0, 1, 1, 1]
    assert dt.decode([0, 1], dt.boolean).tolist() == [0.0, 1.0]


def test_representable_values_and_its_limit():
    assert dt.representable_values(dt.float4_e2m1).tolist() == [
        *[0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0],
        *[-0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0],
    ]
    assert dt.representable_values(dt.ue4m3).size == 128
    with pytest.raises(ValueError, match=r"at most 2\^16 codes; float32 has 32 bits"):
        dt.representable_values(dt.float32)
