"""Control flow and variables in the DSL, run on the CPU and compared with the same computation in Python."""

import numpy as np
import pytest
import torch

import tilevm as tv
from tilevm import dtypes, ir


def collect(body, kind):
    found = []
    for instruction in body:
        if isinstance(instruction, kind):
            found.append(instruction)
        for field in ("body", "then_body", "else_body"):
            found.extend(collect(getattr(instruction, field, ()), kind))
    return found


@tv.kernel(num_warps=1)
def loop_carried(x: tv.Tensor[tv.float32, 2], out: tv.Tensor[tv.float32, 2], counts: tv.Tensor[tv.int32, 1],
                 n_tiles: int, limit: int, BLOCK: tv.constexpr):  # fmt: skip
    row = tv.block_idx()
    total = tv.register_tensor(tv.float32, [1, BLOCK], init=0.0)
    visited = 0
    for tile in range(n_tiles):
        values = tv.load_global(x, offsets=[row, tile * BLOCK], shape=[1, BLOCK])
        if tile % 2 == 0:  # noqa: SIM108  (a runtime if/else is what this test exercises)
            total = total + values
        else:
            total = total - values
        visited += 1
    steps = 0
    value = row + 1
    while value < limit:
        value = value * 2
        steps += 1
    for _ in tv.static_range(3):
        total = total * 2.0
    tv.store_global(out, total, offsets=[row, 0])
    tv.store_global(counts, tv.register_tensor(tv.int32, [1], init=visited * 100 + steps), offsets=[row])


def test_loop_carried_tiles_and_scalars_match_python():
    generator = torch.Generator().manual_seed(11)
    rows, block, n_tiles, limit = 5, 8, 5, 37
    x = torch.randn(rows, n_tiles * block - 3, generator=generator)  # the last tile is ragged
    out = torch.full((rows, block), float("nan"))
    counts = torch.full((rows,), -1, dtype=torch.int32)
    loop_carried[(rows,)](x, out, counts, n_tiles, limit, BLOCK=block)

    padded = torch.nn.functional.pad(x, (0, 3)).double().reshape(rows, n_tiles, block)
    signs = torch.tensor([1.0 if tile % 2 == 0 else -1.0 for tile in range(n_tiles)], dtype=torch.float64)
    expected = (padded * signs[None, :, None]).sum(dim=1) * 8
    torch.testing.assert_close(out.double(), expected, rtol=1e-6, atol=1e-6)  # float32 sums of 5 terms
    for row in range(rows):
        value, steps = row + 1, 0
        while value < limit:
            value, steps = value * 2, steps + 1
        assert counts[row].item() == n_tiles * 100 + steps


def test_static_range_unrolls_and_range_makes_an_ir_loop():
    program = loop_carried.ir(torch.randn(2, 16), torch.randn(2, 8), torch.zeros(2, dtype=torch.int32), 2, 5,
                              BLOCK=8)  # fmt: skip
    assert len(collect(program.body, ir.For)) == 1
    assert len(collect(program.body, ir.While)) == 1
    assert len(collect(program.body, ir.If)) == 1
    multiplies = [inst for inst in collect(program.body, ir.Binary) if inst.op == "mul"]
    assert len(multiplies) == 3  # the static_range body, three times


def test_unroll_hint_and_compile_time_if():
    @tv.kernel(num_warps=1)
    def hinted(x: tv.Tensor[tv.float32, 1], n: int, SCALE: tv.constexpr):
        acc = tv.register_tensor(tv.float32, [4], init=0.0)
        for i in tv.range(0, n, 2, unroll=4):
            acc = acc + tv.load_global(x, offsets=[i], shape=[4])
        if SCALE:
            acc = acc * 3.0
        tv.store_global(x, acc, offsets=[0])

    with_scale = hinted.ir(torch.randn(16), 4, SCALE=True)
    without = hinted.ir(torch.randn(16), 4, SCALE=False)
    assert collect(with_scale.body, ir.For)[0].unroll == 4
    assert not collect(with_scale.body, ir.If)
    count_muls = lambda program: sum(inst.op == "mul" for inst in collect(program.body, ir.Binary))  # noqa: E731
    assert count_muls(with_scale) == 1 and count_muls(without) == 0

    generator = torch.Generator().manual_seed(12)
    x = torch.randn(16, generator=generator)
    expected = sum(x[i : i + 4].double() for i in range(0, 10, 2)) * 3
    hinted[(1,)](x, 10, SCALE=True)
    torch.testing.assert_close(x[:4].double(), expected, rtol=1e-6, atol=1e-6)


