"""Weight formats (presets against the OCP MX and NVFP4 definitions, the supported combinations and their
errors) and the torch codec of the quantizer, against the numpy reference codec."""

import math

import numpy as np
import pytest
import torch

import tilevm as tv
from tilevm.ops import WeightFormat
from tilevm.ops.quantization import PRESETS, codecs
from tilevm.ops.quantization.formats import code_dtypes

FLOAT_CODES = [d for d in code_dtypes() if d.is_float]
INTEGER_CODES = [d for d in code_dtypes() if d.is_integer]


def test_code_dtypes_are_every_integer_and_float_of_up_to_8_bits():
    names = {d.name for d in code_dtypes()}
    assert {f"int{n}" for n in range(1, 9)} | {f"uint{n}" for n in range(1, 9)} <= names
    floats = {f"float{1 + e + m}_e{e}m{m}" for e in range(1, 8) for m in range(8) if 3 <= 1 + e + m <= 8}
    assert names == {f"int{n}" for n in range(1, 9)} | {f"uint{n}" for n in range(1, 9)} | floats


@pytest.mark.parametrize(
    ("name", "code", "group_size", "scale_dtype", "global_scale"),
    [
        # OCP Microscaling Formats v1.0, table 1: MXFP8 E5M2 / E4M3, MXFP6 E3M2 / E2M3, MXFP4 E2M1;
        # block size k = 32, scale E8M0
        ("mxfp8_e5m2", tv.float8_e5m2, 32, tv.e8m0, False),
        ("mxfp8_e4m3", tv.float8_e4m3, 32, tv.e8m0, False),
        ("mxfp6_e3m2", tv.float6_e3m2, 32, tv.e8m0, False),
        ("mxfp6_e2m3", tv.float6_e2m3, 32, tv.e8m0, False),
        ("mxfp4", tv.float4_e2m1, 32, tv.e8m0, False),
        # NVFP4: E2M1 elements, an E4M3 (unsigned) scale per 16, an FP32 per-tensor scale
        ("nvfp4", tv.float4_e2m1, 16, tv.ue4m3, True),
    ],
)
def test_presets_follow_the_mx_and_nvfp4_definitions(name, code, group_size, scale_dtype, global_scale):
    fmt = WeightFormat.preset(name)
    assert (fmt.dtype, fmt.group_size, fmt.scale_dtype) == (code, group_size, scale_dtype)
    assert (fmt.has_zeros, fmt.has_global_scale) == (False, global_scale)
    assert PRESETS[name] is fmt


