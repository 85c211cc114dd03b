"""Rounding in encode: ties to even on exact midpoints, saturation and IEEE overflow, subnormals,
integers against numpy, rounding toward zero, stochastic rounding, and hypothesis laws.

The tables of representable values come from `decode`, which test_dtypes_codec checks code by code
against the formats' definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tilevm import dtypes as dt

NARROW_FLOATS = [*dt.low_bit_floats(), dt.e8m0, dt.ue4m3]
INTEGERS = [getattr(dt, f"{kind}{n}") for kind in ("int", "uint") for n in (1, 2, 3, 4, 5, 6, 7, 8, 16, 32)]


def finite_table(d: dt.DType) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative finite values of a narrow float and their codes, sorted by value (-0 left out)."""
    codes = np.arange(d.num_codes)
    values = dt.decode(codes, d).astype(np.float64)
    keep = np.isfinite(values) & ~np.signbit(values)
    order = np.argsort(values[keep], kind="stable")
    return values[keep][order], codes[keep][order]


def tie_winner(d: dt.DType, low_code: int, high_code: int, low_value: float) -> int:
    """Ties go to the even significand: the even mantissa field; with no mantissa bits, 2^(k+1) (which
    is 2 * 2^k) beats 2^k (1 * 2^k), and 0 beats the smallest power of two."""
    if d.mantissa_bits == 0:
        return low_code if low_value == 0 else high_code
    return low_code if low_code % 2 == 0 else high_code


@pytest.mark.parametrize("d", [*NARROW_FLOATS, dt.float16], ids=str)
def test_ties_go_to_the_even_neighbour(d):
    values, codes = finite_table(d)
    midpoints = (values[:-1] + values[1:]) / 2  # exact in float64: these formats have < 52 bits
    neighbours = zip(codes[:-1].tolist(), codes[1:].tolist(), values[:-1].tolist(), strict=True)
    expected = [tie_winner(d, low, high, value) for low, high, value in neighbours]
    np.testing.assert_array_equal(dt.encode(midpoints, d), expected)
    # just off the midpoint, the nearer neighbour wins
    np.testing.assert_array_equal(dt.encode(np.nextafter(midpoints, 0), d), codes[:-1])
    np.testing.assert_array_equal(dt.encode(np.nextafter(midpoints, np.inf), d), codes[1:])
    if d.is_signed:  # the negative side mirrors the positive one, with the sign bit set
        sign = 1 << (d.nbits - 1)
        np.testing.assert_array_equal(dt.encode(-midpoints, d), np.array(expected) | sign)


def test_e4m3_ties_by_hand():
    # 1 + 1/16 lies between 1.0 (0x38, mantissa 000) and 1.125 (0x39, mantissa 001): down to even.
    # 1 + 3/16 lies between 1.125 (0x39) and 1.25 (0x3A, mantissa 010): up to even.
    assert dt.encode([1 + 1 / 16, 1 + 3 / 16, -(1 + 3 / 16)], dt.float8_e4m3).tolist() == [0x38, 0x3A, 0xBA]
    # e2m1: 5 ties between 4 (0b0110) and 6 (0b0111), 2.5 between 2 (0b0100) and 3, 0.75 between 0.5 and 1
    assert dt.encode([5.0, 2.5, 0.25, 0.75], dt.float4_e2m1).tolist() == [0x6, 0x4, 0x0, 0x2]


@pytest.mark.parametrize(
    "d", [d for d in [*NARROW_FLOATS, dt.float16, dt.bfloat16] if not d.has_inf], ids=str
)
def test_finite_formats_saturate(d):
    top = d.max_value
    beyond = np.array([top * (1 + 2.0**-20), top * 1.5, top * 4, top * 1e10, 1e300])
    expected_top = dt.encode([top], d)[0]
    assert (dt.encode(beyond, d) == expected_top).all()
    if d.is_signed:
        assert (dt.decode(dt.encode(-beyond, d), d) == -top).all()
    for rounding in ("zero", "stochastic"):
        assert (dt.encode(beyond, d, rounding, np.random.default_rng(0)) == expected_top).all()


# (dtype, max finite, half an ulp above it): beyond max + half ulp is inf, the tie itself too (max is odd)
IEEE_OVERFLOW = [
    (dt.float8_e5m2, 57344.0, 4096.0),
    (dt.float16, 65504.0, 16.0),
    (dt.bfloat16, (2 - 2**-7) * 2.0**127, 2.0**119),
    (dt.float32, (2 - 2**-23) * 2.0**127, 2.0**103),
]


