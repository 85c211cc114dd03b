"""Vectorization's group size checked against the layout's table: a group of ``g`` is ``g`` consecutive
locals of every thread whose coordinates run consecutively along the dim from a multiple of ``g``, and no
larger power of two has that property (random layouts, including replicated and permuted ones)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from layout_assignment import random_layout

import tilevm as tv
from tilevm.layout import RegisterLayout, local, mma_fragments, spatial
from tilevm.passes.lower.vectorize import group_size, locals_in_runs


def runs_of(layout: RegisterLayout, dim: int, group: int) -> bool:
    """Whether every thread's locals come in runs of ``group`` consecutive along ``dim``, each starting at a
    multiple of ``group`` there (read from ``layout.table()``)."""
    if layout.local_size % group:
        return False
    table = layout.table()  # [threads, locals, rank]
    runs = table.reshape(layout.num_threads, layout.local_size // group, group, layout.rank)
    step = np.zeros(layout.rank, dtype=np.int64)
    step[dim] = 1
    expected = runs[:, :, :1, :] + np.arange(group)[:, None] * step
    return bool((runs == expected).all() and (runs[:, :, 0, dim] % group == 0).all())


@pytest.mark.parametrize("seed", range(40))
def test_the_group_size_is_the_largest_run_in_the_layout_table(seed):
    rng = np.random.default_rng(seed)
    rank = int(rng.integers(1, 4))
    shape = tuple(int(rng.choice([1, 2, 3, 4, 6, 8])) for _ in range(rank))
    dim = int(rng.integers(rank))
    # a random layout times a run of locals along ``dim`` (and sometimes a local digit after it, which cuts
    # the run), so that groups above 1 are common
    inner = [1] * rank
    inner[dim] = int(rng.choice([1, 2, 4, 8]))
    inner[int(rng.integers(rank))] *= int(rng.choice([1, 1, 2, 3]))
    layout = random_layout(shape, int(rng.choice([32, 64, 128])), rng) * local(*inner)
    limit = int(rng.choice([1, 2, 4, 8, 16, 32]))
    group = group_size(layout, dim, limit)
    assert group <= limit and runs_of(layout, dim, group)
    if group * 2 <= limit:
        assert not runs_of(layout, dim, group * 2), (layout, dim, group)


def test_group_sizes_of_small_layouts():
    """4 consecutive columns a thread: groups of 4 along the columns, of 1 down the rows; 3 rows a thread:
    no power of two above 1 divides them; a column-major local tile runs down its rows."""
    assert group_size(spatial(8, 4).local(1, 4), dim=1, limit=8) == 4
    assert group_size(spatial(8, 4).local(1, 4), dim=1, limit=2) == 2
    assert group_size(spatial(8, 4).local(1, 4), dim=0, limit=8) == 1
    assert group_size(local(3, 1).spatial(1, 32), dim=0, limit=8) == 1
    assert group_size(spatial(4, 8).column_local(4, 2), dim=0, limit=8) == 4


@pytest.mark.parametrize("seed", range(20))
def test_locals_in_runs_keeps_every_threads_elements(seed):
    """The reordered layout gives each thread the same elements, ``positions`` says where each went, and
    the digits along the dim come last: the largest run along it is as long as the thread's contiguous
    stretch."""
    rng = np.random.default_rng(100 + seed)
    rank = int(rng.integers(1, 4))
    shape = tuple(int(rng.choice([1, 2, 4, 8])) for _ in range(rank))
    dim = int(rng.integers(rank))
    layout = random_layout(shape, int(rng.choice([32, 64])), rng) * local(*[2] * rank)
    reordered, positions = locals_in_runs(layout, dim)
    old, new = layout.table(), reordered.table()
    assert sorted(positions) == list(range(layout.local_size))
    assert np.array_equal(new[:, list(positions)], old)
    assert group_size(reordered, dim, 64) >= group_size(layout, dim, 64)


def test_mma_a_fragments_in_the_prelayout_k_order_load_16_bytes_a_row():
    """X's A fragments in the qgemm pre-layout's k order (8 contiguous values a row and 32 values of k, in
    registers that alternate rows) load as one 16-byte access per row, and the tile is right."""
    fragment = mma_fragments("m16n8k16", "f16").a
    layout = (local(1, 2) * fragment).reshape(16, 2, 2, 4, 2).permute(0, 3, 1, 2, 4).reshape(16, 32)
    assert group_size(layout, 1, 8) == 2 and group_size(locals_in_runs(layout, 1)[0], 1, 8) == 8

    @tv.kernel(num_warps=1)
    def copy(x: tv.Tensor[tv.float16, 2], out: tv.Tensor[tv.float16, 2], LAYOUT: tv.constexpr):
        tile = tv.load_global(x, offsets=[0, 0], shape=[16, 32], layout=LAYOUT)
        tv.store_global(out, tile, offsets=[0, 0])

    x = torch.randn(16, 32, generator=torch.Generator().manual_seed(5)).half()
    out = torch.full((16, 32), float("nan")).half()
    loads = re.findall(r"= load\(.*width=(\d+)", str(copy.thread_ir(x, out, LAYOUT=layout)))
    assert loads == ["16", "16"]
    copy[(1,)](x, out, LAYOUT=layout)
    assert torch.equal(out, x)
