"""Atomics run through lowering and the SIMT interpreter, bit for bit against the reference executor: one
atomic an element, by one replica of a replicated layout, from several blocks at once, masked outside the
tensor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lowering import assert_same_bytes, run_both

import tilevm as tv


@tv.kernel(num_warps=1)
def accumulate(out: tv.Tensor, values: tv.Tensor, m0: int, n0: int, BM: tv.constexpr, BN: tv.constexpr):
    tile = tv.load_global(values, offsets=[0, 0], shape=[BM, BN])
    tv.atomic_add(out, tile, offsets=[m0, n0])
    tv.atomic_max(out, tile, offsets=[m0, n0 + BN])  # beside the sums: max and add do not commute


@pytest.mark.parametrize(
    ("dtype", "block_m", "block_n"),
    [(torch.int32, 2, 4), (torch.float32, 8, 8), (torch.int64, 16, 4), (torch.float16, 4, 16)],
)
def test_atomics_across_blocks_and_replicas_match_the_reference(dtype, block_m, block_n):
    """Every block adds the same tile (a [2, 4] tile over 32 threads is held 4 times: one replica adds),
    and takes a maximum with it beside; small integers keep float sums exact in any order."""
    rng = np.random.default_rng(block_m * block_n)
    out = torch.from_numpy(rng.integers(-20, 20, size=(13, 37))).to(dtype)
    values = torch.from_numpy(rng.integers(-4, 5, size=(block_m, block_n))).to(dtype)
    for m0, n0 in [(0, 0), (9, 5), (-1, 3), (4, 30)]:
        reference, lowered = run_both(accumulate, (3,), out, values, m0, n0, BM=block_m, BN=block_n)
        assert_same_bytes(reference, lowered)
