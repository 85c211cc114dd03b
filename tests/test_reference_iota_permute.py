"""tv.arange and tv.permute / tile.T on register and shared tiles, against torch; every launch also runs with
random layouts (``layout_assignment``)."""

import inspect

import numpy as np
import pytest
import torch
from layout_assignment import execute_with_random_layouts, launch_through

import tilevm as tv
from tilevm.dtypes import int8
from tilevm.ir import (
    AllocShared,
    Const,
    GlobalView,
    LoadGlobal,
    LoadShared,
    PermuteShared,
    ProgramBuilder,
    StoreGlobal,
    StoreShared,
    Sync,
)
from tilevm.layout import shared
from tilevm.layout.shared import permute_shared
from tilevm.runtime.reference import execute


@pytest.fixture(autouse=True)
def launch_with_random_layouts_too(monkeypatch):
    launch_through(monkeypatch, execute_with_random_layouts)


def line_of(function, marker: str) -> int:
    lines, first = inspect.getsourcelines(function)
    return first + next(offset for offset, text in enumerate(lines) if marker in text)


def compile_error(kernel, *args) -> tv.CompilationError:
    with pytest.raises(tv.CompilationError) as caught:
        kernel.ir(*args)
    return caught.value


@pytest.mark.parametrize("dtype", [tv.int32, tv.uint8, tv.int64, tv.uint4])
def test_arange_counts_in_its_dtype(dtype):
    @tv.kernel(num_warps=1)
    def iota(out: tv.Tensor[tv.int64, 1], n: tv.constexpr, dtype: tv.constexpr):
        tv.store_global(out, tv.cast(tv.arange(n, dtype=dtype), tv.int64), offsets=[0])

    size = dtype.max_value + 1 if dtype.nbits < 8 else 48
    out = torch.full((size,), -1, dtype=torch.int64)
    iota[(1,)](out, size, dtype)
    assert torch.equal(out, torch.arange(size))


def test_ragged_tail_mask_from_arange():
    # a runtime start and length beside an int32 iota: elements at or past n read as zero
    @tv.kernel(num_warps=2)
    def tail(x: tv.Tensor[tv.float32, 1], out: tv.Tensor[tv.float32, 1], n: int, BLOCK: tv.constexpr):
        start = tv.block_idx(0) * BLOCK
        values = tv.load_global(x, offsets=[start], shape=[BLOCK], other=float("nan"))
        kept = tv.where(tv.arange(BLOCK) + start < n, values, 0.0)
        tv.store_global(out, kept, offsets=[start])

    generator = torch.Generator().manual_seed(81)
    x = torch.randn(100, generator=generator)
    out = torch.full((100,), -7.0)
    tail[(4,)](x, out, 77, 32)
    expected = torch.where(torch.arange(100) < 77, x, torch.zeros(()))
    assert torch.equal(out, expected)


def test_causal_mask_from_two_aranges():
    @tv.kernel(num_warps=4)
    def causal(
        scores: tv.Tensor[tv.float32, 2], out: tv.Tensor[tv.float32, 2], M: tv.constexpr, N: tv.constexpr
    ):
        rows = tv.view(tv.arange(M), tv.int32, [M, 1])
        tile = tv.load_global(scores, offsets=[0, 0], shape=[M, N])
        masked = tv.where(tv.arange(N) <= rows, tile, float("-inf"))
        tv.store_global(out, masked, offsets=[0, 0])

    generator = torch.Generator().manual_seed(82)
    scores = torch.randn(16, 24, generator=generator)
    out = torch.zeros(16, 24)
    causal[(1,)](scores, out, 16, 24)
    expected = scores.masked_fill(torch.ones(16, 24, dtype=torch.bool).triu(1), float("-inf"))
    assert torch.equal(out, expected)


