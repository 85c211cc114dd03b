"""Shared-memory lowering end to end: kernels run by the reference executor (Tile IR) and by the SIMT
interpreter (the lowered Thread IR) must leave the same bytes, and the result is also checked against torch.

Covers loads and stores of every vector width (16 bytes down to one element, the widths the layouts and
the swizzle allow), ragged tiles, permuted and sliced views (runtime offsets included), ``copy_async`` at
the tensor's edges (zero-filled, partial 16-byte chunks, chunks wholly outside), ``ldmatrix`` loads of mma
fragments, and sub-byte tiles (int4), whose elements a thread may hold less than a byte of.
"""

import pytest
import torch
from lowering import assert_same_bytes, lowered_kernel, run_both

import tilevm as tv
from tilevm.ir import print_program
from tilevm.ir.thread import THREAD_IR
from tilevm.layout import local, mma_fragments, spatial


def thread_text(program):
    return print_program(program, THREAD_IR)


@tv.kernel(num_warps=2)
def through_shared(
    x: tv.Tensor[tv.float16, 2], y: tv.Tensor[tv.float16, 2], STORE: tv.constexpr, LOAD: tv.constexpr
):
    """y = x (16 x 32), through a shared tile written with layout STORE and read with LOAD."""
    tile = tv.shared_tensor(tv.float16, [16, 32])
    tv.store_shared(tile, tv.load_global(x, offsets=[0, 0], shape=[16, 32], layout=STORE))
    tv.sync()
    tv.store_global(y, tv.load_shared(tile, layout=LOAD), offsets=[0, 0])


LAYOUTS = [
    spatial(16, 4).local(1, 8),  # 16-byte vectors
    spatial(8, 8).local(2, 4),  # 8-byte vectors
    spatial(16, 2).local(1, 16).replicated(2),  # replicated: only the first replica stores
    spatial(8, 8).column_local(2, 4),  # consecutive locals in two rows: one element at a time
    local(2, 1).spatial(8, 8).local(1, 4),
]


@pytest.mark.parametrize("store", LAYOUTS)
@pytest.mark.parametrize("load", LAYOUTS[1:])
def test_stores_and_loads_of_any_layout_move_the_same_bytes(store, load):
    generator = torch.Generator().manual_seed(LAYOUTS.index(store) * 10 + LAYOUTS.index(load))
    x = torch.randn(16, 32, generator=generator).half()
    y = torch.full((16, 32), float("nan")).half()
    reference, lowered = run_both(through_shared, (1,), x, y, STORE=store, LOAD=load)
    assert_same_bytes(reference, lowered)
    assert torch.equal(lowered[1], x)


@tv.kernel(num_warps=1)
def ragged(x: tv.Tensor[tv.float32, 2], y: tv.Tensor[tv.float32, 2]):
    """y = x.T (6 x 10), through a shared tile and its permuted view, with the layouts inference picks."""
    tile = tv.shared_tensor(tv.float32, [6, 10])
    tv.store_shared(tile, tv.load_global(x, offsets=[0, 0], shape=[6, 10]))
    tv.sync()
    tv.store_global(y, tv.load_shared(tile.T), offsets=[0, 0])


def test_a_ragged_tile_through_a_permuted_view():
    x = torch.randn(6, 10, generator=torch.Generator().manual_seed(5))
    y = torch.full((10, 6), float("nan"))
    reference, lowered = run_both(ragged, (1,), x, y)
    assert_same_bytes(reference, lowered)
    assert torch.equal(lowered[1], x.T)


@tv.kernel(num_warps=4)
def copy_window(
    x: tv.Tensor[tv.float16, 2],
    y: tv.Tensor[tv.float16, 2],
    R: tv.constexpr,
    C: tv.constexpr,
    SHIFT: tv.constexpr,
):
    """y's tile = x's window SHIFT elements up and left (zeros outside x), through copy_async."""
    r0, c0 = tv.block_idx(0) * R, tv.block_idx(1) * C
    tile = tv.shared_tensor(tv.float16, [R, C])
    tv.copy_async(tile, x, offsets=[r0 - SHIFT, c0 - SHIFT])
    tv.copy_async_commit()
    tv.copy_async_wait(0)
    tv.sync()
    tv.store_global(y, tv.load_shared(tile), offsets=[r0, c0])


