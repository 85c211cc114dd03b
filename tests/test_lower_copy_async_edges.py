"""The zero fill of ``copy_async`` at a tensor's edge: where the tensor's size along the copied rows is
known to be a multiple of a chunk, each chunk is wholly in or wholly out, and its ``source_size`` is a
choice of the full chunk or nothing; a size not known so keeps the clamp of the bytes left. Both copy what
the reference executor copies (zeros past the edge), with ragged rows and columns."""

from __future__ import annotations

import pytest
import torch
from lowering import assert_same_bytes, run_both

import tilevm as tv
from tilevm.ir import print_program
from tilevm.ir.thread import THREAD_IR
from tilevm.passes.filecheck import filecheck

ROWS, COLUMNS = 8, 64


@tv.kernel(num_warps=1)
def staged_copy(source: tv.Tensor[tv.float16, 2], destination: tv.Tensor[tv.float16, 2]):
    """The ``[8, 64]`` window at block ``(i, j)`` through shared memory (``copy_async``), then to
    ``destination``."""
    m0, k0 = tv.block_idx(0) * ROWS, tv.block_idx(1) * COLUMNS
    stage = tv.shared_tensor(tv.float16, [ROWS, COLUMNS])
    tv.copy_async(stage, source, offsets=[m0, k0])
    tv.copy_async_commit()
    tv.copy_async_wait(0)
    tv.sync()
    tv.store_global(destination, tv.load_shared(stage), offsets=[m0, k0])


def _columns(columns: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """13 rows of ``columns`` values, rows 208 apart (a multiple of 16 bytes: the copy is cp.async)."""
    storage = torch.randn(13, 208, generator=generator) if generator else torch.zeros(13, 208)
    return storage.to(torch.float16)[:, :columns]


def _text(source: torch.Tensor) -> str:
    return print_program(staged_copy.thread_ir(source, torch.zeros_like(source)), THREAD_IR)


def test_a_size_that_is_a_multiple_of_the_chunk_chooses_the_whole_chunk_or_nothing():
    """192 columns, a multiple of 16 (as the launch knows): 16 bytes or 0, no clamp (a select that the
    codegen makes cp.async's ignore-src predicate)."""
    text = _text(_columns(192))
    filecheck(
        text,
        """
        CHECK: cp_async({{.*}}, size=16,
        CHECK-SAME: source_size=select({{.*}} < %source_size1{{.*}}, 16, 0), cache="global")
        """,
    )
    assert "max(" not in text and "min(" not in text


def test_a_size_not_known_to_be_a_multiple_of_the_chunk_clamps_the_bytes_left():
    """201 columns: a chunk of 8 may straddle the edge."""
    text = _text(_columns(201))
    assert "source_size=" in text and "max(" in text and "min(" in text


@pytest.mark.parametrize("columns", [192, 201])
def test_both_edges_copy_the_reference_bytes(columns: int):
    """Ragged rows (13) and columns; the destination poisoned with NaN first: every element is written,
    the copies past the edge are zeros, as the reference executor's."""
    source = _columns(columns, torch.Generator().manual_seed(columns))
    destination = torch.full((13, columns), float("nan"), dtype=torch.float16)
    grid = (-(-13 // ROWS), -(-columns // COLUMNS))
    reference, lowered = run_both(staged_copy, grid, source, destination)
    assert_same_bytes(reference, lowered)
    torch.testing.assert_close(lowered[1], source, rtol=0, atol=0)