def test_arange_past_its_dtype_or_of_floats_is_an_error_at_the_line():
    @tv.kernel
    def too_many(out: tv.Tensor[tv.int64, 1]):
        tv.store_global(out, tv.cast(tv.arange(300, dtype=tv.uint8), tv.int64), offsets=[0])  # marker

    error = compile_error(too_many, torch.zeros(300, dtype=torch.int64))
    assert error.message == "arange(300) reaches 299, which does not fit in uint8 (at most 255)"
    assert error.location.line == line_of(too_many, "marker")

    @tv.kernel
    def floats(out: tv.Tensor[tv.float32, 1]):
        tv.store_global(out, tv.arange(8, dtype=tv.float32), offsets=[0])  # marker

    error = compile_error(floats, torch.zeros(8))
    assert error.message == "arange needs an integer dtype, got float32"
    assert error.location.line == line_of(floats, "marker")


@pytest.mark.parametrize("dims", [(2, 0, 1), (1, 2, 0), (0, 2, 1)])
def test_permute_of_a_register_tile_is_numpy_transpose(dims):
    @tv.kernel(num_warps=2)
    def permuted(x: tv.Tensor[tv.int8, 3], out: tv.Tensor[tv.int8, 3], dims: tv.constexpr):
        tile = tv.load_global(x, offsets=[0, 0, 0], shape=[3, 4, 10])
        tv.store_global(out, tv.permute(tile, dims), offsets=[0, 0, 0])

    rng = np.random.default_rng(83)
    x = torch.tensor(rng.integers(-128, 128, (3, 4, 10)), dtype=torch.int8)
    out = torch.zeros(tuple(x.shape[d] for d in dims), dtype=torch.int8)
    permuted[(1,)](x, out, dims)
    assert torch.equal(out, x.permute(dims))


def test_tile_t_transposes_a_ragged_matrix():
    @tv.kernel(num_warps=1)
    def transpose(x: tv.Tensor[tv.float16, 2], out: tv.Tensor[tv.float16, 2]):
        tile = tv.load_global(x, offsets=[0, 0], shape=[16, 8])
        tv.store_global(out, tile.T, offsets=[0, 0])

    generator = torch.Generator().manual_seed(84)
    x = torch.randn(13, 6, generator=generator).half()
    out = torch.zeros(6, 13, dtype=torch.float16)
    transpose[(1,)](x, out)
    assert torch.equal(out, x.T)


def test_transpose_through_shared_memory_sees_writes_through_both_views():
    # stored through the permuted view, read through the tile; then stored through the tile, read permuted
    @tv.kernel(num_warps=2)
    def through_shared(
        x: tv.Tensor[tv.float32, 2], out: tv.Tensor[tv.float32, 2], back: tv.Tensor[tv.float32, 2]
    ):
        buffer = tv.shared_tensor(tv.float32, [8, 16])
        columns = buffer.T
        tv.store_shared(columns, tv.load_global(x, offsets=[0, 0], shape=[16, 8]))
        tv.sync()
        tv.store_global(out, tv.load_shared(buffer), offsets=[0, 0])
        tv.sync()
        tv.store_shared(buffer, tv.load_global(out, offsets=[0, 0], shape=[8, 16]) * 2.0)
        tv.sync()
        tv.store_global(back, tv.load_shared(columns), offsets=[0, 0])

    generator = torch.Generator().manual_seed(85)
    x = torch.randn(16, 8, generator=generator)
    out, back = torch.zeros(8, 16), torch.zeros(16, 8)
    through_shared[(1,)](x, out, back)
    assert torch.equal(out, x.T)
    assert torch.equal(back, x * 2)


def test_copy_async_into_a_slice_of_a_permuted_shared_view():
    @tv.kernel(num_warps=1)
    def copied(x: tv.Tensor[tv.int16, 2], out: tv.Tensor[tv.int16, 2]):
        buffer = tv.shared_tensor(tv.int16, [4, 6, 2])
        planes = tv.permute(buffer, [2, 0, 1])  # [2, 4, 6]: plane p is buffer[:, :, p]
        tv.copy_async(
            tv.slice_shared(planes, offsets=[1, 0, 0], shape=[4, 6], dims=[1, 2]), x, offsets=[0, 0]
        )
        tv.copy_async_commit()
        tv.copy_async_wait(0)
        tv.sync()
        plane = tv.slice_shared(buffer, offsets=[0, 0, 1], shape=[4, 6], dims=[0, 1])
        tv.store_global(out, tv.load_shared(plane), offsets=[0, 0])

    rng = np.random.default_rng(86)
    x = torch.tensor(rng.integers(-(2**15), 2**15, (4, 5)), dtype=torch.int16)
    out = torch.full((4, 6), 9, dtype=torch.int16)
    copied[(1,)](x, out)
    expected = torch.zeros(4, 6, dtype=torch.int16)  # the copy's window runs past column 5: zeros there
    expected[:, :5] = x
    assert torch.equal(out, expected)