def test_format_defaults_and_names():
    assert WeightFormat("u5").has_zeros and not WeightFormat(tv.int5).has_zeros
    assert WeightFormat("f6e3m2", 64).dtype is tv.float6_e3m2
    assert WeightFormat(tv.float4_e2m1, 16, "ue4m3").has_global_scale
    assert WeightFormat(tv.int8, None).group_size is None
    assert WeightFormat(tv.int4) == WeightFormat("int4", 128, None, False, False)
    resolved = WeightFormat(tv.uint2, None).resolve(96, torch.bfloat16)
    assert (resolved.group_size, resolved.scale_dtype, resolved.has_zeros) == (96, tv.bfloat16, True)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((tv.int16,), "dtype=tilevm.int16 is not a weight code dtype"),
        (("float16",), "dtype='float16' is not a weight code dtype"),
        ((tv.e8m0,), "is not a weight code dtype"),
        ((tv.float2_e1m0,), "a float of 3 to 8"),
        (("mxfp5",), "dtype='mxfp5' is not a weight code dtype"),
        ((tv.int4, 48), "group_size=48 is not supported"),
        ((tv.int4, 256), "group_size=256 is not supported"),
        ((tv.int4, 32.0), "group_size=32.0 is not supported"),
        ((tv.int4, True), "group_size=True is not supported"),
        ((tv.int4, 32, tv.float32), "scale_dtype=tilevm.float32 must be float16, bfloat16, e8m0 or ue4m3"),
        ((tv.int8, 32, tv.e8m0), "scale_dtype=e8m0 (a block scale of the MX / NVFP4 formats) needs a float"),
        ((tv.uint4, 32, None, False), "zero_point=False does not fit uint4"),
        ((tv.int4, 32, None, True), "zero_point=True does not fit int4"),
        ((tv.float4_e2m1, 32, None, True), "zero_point=True does not fit float4_e2m1"),
        ((tv.float4_e2m1, 16, tv.ue4m3, False, False), "global_scale=False does not fit scale_dtype=ue4m3"),
        ((tv.float4_e2m1, 16, tv.e8m0, False, True), "global_scale=True does not fit scale_dtype=e8m0"),
    ],
)
def test_unsupported_formats_are_rejected_naming_the_argument(arguments, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        WeightFormat(*arguments)


def test_resolve_checks_the_group_size_and_the_compute_dtype():
    with pytest.raises(ValueError, match=r"group_size=64 must divide K = 96"):
        WeightFormat(tv.int4, 64).resolve(96, torch.float16)
    with pytest.raises(ValueError, match=r"scale_dtype=float16 must be the compute dtype bfloat16"):
        WeightFormat(tv.int4, 32, tv.float16).resolve(64, torch.bfloat16)
    with pytest.raises(
        ValueError, match=r"compute_dtype must be torch.float16 or torch.bfloat16, not torch.float32"
    ):
        WeightFormat(tv.int4, 32).resolve(64, torch.float32)
    with pytest.raises(ValueError, match=r"dtype='nvfp5' is not a preset"):
        WeightFormat.preset("nvfp5")


def float_test_values(dtype: tv.DType, rng: np.random.Generator) -> np.ndarray:
    """Every value of ``dtype`` up to its largest finite one, every midpoint between neighbours (the ties),
    the float64 neighbours of each midpoint, and random values; both signs and both zeros."""
    values = tv.representable_values(dtype).astype(np.float64)
    finite = np.unique(values[np.isfinite(values) & (values >= 0) & (values <= dtype.max_value)])
    midpoints = (finite[1:] + finite[:-1]) / 2
    around = np.concatenate([np.nextafter(midpoints, 0), np.nextafter(midpoints, np.inf)])
    random = rng.uniform(0, dtype.max_value, 200)
    magnitudes = np.concatenate([finite, midpoints, around, random])
    return np.concatenate([magnitudes, -magnitudes, [-0.0]])


@pytest.mark.parametrize("dtype", [*FLOAT_CODES, tv.ue4m3], ids=str)
def test_encode_float_matches_the_reference_codec(dtype):
    rng = np.random.default_rng(dtype.nbits * 100 + dtype.mantissa_bits)
    values = float_test_values(dtype, rng)
    if not dtype.is_signed:
        values = values[values >= 0]
    codes = codecs.encode_float(torch.from_numpy(values), dtype)
    np.testing.assert_array_equal(codes.numpy(), tv.encode(values, dtype))


@pytest.mark.parametrize("dtype", [tv.float8_e5m2, tv.float8_e4m3, tv.float4_e2m1, tv.ue4m3], ids=str)
def test_encode_float_saturates_beyond_the_largest_finite_value(dtype):
    largest = float(dtype.max_value)
    values = torch.tensor([largest * 1.2, largest * 1e6, 1e300], dtype=torch.float64)
    expected = int(tv.encode(largest, dtype))
    assert codecs.encode_float(values, dtype).tolist() == [expected] * 3
    if dtype.is_signed:
        assert codecs.encode_float(-values, dtype).tolist() == [int(tv.encode(-largest, dtype))] * 3


@pytest.mark.parametrize("dtype", INTEGER_CODES, ids=str)
def test_encode_integer_matches_the_reference_codec(dtype):
    rng = np.random.default_rng(dtype.nbits + 20 * dtype.is_signed)
    low, high = dtype.min_value, dtype.max_value
    ties = np.arange(low - 2, high + 2) + 0.5
    values = np.concatenate(
        [ties, np.nextafter(ties, 0), rng.uniform(low - 3, high + 3, 100), [-0.0, 1e9, -1e9]]
    )
    codes = codecs.encode_integer(torch.from_numpy(values), dtype)
    np.testing.assert_array_equal(codes.numpy(), tv.encode(values, dtype))


@pytest.mark.parametrize("dtype", [*code_dtypes(), tv.e8m0, tv.ue4m3], ids=str)
def test_decode_matches_the_reference_codec(dtype):
    codes = np.arange(dtype.num_codes, dtype=np.uint8)
    decoded = codecs.decode(torch.from_numpy(codes), dtype).numpy()
    np.testing.assert_array_equal(decoded, tv.decode(codes, dtype).astype(np.float64))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_round_float64_rounds_once(dtype):
    """Midpoints between neighbours of the target format, nudged by one float64 ulp, are where rounding
    through float32 goes wrong (the nudge is lost, then the tie goes to even)."""
    rng = np.random.default_rng(7 if dtype == torch.float16 else 8)
    target = tv.float16 if dtype == torch.float16 else tv.bfloat16
    lows = np.concatenate([rng.uniform(-4, 4, 300), rng.uniform(-1e-6, 1e-6, 50), [65504.0, 6e-8, 1e-40]])
    lows = tv.round_to_dtype(lows, target).astype(np.float64)
    _, exponent = np.frexp(lows)  # |low| in [2^(exponent - 1), 2^exponent): its ulp, for normal values
    midpoints = lows + np.ldexp(1.0, exponent - 2 - target.mantissa_bits)
    values = np.concatenate(
        [midpoints, np.nextafter(midpoints, np.inf), np.nextafter(midpoints, -np.inf), lows]
    )
    expected = tv.round_to_dtype(values, target).astype(np.float64)
    rounded = codecs.round_float64(torch.from_numpy(values), dtype).to(torch.float64).numpy()
    np.testing.assert_array_equal(rounded, expected)
    assert (
        torch.from_numpy(values).to(dtype).to(torch.float64).numpy() != expected
    ).sum() > 100  # torch's own
    assert (
        codecs.round_float64(torch.from_numpy(values), torch.float32).numpy() == values.astype(np.float32)
    ).all()


def test_power_of_two_is_exact():
    exponents = torch.tensor([-1022, -149, -127, -1, 0, 1, 52, 127, 1023])
    expected = [math.ldexp(1.0, int(e)) for e in exponents]
    assert codecs.power_of_two(exponents).tolist() == expected
