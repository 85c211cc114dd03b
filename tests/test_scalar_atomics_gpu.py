"""The split-K column sum of ``test_scalar_atomics`` on a GPU, where blocks really race: many blocks a tile,
many launches back to back on one stream sharing the partials and the counters, alternating two inputs so
that a block reading a partial before it is written (or one left by the launch before) gives a wrong sum.
Each launch must be within float32 summation bounds of the float64 sum, and bitwise equal to every other
launch on the same input (the last block sums the partials in a fixed order, whichever block it is)."""

from __future__ import annotations

import pytest
import torch
from test_scalar_atomics import check_sums, split_column_sums

pytestmark = pytest.mark.gpu

LAUNCHES = 200


@pytest.mark.parametrize("splits", [8, 37, 64])
def test_split_k_with_many_blocks_a_tile_over_many_launches_has_no_race(splits):
    generator = torch.Generator().manual_seed(splits)
    k, n = 4133, 1000
    inputs = [torch.randn(k, n, generator=generator).cuda() for _ in range(2)]
    tiles, block = -(-n // 16), 1 << (splits - 1).bit_length()
    counters = torch.zeros(tiles, dtype=torch.int32, device="cuda")
    partials = torch.full((splits, n), float("nan"), device="cuda")
    outs = [torch.full((n,), float("nan"), device="cuda") for _ in range(LAUNCHES)]
    for index, out in enumerate(outs):
        x = inputs[index % 2]
        split_column_sums[(tiles, splits)](x, out, partials, counters, SPLITS=splits, BK=32, BN=16, SP=block)
    torch.cuda.synchronize()
    assert counters.cpu().tolist() == [0] * tiles  # every last block reset its counter
    for parity, x in enumerate(inputs):
        check_sums(outs[parity].cpu(), x.cpu(), 0)
        same_input = range(parity, LAUNCHES, 2)
        assert [index for index in same_input if not torch.equal(outs[index], outs[parity])] == []
