"""``tv.floor``, ``tv.ceil``, ``tv.round`` (half to even) and ``tv.trunc`` on tiles and scalars: against torch
on float16, bfloat16 and float32, against numpy on the low-bit floats through the dtype codec, and the
identity on integers (as torch); bool and e8m0 (which has no zero) are refused at the line."""

import numpy as np
import pytest
import torch

import tilevm as tv
from tilevm import dtypes

OPS = ("floor", "ceil", "round", "trunc")
NUMPY = {"floor": np.floor, "ceil": np.ceil, "round": np.rint, "trunc": np.trunc}
TORCH_FLOATS = {tv.float16: torch.float16, tv.bfloat16: torch.bfloat16, tv.float32: torch.float32}
BLOCK = 64


@tv.kernel(num_warps=1)
def rounding(x: tv.Tensor, out: tv.Tensor, OP: tv.constexpr, BLOCK: tv.constexpr):
    start = tv.block_idx() * BLOCK
    tile = tv.load_global(x, offsets=[start], shape=[BLOCK])
    if OP == "floor":
        result = tv.floor(tile)
    elif OP == "ceil":
        result = tv.ceil(tile)
    elif OP == "round":
        result = tv.round(tile)
    else:
        result = tv.trunc(tile)
    tv.store_global(out, result, offsets=[start])


def run(op: str, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    rounding[(-(-x.numel() // BLOCK),)](x, out, OP=op, BLOCK=BLOCK)
    return out


def special_values(dtype: dtypes.DType) -> torch.Tensor:
    """-0.0, infinities, NaN, the halves around zero (ties), values near and beyond 2^mantissa (where every
    value is an integer), and seeded random values, ragged in count."""
    mantissa, torch_dtype = dtype.mantissa_bits, TORCH_FLOATS[dtype]
    big = 2.0**mantissa
    halves = np.arange(-5, 6) + 0.5
    edges = [big - 1.5, big - 0.5, big, big + 1, 2 * big + 2, 3 * big, torch.finfo(torch_dtype).max]
    rng = np.random.default_rng(mantissa)
    values = [0.0, -0.0, np.inf, -np.inf, np.nan, 0.25, -0.25, 0.75, -0.75, 1e-7, -1e-7, *halves, *edges]
    values += [-v for v in edges] + list(rng.uniform(-40, 40, 77)) + list(rng.standard_normal(20) * big)
    return torch.tensor(values, dtype=torch.float64).to(torch_dtype)


def assert_same_floats(result: np.ndarray, expected: np.ndarray) -> None:
    """Equal, NaN where NaN, and zeros of the same sign (tilevm's NaN is one canonical value: no sign)."""
    np.testing.assert_array_equal(result, expected)
    numbers = ~np.isnan(expected)
    np.testing.assert_array_equal(np.signbit(result[numbers]), np.signbit(expected[numbers]))


@pytest.mark.parametrize("dtype", list(TORCH_FLOATS), ids=str)
@pytest.mark.parametrize("op", OPS)
def test_rounding_matches_torch(dtype, op):
    x = special_values(dtype)
    result = run(op, x, torch.empty_like(x))
    expected = getattr(torch, op)(x)
    assert result.dtype == x.dtype
    assert_same_floats(result.double().numpy(), expected.double().numpy())


def test_round_is_half_to_even():
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, 4.5], dtype=torch.float16)
    result = run("round", x, torch.empty_like(x)).double().numpy()
    assert_same_floats(result, np.array([0.0, 2.0, 2.0, -0.0, -2.0, -2.0, 4.0, 4.0]))


@pytest.mark.parametrize("dtype", [tv.float8_e4m3, tv.float8_e5m2, tv.float4_e2m1, tv.float6_e3m2], ids=str)
@pytest.mark.parametrize("op", OPS)
def test_low_bit_floats_round_every_code_as_numpy(dtype, op):
    codes = np.arange(dtype.num_codes)
    x = torch.from_numpy(dtypes.pack(codes, dtype))
    out = torch.from_numpy(dtypes.pack(np.zeros(dtype.num_codes, dtype=np.int64), dtype))
    rounding[(-(-dtype.num_codes // BLOCK),)](tv.view(x, dtype), tv.view(out, dtype), OP=op, BLOCK=BLOCK)
    result = dtypes.decode(dtypes.unpack(out.numpy(), dtype, dtype.num_codes), dtype).astype(np.float64)
    expected = NUMPY[op](dtypes.decode(codes, dtype).astype(np.float64))
    # the integral value is on the format's grid: encoding it loses nothing
    np.testing.assert_array_equal(dtypes.decode(dtypes.encode(expected, dtype), dtype), expected)
    assert_same_floats(result, expected)


@pytest.mark.parametrize(
    ("dtype", "torch_dtype"),
    [(tv.int8, torch.int8), (tv.int32, torch.int32), (tv.uint8, torch.uint8)],
    ids=str,
)
@pytest.mark.parametrize("op", OPS)
def test_rounding_is_the_identity_on_integers_as_torch(dtype, torch_dtype, op):
    info = torch.iinfo(torch_dtype)
    x = torch.from_numpy(np.random.default_rng(dtype.nbits).integers(info.min, info.max, 70, endpoint=True))
    x = x.to(torch_dtype)
    result = run(op, x, torch.zeros_like(x))
    assert torch.equal(result, getattr(torch, op)(x))


@tv.kernel(num_warps=1)
def scalar_rounding(value: float, out: tv.Tensor):
    tile = tv.register_tensor(tv.float32, [4], -0.0)  # -0.0 + v is v, zeros keep their sign
    values = tv.where(tv.arange(4) == 0, tile + tv.floor(value), tile + tv.ceil(value))
    values = tv.where(tv.arange(4) == 2, tile + tv.round(value), values)
    tv.store_global(out, tv.where(tv.arange(4) == 3, tile + tv.trunc(value), values), offsets=[0])


@pytest.mark.parametrize("value", [2.5, -2.5, -0.5, 3.5, 1e9 + 0.5, -7.25])
def test_scalar_rounding_matches_torch(value):
    out = torch.empty(4)
    scalar_rounding[(1,)](value, out)
    reference = torch.tensor(value, dtype=torch.float32)
    expected = [getattr(torch, op)(reference).item() for op in OPS]
    assert_same_floats(out.double().numpy(), np.array(expected))


@tv.kernel(num_warps=1)
def round_bools(x: tv.Tensor, out: tv.Tensor[tv.boolean]):
    tv.store_global(out, tv.round(tv.load_global(x, offsets=[0], shape=[8]) > 0.0), offsets=[0])


@tv.kernel(num_warps=1)
def floor_scales(x: tv.Tensor[tv.e8m0], out: tv.Tensor[tv.e8m0]):
    tv.store_global(out, tv.floor(tv.load_global(x, offsets=[0], shape=[8])), offsets=[0])


def test_bool_and_e8m0_are_refused_at_the_line():
    with pytest.raises(
        tv.CompilationError, match="'round' needs float or integer operands, got bool"
    ) as error:
        round_bools[(1,)](torch.ones(8), torch.zeros(8, dtype=torch.uint8))
    assert error.value.location.line == round_bools.function.__code__.co_firstlineno + 2
    scales = torch.full((8,), 126, dtype=torch.uint8)  # 0.5, whose floor 0 e8m0 cannot hold
    with pytest.raises(
        tv.CompilationError, match="'floor' needs a float format with zero, got e8m0"
    ) as error:
        floor_scales[(1,)](scales, scales.clone())
    assert error.value.location.line == floor_scales.function.__code__.co_firstlineno + 2