def test_grid_function_and_two_grid_axes():
    @tv.kernel(num_warps=1)
    def index_grid(out: tv.Tensor[tv.int32, 2]):
        row, column = tv.block_idx(0), tv.block_idx(1)
        value = row * 1000 + column + tv.num_blocks(1) * 0
        tv.store_global(out, tv.register_tensor(tv.int32, [1, 1], init=value), offsets=[row, column])

    out = torch.full((3, 7), -1, dtype=torch.int32)
    index_grid[lambda args: args["out"].shape](out)
    expected = np.arange(3)[:, None] * 1000 + np.arange(7)[None, :]
    np.testing.assert_array_equal(out.numpy(), expected)


@pytest.mark.parametrize("dtype", [tv.int3, tv.uint5, tv.float6_e3m2, tv.float4_e2m1])
def test_low_bit_tensor_through_a_host_view(dtype):
    @tv.kernel(num_warps=1)
    def widen(packed: tv.Tensor, out: tv.Tensor[tv.float32, 1], COUNT: tv.constexpr):
        tv.store_global(
            out, tv.cast(tv.load_global(packed, offsets=[0], shape=[COUNT]), tv.float32), offsets=[0]
        )

    rng = np.random.default_rng(dtype.nbits)
    count = 40  # 40 * n bits: a whole number of bytes for every width here
    codes = rng.integers(0, 1 << dtype.nbits, size=count, dtype=np.uint64).astype(np.uint8)
    packed = torch.from_numpy(dtypes.pack(codes, dtype))
    out = torch.full((count,), float("nan"))
    widen[(1,)](tv.view(packed, dtype), out, COUNT=count)
    np.testing.assert_array_equal(out.numpy(), dtypes.decode(codes, dtype).astype(np.float32))


def test_scalar_arithmetic_follows_python():
    @tv.kernel(num_warps=1)
    def arithmetic(out: tv.Tensor[tv.int32, 1], a: int, b: int):
        results = [a // b, a % b, (a * 3 - b) // 4, tv.cdiv(a if True else 0, 5), -a // b, a << 2, a >> 1]
        for position in tv.static_range(len(results)):
            cell = tv.register_tensor(tv.int32, [1], init=results[position])
            tv.store_global(out, cell, offsets=[position])

    for a, b in [(17, 5), (-17, 5), (17, -5), (-17, -5), (0, 3)]:
        out = torch.full((7,), -99, dtype=torch.int32)
        arithmetic[(1,)](out, a, b)
        expected = [a // b, a % b, (a * 3 - b) // 4, -(-a // 5), -a // b, a << 2, a >> 1]
        assert out.tolist() == expected, (a, b)


def test_scalar_casts_round_as_asked():
    @tv.kernel(num_warps=1)
    def casts(out: tv.Tensor[tv.int32, 1], x: float):
        values = [
            tv.cast(x, tv.int32, rounding="nearest"),
            tv.cast(x, tv.int32, "zero"),
            tv.cast(-x, tv.int32),
        ]
        for position in tv.static_range(3):
            tv.store_global(out, tv.register_tensor(tv.int32, [1], init=values[position]), offsets=[position])

    for x in (2.5, 3.5, 2.75, 1e10):
        out = torch.full((3,), -99, dtype=torch.int32)
        casts[(1,)](out, x)
        clamp = lambda value: max(min(value, 2**31 - 1), -(2**31))  # noqa: E731  (casts saturate)
        assert out.tolist() == [clamp(round(x)), clamp(int(x)), clamp(int(-x))], x  # round(): ties to even

    with pytest.raises(tv.CompilationError, match="cast's rounding is one of nearest, zero, got 'up'"):

        @tv.kernel
        def bad(out: tv.Tensor[tv.int32, 1], x: float):
            tv.cast(x, tv.int32, rounding="up")

        bad.ir(torch.zeros(1, dtype=torch.int32), 1.0)
