"""Promotion in the DSL: a Python float or a runtime float scalar beside a float16 tile takes the tile's
dtype, and an int32 scalar with an int64 scalar widens to int64. (Two tiles of different dtypes stay an
error: ``test_lang_errors.test_mixed_dtypes_need_a_cast``.)"""

import numpy as np
import torch

import tilevm as tv
from tilevm import ir

COUNT, BLOCK = 50, 64


@tv.kernel(num_warps=1)
def scaled(x: tv.Tensor[tv.float16, 1], products: tv.Tensor[tv.float16, 1], sums: tv.Tensor[tv.float16, 1],
           by_scalar: tv.Tensor[tv.float16, 1], chosen: tv.Tensor[tv.float16, 1], scale: float,
           BLOCK: tv.constexpr):  # fmt: skip
    tile = tv.load_global(x, offsets=[0], shape=[BLOCK])
    tv.store_global(products, tile * 0.1, offsets=[0])
    tv.store_global(sums, 0.1 + tile, offsets=[0])
    tv.store_global(by_scalar, scale * tile, offsets=[0])
    tv.store_global(chosen, tv.where(tile > 0.0, tile, scale), offsets=[0])


def test_float_scalars_beside_a_float16_tile_take_its_dtype():
    """The executor computes each elementwise op as the float16 result correctly rounded from the exact
    one; the operands are float16 (0.1 and the float32 scalar round to nearest), and float64 holds the exact
    sum and product of two float16 values, so the reference is float64 arithmetic on the float16 operands,
    rounded once to float16. For the product that is also what torch computes with a float16 scalar tensor."""
    rng = np.random.default_rng(8)
    x = torch.from_numpy(rng.uniform(-300, 300, size=COUNT)).to(torch.float16)
    scale = 0.3
    outputs = [torch.full((COUNT,), float("nan"), dtype=torch.float16) for _ in range(4)]
    scaled[(1,)](x, *outputs, scale, BLOCK=BLOCK)

    tenth = torch.tensor(0.1, dtype=torch.float16).double()
    scale_half = torch.tensor(scale, dtype=torch.float32).to(torch.float16).double()
    products, sums, by_scalar, chosen = outputs
    torch.testing.assert_close(products, (x.double() * tenth).to(torch.float16), rtol=0, atol=0)
    torch.testing.assert_close(products, x * torch.tensor(0.1, dtype=torch.float16), rtol=0, atol=0)
    torch.testing.assert_close(sums, (x.double() + tenth).to(torch.float16), rtol=0, atol=0)
    torch.testing.assert_close(by_scalar, (x.double() * scale_half).to(torch.float16), rtol=0, atol=0)
    torch.testing.assert_close(chosen, torch.where(x > 0, x, scale_half.to(torch.float16)), rtol=0, atol=0)

    program = scaled.ir(x, *outputs, scale, BLOCK=BLOCK)
    binaries = [instruction for instruction in program.body if isinstance(instruction, ir.Binary)]
    operands = [(str(binary.lhs.type.dtype), str(binary.rhs.type.dtype)) for binary in binaries]
    assert operands == [("float16", "float16")] * 4  # products, sums, by_scalar, tile > 0.0
    assert "cast<float16>(%scale)" in ir.print_program(program)


@tv.kernel(num_warps=1)
def far_offsets(table: tv.Tensor[tv.float32, 1], offsets: tv.Tensor[tv.int64, 1],
                picked: tv.Tensor[tv.float32, 1], parts: tv.Tensor[tv.int64, 1],
                stride: tv.int64):  # fmt: skip
    block = tv.block_idx()
    offset = block * stride
    tv.store_global(offsets, tv.register_tensor(tv.int64, [1], init=offset), offsets=[block])
    tv.store_global(picked, tv.load_global(table, offsets=[offset % 10], shape=[1]), offsets=[block])
    tv.store_global(
        parts, tv.register_tensor(tv.int64, [1], init=tv.cdiv(stride, block + 1)), offsets=[block]
    )


def test_an_int32_scalar_and_an_int64_scalar_widen_to_int64():
    """Block index (int32) times an int64 stride gives offsets beyond 2**31; in int32 they would wrap around
    (and pick other elements: 2**32 is no multiple of 10)."""
    blocks, stride = 5, 3 * 2**30 + 7
    table = torch.arange(10, dtype=torch.float32) * 1.5
    offsets = torch.zeros(blocks, dtype=torch.int64)
    picked = torch.full((blocks,), float("nan"))
    parts = torch.zeros(blocks, dtype=torch.int64)
    far_offsets[(blocks,)](table, offsets, picked, parts, stride)
    expected = np.arange(blocks, dtype=np.int64) * stride
    np.testing.assert_array_equal(offsets.numpy(), expected)
    np.testing.assert_array_equal(picked.numpy(), table.numpy()[expected % 10])
    assert parts.tolist() == [-(-stride // (block + 1)) for block in range(blocks)]

    text = ir.print_program(far_offsets.ir(table, offsets, picked, parts, stride))
    assert "%stride: int64" in text
    assert "%offset: int64 = let(value=cast<int64>(%block) * %stride)" in text
    assert "offsets=[%offset % 10:int64]" in text
