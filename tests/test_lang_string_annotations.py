"""Kernels in a module with ``from __future__ import annotations`` (annotations are strings)."""

from __future__ import annotations

import torch

import tilevm as tv


@tv.kernel(num_warps=1)
def scale(x: tv.Tensor[tv.float32, 1], factor: float, BLOCK: tv.constexpr):
    tile = tv.load_global(x, offsets=[tv.block_idx() * BLOCK], shape=[BLOCK])
    tv.store_global(x, tile * factor, offsets=[tv.block_idx() * BLOCK])


def test_string_annotations_are_resolved():
    x = torch.randn(40, generator=torch.Generator().manual_seed(13))
    expected = x * 1.5
    scale[(tv.cdiv(40, 16),)](x, 1.5, BLOCK=16)
    torch.testing.assert_close(x, expected, rtol=0, atol=0)  # one float32 multiply, exactly rounded both ways
