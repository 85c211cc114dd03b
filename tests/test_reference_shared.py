"""Shared tiles and the strict copy_async model of the reference executor."""

import dataclasses

import numpy as np
import pytest
import torch
from reference_memory import from_memory, to_memory

from tilevm.dtypes import float16, float32, int8, int32, uint4
from tilevm.errors import CompilationError, SourceLocation
from tilevm.ir import (
    AllocShared,
    BinaryExpr,
    Const,
    CopyAsync,
    CopyAsyncCommit,
    CopyAsyncWait,
    FreeShared,
    GlobalView,
    LoadGlobal,
    LoadShared,
    ProgramBuilder,
    SliceShared,
    StoreGlobal,
    StoreShared,
    Sync,
    verify,
)
from tilevm.layout import SharedLayout
from tilevm.runtime import reference
from tilevm.runtime.reference import ExecutionError, execute


def setup(dtype=float32, rows=6, cols=10):
    builder = ProgramBuilder("shared", num_threads=32)
    src, dst = builder.pointer_param("src", dtype), builder.pointer_param("dst", dtype)
    shape, strides = (Const(rows), Const(cols)), (Const(cols), Const(1))
    source = builder.emit_output(GlobalView, "source", pointer=src, shape=shape, strides=strides)
    target = builder.emit_output(GlobalView, "target", pointer=dst, shape=shape, strides=strides)
    return builder, source, target


def store_shared_tile(builder, shared, target, offsets=(0, 0)):
    tile = builder.emit_output(LoadShared, "loaded", tensor=shared)
    builder.emit(StoreGlobal(tensor=target, value=tile, offsets=tuple(map(Const, offsets)), dims=(0, 1)))


def inputs(seed, rows=6, cols=10):
    rng = np.random.default_rng(seed)
    return torch.tensor(rng.uniform(1, 2, (rows, cols)), dtype=torch.float32), torch.full((rows, cols), -5.0)


def test_copy_async_is_correct_after_wait_with_zeros_outside():
    builder, source, target = setup()
    shared = builder.emit_output(AllocShared, "buffer", dtype=float32, shape=(8, 8))
    builder.emit(CopyAsync(destination=shared, source=source, offsets=(Const(2), Const(4)), dims=(0, 1)))
    builder.emit(CopyAsyncCommit())
    builder.emit(CopyAsyncWait(pending=0))
    builder.emit(Sync())
    store_shared_tile(builder, shared, target)
    src, dst = inputs(71)
    execute(builder.build(), [src, dst], grid=(1,))
    expected = torch.full((6, 10), -5.0)  # the 8x8 tile stored at (0, 0) leaves columns 8 and 9 alone
    expected[:, :8] = 0.0  # the copy's window runs past row 6 and column 10: zeros there
    expected[:4, :6] = src[2:6, 4:10]
    assert torch.equal(dst, expected)


def test_reading_before_the_wait_is_an_error_at_the_read():
    builder, source, target = setup()
    shared = builder.emit_output(AllocShared, "buffer", dtype=float32, shape=(4, 4))
    builder.emit(CopyAsync(destination=shared, source=source, offsets=(Const(0), Const(0)), dims=(0, 1)))
    builder.emit(CopyAsyncCommit())
    builder.location = SourceLocation("kernel.py", 30, 8)
    store_shared_tile(builder, shared, target)
    builder.location = None
    builder.emit(CopyAsyncWait(pending=0))
    with pytest.raises(
        ExecutionError, match=r"kernel\.py:30:8: read of shared tile buffer before copy_async_wait"
    ):
        execute(builder.build(), list(inputs(72)), grid=(1,))


def test_wait_keeps_the_newest_groups_in_flight():
    builder, source, target = setup()
    buffers = builder.emit_output(AllocShared, "buffers", dtype=float32, shape=(2, 4, 4))
    stages = []
    for stage in range(2):
        offsets = (Const(stage), Const(0), Const(0))
        stages.append(
            builder.emit_output(
                SliceShared, f"stage{stage}", tensor=buffers, offsets=offsets, shape=(4, 4), dims=(1, 2)
            )
        )
        window = (Const(0), Const(4 * stage))
        builder.emit(CopyAsync(destination=stages[-1], source=source, offsets=window, dims=(0, 1)))
        builder.emit(CopyAsyncCommit())
    builder.emit(CopyAsyncWait(pending=1))  # stage 0 has landed, stage 1 may not have
    builder.emit(Sync())
    store_shared_tile(builder, stages[0], target)
    store_shared_tile(builder, stages[1], target, offsets=(0, 4))  # too early
    builder.emit(CopyAsyncWait(pending=0))
    with pytest.raises(ExecutionError, match="read of shared tile stage1 before copy_async_wait"):
        execute(builder.build(), list(inputs(73)), grid=(1,))