@pytest.mark.parametrize(
    ("rows", "cols", "row_stride", "block", "shift"),
    [
        (70, 96, 96, (32, 32), 0),  # 16-byte chunks, rows ragged
        (37, 50, 64, (16, 32), 0),  # aligned rows of 50: partial 16-byte chunks at the edge
        (37, 50, 64, (16, 32), 8),  # chunks wholly outside, above and left
        (20, 13, 13, (8, 16), 3),  # nothing aligned: element by element
    ],
)
def test_copy_async_fills_zeros_outside_the_tensor(rows, cols, row_stride, block, shift):
    generator = torch.Generator().manual_seed(rows * cols + shift)
    x = torch.randn(rows, row_stride, generator=generator).half()[:, :cols]
    y = torch.full((rows, cols), float("nan")).half()
    grid = (-(-rows // block[0]), -(-cols // block[1]))
    reference, lowered = run_both(copy_window, grid, x, y, R=block[0], C=block[1], SHIFT=shift)
    assert_same_bytes(reference, lowered)
    expected = torch.zeros(rows + shift, cols + shift).half()
    expected[shift:, shift:] = x
    assert torch.equal(lowered[1], expected[:rows, :cols])
    if row_stride % 8 == 0 and shift % 8 == 0:
        assert "size=16" in thread_text(
            lowered_kernel(copy_window, x, y, R=block[0], C=block[1], SHIFT=shift)
        )


@tv.kernel(num_warps=1)
def staged(x: tv.Tensor[tv.float16, 2], y: tv.Tensor[tv.float16, 2], STAGES: tv.constexpr):
    """y = x (16 x 16k), its column blocks copied through a ring of stages: slices at runtime offsets."""
    ring = tv.shared_tensor(tv.float16, [STAGES, 16, 16])
    for k in range(x.shape[1] // 16):
        stage = tv.slice_shared(ring, [k % STAGES, 0, 0], [16, 16])
        tv.copy_async(stage, x, offsets=[0, 16 * k])
        tv.copy_async_commit()
        tv.copy_async_wait(0)
        tv.sync()
        tv.store_global(y, tv.load_shared(stage), offsets=[0, 16 * k])
        tv.sync()


def test_slices_at_runtime_offsets_address_their_stage():
    x = torch.randn(16, 80, generator=torch.Generator().manual_seed(11)).half()
    y = torch.full((16, 80), float("nan")).half()
    reference, lowered = run_both(staged, (1,), x, y, STAGES=3)
    assert_same_bytes(reference, lowered)
    assert torch.equal(lowered[1], x)


A_FRAGMENT = mma_fragments("m16n8k16", "f16").a
B_FRAGMENT = mma_fragments("m16n8k16", "f16").b


@tv.kernel(num_warps=1)
def fragments(
    x: tv.Tensor[tv.float16, 2],
    y: tv.Tensor[tv.float16, 2],
    R: tv.constexpr,
    C: tv.constexpr,
    LAYOUT: tv.constexpr,
):
    """y = x (R x C), loaded from shared in LAYOUT (mma fragments: by ldmatrix)."""
    tile = tv.shared_tensor(tv.float16, [R, C])
    tv.copy_async(tile, x, offsets=[0, 0])
    tv.copy_async_commit()
    tv.copy_async_wait(0)
    tv.sync()
    tv.store_global(y, tv.load_shared(tile, layout=LAYOUT), offsets=[0, 0])


@tv.kernel(num_warps=1)
def transposed_fragments(
    x: tv.Tensor[tv.float16, 2],
    y: tv.Tensor[tv.float16, 2],
    R: tv.constexpr,
    C: tv.constexpr,
    LAYOUT: tv.constexpr,
):
    """y = x.T (x is C x R), loaded from the transposed view of a shared tile in LAYOUT."""
    tile = tv.shared_tensor(tv.float16, [C, R])
    tv.copy_async(tile, x, offsets=[0, 0])
    tv.copy_async_commit()
    tv.copy_async_wait(0)
    tv.sync()
    tv.store_global(y, tv.load_shared(tile.T, layout=LAYOUT), offsets=[0, 0])


@pytest.mark.parametrize("kernel", [fragments, transposed_fragments], ids=["rows", "columns"])
@pytest.mark.parametrize(
    "fragment",
    [local(2, 1) * mma_fragments("m16n8k16", "f16").a, local(1, 2) * mma_fragments("m16n8k16", "f16").b],
    ids=["a", "b"],
)
def test_ldmatrix_loads_mma_fragments(kernel, fragment):
    rows, cols = fragment.shape
    transposed = kernel is transposed_fragments
    source_shape = (cols, rows) if transposed else (rows, cols)
    x = torch.randn(*source_shape, generator=torch.Generator().manual_seed(rows + transposed)).half()
    y = torch.full((rows, cols), float("nan")).half()
    assert "ldmatrix" in thread_text(lowered_kernel(kernel, x, y, R=rows, C=cols, LAYOUT=fragment))
    reference, lowered = run_both(kernel, (1,), x, y, R=rows, C=cols, LAYOUT=fragment)
    assert_same_bytes(reference, lowered)
    assert torch.equal(lowered[1], x.T if transposed else x)


@tv.kernel(num_warps=1)
def nibbles(x: tv.Tensor[tv.int4, 2], y: tv.Tensor[tv.int4, 2], LOAD: tv.constexpr, STORE: tv.constexpr):
    """y = x (int4, 8 x 32), copied into shared, read with LOAD, stored to another tile with the same
    layout, read back with STORE's layout."""
    first = tv.shared_tensor(tv.int4, [8, 32])
    tv.copy_async(first, x, offsets=[0, 0])
    tv.copy_async_commit()
    tv.copy_async_wait(0)
    tv.sync()
    second = tv.shared_tensor(tv.int4, [8, 32])
    tv.store_shared(second, tv.load_shared(first, layout=LOAD))
    tv.sync()
    tv.store_global(y, tv.load_shared(second, layout=STORE), offsets=[0, 0])


@pytest.mark.parametrize(
    "load",
    [
        spatial(8, 4).local(1, 8),  # 4 bytes per thread
        spatial(8, 4).column_local(1, 8),
        spatial(4, 8).local(2, 4),  # 2 bytes per row
        pytest.param(spatial(1, 32).local(8, 1), id="half-bytes"),
    ],
)
def test_sub_byte_tiles(load):
    generator = torch.Generator().manual_seed(3)
    x = torch.randint(0, 256, (8, 16), generator=generator, dtype=torch.uint8)
    y = torch.full((8, 16), 0xAB, dtype=torch.uint8)
    reference, lowered = run_both(nibbles, (1,), x, y, LOAD=load, STORE=spatial(8, 4).local(1, 8))
    assert_same_bytes(reference, lowered)
    assert torch.equal(lowered[1], x)


@tv.kernel(num_warps=1)
def nibble_window(x: tv.Tensor[tv.int4, 1], y: tv.Tensor[tv.int4, 1]):
    """y = x's 64 elements from 16 on (zeros past x's end), through copy_async."""
    tile = tv.shared_tensor(tv.int4, [64])
    tv.copy_async(tile, x, offsets=[16])
    tv.copy_async_commit()
    tv.copy_async_wait(0)
    tv.sync()
    tv.store_global(y, tv.load_shared(tile, layout=spatial(32).local(2)), offsets=[0])


@pytest.mark.parametrize("size", [33, 48, 90])  # odd sizes end inside a byte
def test_sub_byte_copies_clear_the_elements_past_the_edge(size):
    generator = torch.Generator().manual_seed(size)
    packed = torch.randint(0, 256, (-(-size // 2),), generator=generator, dtype=torch.uint8)
    y = torch.full((32,), 0xAB, dtype=torch.uint8)  # 64 nibbles
    reference, lowered = run_both(nibble_window, (1,), tv.view(packed, tv.int4, shape=(size,)), y)
    assert_same_bytes(reference, lowered)
    nibbles = torch.stack([packed & 15, packed >> 4], dim=1).flatten()[:size]
    expected = torch.zeros(64, dtype=torch.uint8)
    expected[: max(0, min(64, size - 16))] = nibbles[16 : 16 + 64]
    assert torch.equal(lowered[1], expected[0::2] | (expected[1::2] << 4))