@pytest.mark.parametrize(("d", "top", "half_ulp"), IEEE_OVERFLOW, ids=lambda v: str(v))
def test_ieee_formats_overflow_to_inf(d, top, half_ulp):
    x = np.array([top, top + half_ulp / 2, np.nextafter(top + half_ulp, 0), top + half_ulp, top * 4, 1e300])
    decoded = dt.decode(dt.encode(x, d), d)
    assert decoded.tolist() == [top, top, top, math.inf, math.inf, math.inf]
    assert dt.decode(dt.encode(-x, d), d).tolist() == [-top, -top, -top, -math.inf, -math.inf, -math.inf]
    # rounding toward zero and stochastic rounding saturate instead; only inf itself stays inf
    for rounding in ("zero", "stochastic"):
        codes = dt.encode(np.append(x, math.inf), d, rounding, np.random.default_rng(0))
        assert dt.decode(codes, d).tolist() == [top] * 6 + [math.inf]


SUBNORMALS = [  # (dtype, smallest subnormal, smallest normal)
    (dt.float8_e4m3, 2.0**-9, 2.0**-6),
    (dt.float8_e5m2, 2.0**-16, 2.0**-14),
    (dt.float6_e3m2, 2.0**-4, 2.0**-2),
    (dt.float6_e2m3, 2.0**-3, 1.0),
    (dt.float4_e2m1, 0.5, 1.0),
    (dt.float16, 2.0**-24, 2.0**-14),
    (dt.bfloat16, 2.0**-133, 2.0**-126),
    (dt.float32, 2.0**-149, 2.0**-126),
    (dt.ue4m3, 2.0**-9, 2.0**-6),
]


@pytest.mark.parametrize(("d", "smallest", "normal"), SUBNORMALS, ids=lambda v: str(v))
def test_subnormals(d, smallest, normal):
    x = [smallest, smallest / 2, smallest * 0.5000001, smallest * 1.5, smallest * 2.5, normal - smallest]
    decoded = dt.decode(dt.encode(x, d), d).tolist()
    # half the smallest subnormal ties between 0 and it: 0 is even; 1.5 and 2.5 ulps go to 2 ulps
    assert decoded == [smallest, 0.0, smallest, 2 * smallest, 2 * smallest, normal - smallest]
    assert dt.encode([smallest], d).tolist() == [1]
    assert dt.decode(dt.encode([normal - smallest / 2], d), d).tolist() == [normal]  # tie, carries up


def integer_reference(x: np.ndarray, d: dt.DType, rounding) -> np.ndarray:
    """np.rint / np.trunc, then np.clip, then the two's complement code in n bits."""
    rounded = np.clip(rounding(np.nan_to_num(x, nan=0.0)), d.min_value, d.max_value)
    return np.array([int(v) % 2**d.nbits for v in rounded.tolist()], dtype=np.uint64)


@pytest.mark.parametrize("d", INTEGERS, ids=str)
def test_integers_round_half_to_even_then_clamp(d):
    rng = np.random.default_rng(d.nbits + 100 * d.is_signed)
    span = 2.0**d.nbits
    x = np.concatenate(
        [
            np.arange(-span - 4, span + 4, max(span / 64, 1)) + 0.5,  # ties
            rng.uniform(-2 * span, 2 * span, 2000),
            [np.nan, np.inf, -np.inf, -0.0, 1e30, -1e30],
        ]
    )
    np.testing.assert_array_equal(dt.encode(x, d), integer_reference(x, d, np.rint))
    np.testing.assert_array_equal(dt.encode(x, d, "zero"), integer_reference(x, d, np.trunc))


def test_integer_ties_by_hand():
    x = [2.5, -3.5, 0.5, -0.5, 1.5, 7.5, -8.5, 100.0]
    assert dt.decode(dt.encode(x, dt.int4), dt.int4).tolist() == [2, -4, 0, 0, 2, 7, -8, 7]
    assert dt.decode(dt.encode(x, dt.uint3), dt.uint3).tolist() == [2, 0, 0, 0, 2, 7, 0, 7]


def test_64_bit_integers_saturate():
    x = [1e30, -1e30, 2.0**63, -(2.0**63), 2.0**64, 12345.5, -7.0]
    assert dt.encode(x, dt.int64).tolist() == [
        2**63 - 1,
        2**63,
        2**63 - 1,
        2**63,
        2**63 - 1,
        12346,
        2**64 - 7,
    ]
    assert dt.encode(x, dt.uint64).tolist() == [2**64 - 1, 0, 2**63, 0, 2**64 - 1, 12346, 0]


@pytest.mark.parametrize("d", NARROW_FLOATS, ids=str)
def test_rounding_toward_zero(d):
    values, codes = finite_table(d)
    rng = np.random.default_rng(11)
    x = np.concatenate([rng.uniform(0, values[-1] * 1.25, 3000), values, (values[:-1] + values[1:]) / 2])
    # the reference: the largest representable magnitude at or below |x| (or the smallest, for e8m0)
    below = np.maximum(np.searchsorted(values, x, side="right") - 1, 0)
    np.testing.assert_array_equal(dt.encode(x, d, "zero"), codes[below])
    if d.is_signed:
        np.testing.assert_array_equal(dt.encode(-x, d, "zero"), codes[below] | (1 << (d.nbits - 1)))