def test_a_copy_never_waited_for_is_an_error():
    builder, source, _ = setup()
    shared = builder.emit_output(AllocShared, "buffer", dtype=float32, shape=(4, 4))
    builder.emit(CopyAsync(destination=shared, source=source, offsets=(Const(0), Const(0)), dims=(0, 1)))
    with pytest.raises(ExecutionError, match="never committed"):
        execute(builder.build(), list(inputs(74)), grid=(1,))
    builder.emit(CopyAsyncCommit())
    with pytest.raises(ExecutionError, match="never waited"):
        execute(builder.build(), list(inputs(74)), grid=(1,))


def test_slices_are_views_of_their_allocation():
    builder, source, target = setup()
    whole = builder.emit_output(AllocShared, "whole", dtype=float32, shape=(6, 10))
    top = builder.emit_output(
        SliceShared, "top", tensor=whole, offsets=(Const(0), Const(0)), shape=(3, 10), dims=(0, 1)
    )
    bottom = builder.emit_output(
        SliceShared, "bottom", tensor=whole, offsets=(Const(3), Const(0)), shape=(3, 10), dims=(0, 1)
    )
    for half, row in ((top, 0), (bottom, 3)):
        tile = builder.emit_output(
            LoadGlobal, "tile", tensor=source, offsets=(Const(row), Const(0)), shape=(3, 10), dims=(0, 1)
        )
        builder.emit(StoreShared(tensor=half, value=tile))
    builder.emit(Sync())
    store_shared_tile(builder, whole, target)
    src, dst = inputs(75)
    execute(builder.build(), [src, dst], grid=(1,))
    assert torch.equal(dst, src)


def test_fresh_and_freed_shared_tiles_hold_poison():
    builder, source, target = setup()
    shared = builder.emit_output(AllocShared, "buffer", dtype=float32, shape=(6, 10))
    store_shared_tile(builder, shared, target)
    src, dst = inputs(76)
    execute(builder.build(), [src, dst], grid=(1,))
    assert torch.isnan(dst).all()

    builder, source, target = setup(dtype=int8)
    shared = builder.emit_output(AllocShared, "buffer", dtype=int8, shape=(6, 10))
    tile = builder.emit_output(
        LoadGlobal, "tile", tensor=source, offsets=(Const(0), Const(0)), shape=(6, 10), dims=(0, 1)
    )
    builder.emit(StoreShared(tensor=shared, value=tile))
    builder.emit(Sync())
    builder.emit(FreeShared(tensor=shared))
    store_shared_tile(builder, shared, target)
    src = torch.ones(6, 10, dtype=torch.int8)
    dst = torch.ones(6, 10, dtype=torch.int8)
    execute(builder.build(), [src, dst], grid=(1,))
    assert (dst != 1).any()  # random bits, not the stored ones