def test_permute_dims_must_be_a_permutation():
    @tv.kernel
    def bad(x: tv.Tensor[tv.float32, 2]):
        tile = tv.load_global(x, offsets=[0, 0], shape=[4, 4])
        tv.store_global(x, tv.permute(tile, [0, 0]), offsets=[0, 0])  # marker

    error = compile_error(bad, torch.zeros(4, 4))
    assert error.message == (
        "permute's dims must name each of the 2 dims of the tile once, got the Python list [0, 0]"
    )
    assert error.location.line == line_of(bad, "marker")


def test_t_of_a_rank_three_tile_is_an_error():
    @tv.kernel
    def bad(x: tv.Tensor[tv.float32, 3]):
        tile = tv.load_global(x, offsets=[0, 0, 0], shape=[2, 2, 2])
        tv.store_global(x, tile.T, offsets=[0, 0, 0])  # marker

    error = compile_error(bad, torch.zeros(2, 2, 2))
    assert (
        error.message == "'.T' of a register tile float32[2, 2, 2]; use tv.permute(tile, dims) for rank != 2"
    )
    assert error.location.line == line_of(bad, "marker")


def test_decreasing_dims_name_the_permute_builtin():
    @tv.kernel
    def bad(x: tv.Tensor[tv.float32, 2]):
        tile = tv.load_global(x, offsets=[0, 0], shape=[4, 4], dims=[1, 0])  # marker
        tv.store_global(x, tile, offsets=[0, 0])

    error = compile_error(bad, torch.zeros(4, 4))
    assert error.message == (
        "dims [1, 0] must be increasing; give them in increasing order and reorder the tile's "
        "dims with tv.permute(tile, dims) (or tile.T)"
    )
    assert error.location.line == line_of(bad, "marker")


def test_a_permuted_view_of_a_swizzled_tile_keeps_every_elements_place():
    # stored through the transposed view of a swizzled tile, loaded through the tile: the transpose
    layout = shared([16, 8]).swizzle(1, 2, 2)
    builder = ProgramBuilder("transpose", num_threads=32)
    source, target = builder.pointer_param("source", int8), builder.pointer_param("target", int8)
    views = [
        builder.emit_output(
            GlobalView,
            "view",
            pointer=pointer,
            shape=(Const(rows), Const(cols)),
            strides=(Const(cols), Const(1)),
        )
        for pointer, (rows, cols) in ((source, (8, 16)), (target, (16, 8)))
    ]
    buffer = builder.emit_output(AllocShared, "buffer", layout, dtype=int8, shape=(16, 8))
    columns = builder.emit_output(
        PermuteShared, "columns", permute_shared(layout, (1, 0)), tensor=buffer, dims=(1, 0)
    )
    origin = (Const(0), Const(0))
    tile = builder.emit_output(
        LoadGlobal, "tile", tensor=views[0], offsets=origin, shape=(8, 16), dims=(0, 1)
    )
    builder.emit(StoreShared(tensor=columns, value=tile))
    builder.emit(Sync())
    loaded = builder.emit_output(LoadShared, "loaded", tensor=buffer)
    builder.emit(StoreGlobal(tensor=views[1], value=loaded, offsets=origin, dims=(0, 1)))
    rng = np.random.default_rng(87)
    x = torch.tensor(rng.integers(-128, 128, (8, 16)), dtype=torch.int8)
    out = torch.zeros(16, 8, dtype=torch.int8)
    execute(builder.build(), [x, out], grid=(1,))
    assert torch.equal(out, x.T)