STOCHASTIC_CASES = [  # (dtype, x, the representable neighbours below and above x)
    (dt.float4_e2m1, 2.3, 2.0, 3.0),
    (dt.float4_e2m1, -0.3, -0.5, 0.0),
    (dt.float8_e4m3, 0.1, 12 * 2.0**-7, 13 * 2.0**-7),  # binade [1/16, 1/8), step 2^-7
    (dt.float8_e5m2, -1000.0, -1024.0, -896.0),  # binade [512, 1024), step 128
    (dt.float6_e3m2, 13.7, 12.0, 14.0),
    (dt.e8m0, 0.3, 0.25, 0.5),
    (dt.int4, -2.2, -3.0, -2.0),
    (dt.uint8, 100.9, 100.0, 101.0),
    (dt.bfloat16, 1.001, 1.0, 1 + 2.0**-7),
]


@pytest.mark.parametrize(("d", "x", "low", "high"), STOCHASTIC_CASES, ids=lambda v: str(v))
def test_stochastic_rounding_is_unbiased(d, x, low, high):
    draws = 20000
    results = dt.round_to_dtype(np.full(draws, x), d, "stochastic", np.random.default_rng(5))
    assert set(results.tolist()) == {low, high}
    p = (x - low) / (high - low)  # the probability of rounding up
    sigma = (high - low) * math.sqrt(p * (1 - p) / draws)
    assert abs(results.astype(np.float64).mean() - x) <= 5 * sigma


def test_stochastic_rounding_of_representable_values_is_exact():
    values = dt.representable_values(dt.float6_e2m3)
    results = dt.round_to_dtype(values, dt.float6_e2m3, "stochastic", np.random.default_rng(0))
    np.testing.assert_array_equal(results, values)


def test_rounding_errors():
    with pytest.raises(ValueError, match=r"rounding='stochastic' needs rng, a numpy.random.Generator"):
        dt.encode([1.0], dt.float4_e2m1, "stochastic")
    with pytest.raises(ValueError, match=r"rounding='stochastic' needs rng"):
        dt.encode([1.0], dt.int4, "stochastic", rng=np.random.RandomState(0))
    with pytest.raises(ValueError, match=r"unknown rounding 'up'; valid modes: nearest, zero, stochastic"):
        dt.encode([1.0], dt.int4, "up")


finite_floats = st.floats(allow_nan=False, allow_infinity=True, width=64)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([*NARROW_FLOATS, *INTEGERS, dt.float16, dt.bfloat16]), finite_floats, finite_floats)
def test_encode_is_monotone(d, a, b):
    low, high = sorted([a, b])
    for rounding in ("nearest", "zero"):
        rounded = dt.round_to_dtype([low, high], d, rounding)
        assert rounded[0] <= rounded[1]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(NARROW_FLOATS), st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_nearest_is_a_nearest_representable_value(d, x):
    values, _ = finite_table(d)
    table = np.concatenate([-values, values]) if d.is_signed else values
    rounded = float(dt.round_to_dtype([x], d)[0])
    if d.min_value <= x <= d.max_value:
        assert abs(rounded - x) == np.abs(table - x).min()
        assert float(dt.round_to_dtype([rounded], d)[0]) == rounded  # idempotent


@pytest.mark.parametrize("d", [dt.int1, dt.int3, dt.int8, dt.uint1, dt.uint5, dt.int16, dt.uint32], ids=str)
def test_wrap_integer_is_modulo_two_to_the_n(d):
    n = d.nbits
    values = (
        np.arange(-(2 ** (n + 1)) - 3, 2 ** (n + 1) + 3) if n <= 8 else np.array([-(2**40) - 1, 2**33 + 5])
    )
    expected = [
        (v + 2 ** (n - 1)) % 2**n - 2 ** (n - 1) if d.is_signed else v % 2**n for v in values.tolist()
    ]
    assert dt.wrap_integer(values, d).tolist() == expected


def test_wrap_integer_64_bits_bool_and_errors():
    assert dt.wrap_integer([-1], dt.uint64).tolist() == [2**64 - 1]
    assert dt.wrap_integer([-1, 5], dt.int64).tolist() == [-1, 5]
    assert dt.wrap_integer([0, 2, -1], dt.boolean).tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match="wrap_integer needs an integer or bool dtype, not float8_e4m3"):
        dt.wrap_integer([1], dt.float8_e4m3)
    with pytest.raises(ValueError, match="wrap_integer needs integer values, not float64"):
        dt.wrap_integer([1.5], dt.int4)