def planned_kernel(offsets, shared_bytes, sync_before_reuse=True):
    """A kernel that reuses freed shared bytes, slices swizzled tiles at runtime and stores 4-bit values.

    ``offsets`` maps each allocation to its planned byte offset (None: unplanned). It copies ``src`` to
    ``dst`` through a [32, 64] tile written one runtime [32, 16] column block at a time; copies two
    [32, 16] windows of ``src`` into the stages of a [2, 32, 16] tile with copy_async and stores them to
    ``staged``; and moves rows ``row .. row + 8`` of a [16, 32] uint4 tile to ``nibbles_out``. Without
    ``sync_before_reuse``, the writes of the tiles that take the freed tile's bytes race with its reads.
    """
    builder = ProgramBuilder("planned", num_threads=32)
    src, dst, staged = (builder.pointer_param(name, float16) for name in ("src", "dst", "staged"))
    nibbles_in, nibbles_out = (
        builder.pointer_param("nibbles_in", uint4),
        builder.pointer_param("nibbles_out", uint4),
    )
    row = builder.scalar_param("row", int32)
    source, target = (view(builder, pointer, (32, 64)) for pointer in (src, dst))
    staged_view = view(builder, staged, (32, 32))
    nibbles_source, nibbles_target = view(builder, nibbles_in, (16, 32)), view(builder, nibbles_out, (8, 32))

    tile_layout = SharedLayout.row_major(32, 64).swizzle(3, 3, 3)
    tile = builder.emit_output(
        AllocShared, "tile", tile_layout, dtype=float16, shape=(32, 64), offset=offsets["tile"]
    )
    with builder.for_range("k", Const(0), Const(4), Const(1)) as k:
        column = BinaryExpr("mul", k, Const(16))
        block = emit_slice(builder, "block", tile, (Const(0), column), (32, 16), (0, 1))
        values = builder.emit_output(
            LoadGlobal, "values", tensor=source, offsets=(Const(0), column), shape=(32, 16), dims=(0, 1)
        )
        builder.emit(StoreShared(tensor=block, value=values))
    builder.emit(Sync())
    store_shared_tile(builder, tile, target)
    if sync_before_reuse:  # the tile's bytes are read before the stages, which take them, are written
        builder.emit(Sync())
    builder.emit(FreeShared(tensor=tile))

    stages_layout = SharedLayout.row_major(2, 32, 16).swizzle(1, 3, 3)
    stages = builder.emit_output(
        AllocShared, "stages", stages_layout, dtype=float16, shape=(2, 32, 16), offset=offsets["stages"]
    )
    nibbles = builder.emit_output(
        AllocShared, "nibbles", dtype=uint4, shape=(16, 32), offset=offsets["nibbles"]
    )
    nibble_values = builder.emit_output(
        LoadGlobal,
        "nibble_values",
        tensor=nibbles_source,
        offsets=(Const(0), Const(0)),
        shape=(16, 32),
        dims=(0, 1),
    )
    builder.emit(StoreShared(tensor=nibbles, value=nibble_values))
    builder.emit(Sync())
    with builder.for_range("s", Const(0), Const(2), Const(1)) as s:
        stage = emit_slice(builder, "stage", stages, (s, Const(0), Const(0)), (32, 16), (1, 2))
        window = (Const(0), BinaryExpr("add", BinaryExpr("mul", s, Const(16)), Const(8)))
        builder.emit(CopyAsync(destination=stage, source=source, offsets=window, dims=(0, 1)))
        builder.emit(CopyAsyncCommit())
    builder.emit(CopyAsyncWait(pending=0))
    builder.emit(Sync())
    with builder.for_range("s", Const(0), Const(2), Const(1)) as s:
        stage = emit_slice(builder, "stage", stages, (s, Const(0), Const(0)), (32, 16), (1, 2))
        loaded = builder.emit_output(LoadShared, "loaded", tensor=stage)
        columns = (Const(0), BinaryExpr("mul", s, Const(16)))
        builder.emit(StoreGlobal(tensor=staged_view, value=loaded, offsets=columns, dims=(0, 1)))
    rows = emit_slice(builder, "rows", nibbles, (row, Const(0)), (8, 32), (0, 1))
    store_shared_tile(builder, rows, nibbles_target)
    return dataclasses.replace(builder.build(), shared_bytes=shared_bytes)


def view(builder, pointer, shape):
    strides = (Const(shape[1]), Const(1))
    return builder.emit_output(
        GlobalView, f"{pointer.name}_view", pointer=pointer, shape=tuple(map(Const, shape)), strides=strides
    )


def emit_slice(builder, name, tensor, offsets, shape, dims):
    """A slice whose type carries the layout derived from its tensor's, when the tensor has one."""
    fields = {"tensor": tensor, "offsets": tuple(offsets), "shape": shape, "dims": dims}
    parent = tensor.type.layout
    layout = None if parent is None else SliceShared(output=tensor, **fields).slice_layout(parent)
    return builder.emit_output(SliceShared, name, layout, **fields)


