"""``kernel.partial(**fixed)``: launches with the other arguments compute what the kernel computes with all
of them (against numpy), share the kernel's specializations, read a fixed tensor's current values, and
refuse wrong arguments with the kernel's own errors."""

import numpy as np
import pytest
import torch

import tilevm as tv
from tilevm.errors import LaunchError


@tv.kernel(num_warps=1)
def axpy(x: tv.Tensor, y: tv.Tensor, out: tv.Tensor, alpha: float, n: int, BLOCK: tv.constexpr):
    offsets = [tv.block_idx() * BLOCK]
    xs = tv.load_global(x, offsets=offsets, shape=[BLOCK])
    ys = tv.load_global(y, offsets=offsets, shape=[BLOCK])
    tv.store_global(out, tv.cast(xs * alpha, ys.dtype) + ys, offsets=offsets)


def seeded(count: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(count, generator=torch.Generator().manual_seed(seed)).to(dtype)


def test_a_partial_launch_computes_the_full_launch():
    x = seeded(40, 1)
    partial = axpy.partial(x=x, alpha=0.75, BLOCK=16)
    for seed, n in [(2, 40), (3, 37)]:  # a ragged size: the masked tail
        y = seeded(n, seed)
        out = torch.full((n,), float("nan"))
        partial[(tv.cdiv(n, 16),)](y=y, out=out, n=n)
        expected = 0.75 * x.numpy()[:n].astype(np.float64) + y.numpy()
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6, atol=1e-6)


def test_a_partial_launch_shares_the_kernels_specializations_and_table():
    x, y = seeded(32, 4), seeded(32, 5)
    out = torch.full((32,), float("nan"))
    axpy[(2,)](x, y, out, 2.0, 32, BLOCK=16)
    compiled = dict(axpy.programs)
    partial = axpy.partial(x=x, alpha=2.0, BLOCK=16)
    out2 = torch.full((32,), float("nan"))
    partial[(2,)](y, out2, 32)
    partial[(2,)](y, out2, 32)
    assert axpy.programs == compiled  # nothing compiled again
    np.testing.assert_allclose(out2.numpy(), (2 * x.double() + y.double()).numpy(), rtol=1e-6)


def test_a_fixed_tensor_is_read_at_every_launch():
    x, y = seeded(16, 6), seeded(16, 7)
    out = torch.full((16,), float("nan"))
    partial = axpy.partial(x=x, y=y, alpha=1.0, BLOCK=16)
    partial[(1,)](out=out, n=16)
    x.mul_(-2)  # values changed in place: the launch reads them
    partial[(1,)](out=out, n=16)
    np.testing.assert_allclose(out.numpy(), (x.double() + y.double()).numpy(), rtol=1e-6)


def test_other_dtypes_of_the_free_arguments_specialize_again():
    x = seeded(16, 8, torch.float16)
    partial = axpy.partial(x=x, alpha=0.5, BLOCK=16)
    for dtype in (torch.float16, torch.float32):
        y = seeded(16, 9, dtype)
        out = torch.full((16,), float("nan"), dtype=dtype)
        partial[(1,)](y, out, 16)
        expected = (0.5 * x.double()).to(dtype).double() + y.double()
        np.testing.assert_allclose(out.double().numpy(), expected.numpy(), rtol=2e-3, atol=2e-3)


def test_wrong_arguments_get_the_kernels_errors():
    with pytest.raises(LaunchError, match="has no parameter 'beta'"):
        axpy.partial(beta=1.0)
    partial = axpy.partial(x=seeded(16, 10), alpha=1.0, BLOCK=16)
    with pytest.raises(LaunchError, match="missing a required argument: 'n'"):
        partial[(1,)](seeded(16, 11), torch.zeros(16))
    with pytest.raises(LaunchError, match="'n' must be a Python int"):
        partial[(1,)](seeded(16, 11), torch.zeros(16), "16")


def test_blocks_per_multiprocessor_needs_cuda_tensors():
    x = seeded(8, 1)
    with pytest.raises(LaunchError, match=r"axpy.blocks_per_multiprocessor needs CUDA tensors, got cpu"):
        axpy.blocks_per_multiprocessor(x, x, x.clone(), 2.0, 8, BLOCK=8)
