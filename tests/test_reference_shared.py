"""Shared tiles and the strict copy_async model of the reference executor."""

import numpy as np
import pytest
import torch

from tilevm.dtypes import float32, int8
from tilevm.errors import SourceLocation
from tilevm.ir import (
    AllocShared,
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
)
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
    builder.emit(FreeShared(tensor=shared))
    store_shared_tile(builder, shared, target)
    src = torch.ones(6, 10, dtype=torch.int8)
    dst = torch.ones(6, 10, dtype=torch.int8)
    execute(builder.build(), [src, dst], grid=(1,))
    assert (dst != 1).any()  # random bits, not the stored ones