def run_planned_kernel(program, seed, row, run=None):
    """Run ``program`` (through ``run``, else this module's ``execute``) on seeded inputs; return the
    arguments and the expected (dst, staged, nibbles)."""
    rng = np.random.default_rng(seed)
    src = torch.tensor(rng.standard_normal((32, 64)), dtype=torch.float16)
    nibble_values = rng.integers(0, 16, (16, 32))
    arguments = [
        src,
        torch.full((32, 64), -1.0, dtype=torch.float16),
        torch.full((32, 32), -1.0, dtype=torch.float16),
        to_memory(nibble_values.ravel(), uint4),
        torch.zeros(8 * 32 // 2, dtype=torch.uint8),
        row,
    ]
    (execute if run is None else run)(program, arguments, grid=(2,))
    expected_staged = torch.cat([src[:, 8:24], src[:, 24:40]], dim=1)
    expected_nibbles = nibble_values[row : row + 8].ravel()
    return arguments, (src, expected_staged, expected_nibbles)


GOOD_PLAN = {
    "tile": 0,
    "stages": 0,
    "nibbles": 2048,
}  # tile is freed before stages and nibbles take its bytes


@pytest.mark.parametrize(("seed", "row"), [(81, 0), (82, 5), (83, 8)])
def test_a_planned_program_runs_bit_identically_to_the_unplanned_one(seed, row):
    unplanned = planned_kernel(dict.fromkeys(GOOD_PLAN), None)
    planned = verify(planned_kernel(GOOD_PLAN, 4096))
    unplanned_run, expected = run_planned_kernel(unplanned, seed, row)
    planned_run, _ = run_planned_kernel(planned, seed, row)
    for before, after in zip(unplanned_run[:5], planned_run[:5]):
        assert torch.equal(before.view(torch.uint8), after.view(torch.uint8))
    src, expected_staged, expected_nibbles = expected
    assert torch.equal(
        planned_run[1], src
    )  # column blocks of the swizzled tile land where the tile reads them
    assert torch.equal(planned_run[2], expected_staged)
    np.testing.assert_array_equal(from_memory(planned_run[4], uint4, 8 * 32), expected_nibbles)


def test_a_plan_that_overlaps_live_tiles_is_rejected_and_gives_wrong_results():
    # The nibbles share bytes with stage 1, whose copy lands after the nibbles are stored.
    overlapping = planned_kernel({**GOOD_PLAN, "nibbles": 1024}, 4096)
    with pytest.raises(CompilationError, match=r"nibbles at bytes \[1024, 1280\) overlaps stages"):
        verify(overlapping)
    # The plain executor: the test-wide wrapper that adds random layouts verifies what it runs.
    arguments, (_, _, expected_nibbles) = run_planned_kernel(overlapping, 84, 3, run=reference.execute)
    assert not np.array_equal(from_memory(arguments[4], uint4, 8 * 32), expected_nibbles)


def test_a_tile_that_takes_freed_bytes_races_with_their_last_reader_without_a_sync():
    racy = verify(planned_kernel(GOOD_PLAN, 4096, sync_before_reuse=False))
    with pytest.raises(ExecutionError) as caught:
        run_planned_kernel(racy, 85, 0)
    assert caught.value.message == (
        "store_shared into nibbles after load_shared of tile with no sync in between: another thread may "
        "still be reading those bytes"
    )
    unplanned = planned_kernel(dict.fromkeys(GOOD_PLAN), None, sync_before_reuse=False)
    arguments, (src, expected_staged, _) = run_planned_kernel(unplanned, 85, 0)  # own buffers: no race
    assert torch.equal(arguments[1], src) and torch.equal(arguments[2], expected_staged)


def test_planned_allocations_need_an_offset_inside_the_shared_bytes():
    builder, _, _ = setup()
    builder.location = SourceLocation("kernel.py", 12, 4)
    builder.emit_output(AllocShared, "buffer", dtype=float32, shape=(8, 8), offset=None)
    program = dataclasses.replace(builder.build(), shared_bytes=1024)
    with pytest.raises(
        ExecutionError, match=r"kernel\.py:12:4: shared tile buffer has no planned offset, but the program's"
    ):
        execute(program, list(inputs(85)), grid=(1,))
    builder, _, _ = setup()
    builder.location = SourceLocation("kernel.py", 13, 4)
    builder.emit_output(AllocShared, "buffer", dtype=float32, shape=(8, 8), offset=784)
    program = dataclasses.replace(builder.build(), shared_bytes=1024)
    with pytest.raises(
        ExecutionError,
        match=r"kernel\.py:13:4: shared tile buffer at bytes \[784, 1040\) is outside the block's 1024 bytes",
    ):
        execute(program, list(inputs(85)), grid=(1,))
