"""Vectorization's group size checked against the layout's table: a group of ``g`` is ``g`` consecutive
locals of every thread whose coordinates run consecutively along the dim from a multiple of ``g``, and no
larger power of two has that property (random layouts, including replicated and permuted ones)."""

from __future__ import annotations

import numpy as np
import pytest
from layout_assignment import random_layout

from tilevm.layout import RegisterLayout, local, spatial
from tilevm.passes.lower.vectorize import group_size


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
