"""``tv.cast`` from float to integer: by default it truncates as torch's ``.to(dtype)`` does, and it saturates
out of range (where torch is undefined), with NaN giving 0, for every target width."""

import numpy as np
import pytest
import torch

import tilevm as tv
from tilevm import dtypes, ir

SOURCES = {tv.float32: torch.float32, tv.float16: torch.float16, tv.bfloat16: torch.bfloat16}
TARGETS = {tv.int8: torch.int8, tv.int16: torch.int16, tv.int32: torch.int32, tv.uint8: torch.uint8}
BLOCK = 32


@tv.kernel(num_warps=1)
def convert(x: tv.Tensor, out: tv.Tensor, TARGET: tv.constexpr, BLOCK: tv.constexpr):
    start = tv.block_idx() * BLOCK
    tv.store_global(out, tv.cast(tv.load_global(x, offsets=[start], shape=[BLOCK]), TARGET), offsets=[start])


def run(x: torch.Tensor, out: torch.Tensor, target, count: int) -> None:
    convert[(-(-count // BLOCK),)](x, out, TARGET=target, BLOCK=BLOCK)


def in_range_values(source, target, rng) -> torch.Tensor:
    """Random values of the source dtype that truncate into the target's range: spread over the range, small
    ones, the halves k + 0.5 and their negatives, and the ends of the range."""
    low, high = max(target.min_value, -60000), min(target.max_value, 60000)
    spread = rng.uniform(low - 0.99, high + 0.99, size=40)
    small = rng.uniform(-3, 3, size=40)
    halves = np.concatenate([np.arange(-6, 7) + 0.5, rng.integers(low, high, size=10) + 0.5])
    ends = np.array([target.min_value, target.max_value, target.max_value + 0.75, target.min_value - 0.75])
    values = torch.tensor(np.concatenate([spread, small, halves, ends])).to(SOURCES[source])
    truncated = np.trunc(values.double().numpy())
    return values[torch.from_numpy((truncated >= target.min_value) & (truncated <= target.max_value))]


@pytest.mark.parametrize("source", list(SOURCES), ids=str)
@pytest.mark.parametrize("target", list(TARGETS), ids=str)
def test_in_range_values_equal_torch(source, target):
    rng = np.random.default_rng(source.nbits * 100 + target.nbits)
    x = in_range_values(source, target, rng)
    out = torch.zeros(len(x), dtype=TARGETS[target])
    run(x, out, target, len(x))
    torch.testing.assert_close(out, x.to(TARGETS[target]), rtol=0, atol=0)


def saturated(values: np.ndarray, target) -> np.ndarray:
    """numpy's reference for out-of-range values: truncate, clip to the target's range, NaN to 0."""
    return np.clip(np.trunc(np.nan_to_num(values, nan=0.0)), target.min_value, target.max_value)


@pytest.mark.parametrize("source", list(SOURCES), ids=str)
@pytest.mark.parametrize("target", list(TARGETS), ids=str)
def test_out_of_range_values_saturate_and_nan_gives_zero(source, target):
    candidates = [np.nan, np.inf, -np.inf, 1e4, -1e4, 65504.0, -65504.0, 3e9, -3e9, 1e38, -1e38, 255.9, -1.5]
    values = torch.tensor(candidates, dtype=torch.float64).to(SOURCES[source])
    as_float64 = values.double().numpy()
    truncated = np.trunc(as_float64)
    outside = np.isnan(as_float64) | (truncated < target.min_value) | (truncated > target.max_value)
    x = values[torch.from_numpy(outside)]
    out = torch.full((len(x),), 7, dtype=TARGETS[target])
    run(x, out, target, len(x))
    np.testing.assert_array_equal(out.numpy(), saturated(x.double().numpy(), target))


@pytest.mark.parametrize("target", [tv.int1, tv.int3, tv.int4, tv.uint1, tv.uint3, tv.uint7], ids=str)
def test_sub_byte_targets_truncate_then_saturate(target):
    count = 40  # 40 * n bits: a whole number of bytes for every width
    rng = np.random.default_rng(target.nbits)
    x = np.concatenate([rng.uniform(-200, 200, size=count - 14), np.arange(-3, 3) + 0.5, [-0.7, 0.7]])
    x = np.concatenate([x, [np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0]]).astype(np.float32)
    packed = torch.zeros(count * target.nbits // 8, dtype=torch.uint8)
    run(torch.from_numpy(x), tv.view(packed, target), target, count)
    result = dtypes.decode(dtypes.unpack(packed.numpy(), target, count), target)
    np.testing.assert_array_equal(result, saturated(x.astype(np.float64), target))


def test_the_default_rounding_is_explicit_in_the_ir():
    @tv.kernel(num_warps=1)
    def casts(x: tv.Tensor[tv.float32, 1], n: tv.Tensor[tv.int32, 1], y: float):
        tile = tv.load_global(x, offsets=[0], shape=[4])
        whole = tv.load_global(n, offsets=[0], shape=[4])
        tv.store_global(
            n, tv.cast(tile, tv.int32) + tv.cast(tv.cast(tile, tv.float16), tv.int32), offsets=[0]
        )
        tv.store_global(x, tv.cast(whole, tv.float32) + tv.cast(tv.cast(y, tv.int8), tv.float32), offsets=[0])

    program = casts.ir(torch.zeros(4), torch.zeros(4, dtype=torch.int32), 1.5)
    roundings = [(str(cast.operand.type.dtype), str(cast.dtype), cast.rounding) for cast in program.body
                 if isinstance(cast, ir.Cast)]  # fmt: skip
    assert roundings == [
        ("float32", "int32", "zero"),
        ("float32", "float16", "nearest"),
        ("float16", "int32", "zero"),
        ("int32", "float32", "nearest"),
    ]
    assert 'cast<float32>(cast<int8, "zero">(%y))' in ir.print_program(program)
