"""Batched dots run by the SIMT interpreter (the lowered program, as a CPU launch runs it) and the block-level
reference executor, against torch's float64 (or int64) ``einsum``: mma atoms of float16, bfloat16 and int8
and the multiply-add atom, batch sizes 1 to 4 and two batch dims, over as many warps as the batch or not,
with atoms and their spread (batch dims included) chosen at random; then the split-k pattern, where each
warp multiplies its own slice of k and the slices are summed after the loop. Inputs are small integers, so
that every partial sum is exact in any order; one test of random floats checks float32's summation bound."""

import numpy as np
import pytest
import torch
from layout_assignment import random_layout
from lowering import assert_same_bytes, run_both
from test_dot_batched import (
    dot_layouts,
    split_k_from_registers,
    split_k_operands,
    split_k_through_shared,
    warps_on_the_batch_dim,
)
from test_lower_dot_run import INFERENCE, TORCH, ChosenDot, packed, poisoned, small_values

import tilevm as tv
from tilevm.layout import SCALAR_ATOM, mma_fragments
from tilevm.layout.mma import DTYPE_NAMES, MMA_OPERANDS


def batched_dot_kernel(num_warps: int):
    @tv.kernel(num_warps=num_warps)
    def batched_dot(
        a: tv.Tensor, b: tv.Tensor, c: tv.Tensor, out: tv.Tensor, SHAPES: tv.constexpr, LAYOUTS: tv.constexpr
    ):
        shape_a, shape_b, shape_c = SHAPES
        layout_a, layout_b, layout_c = LAYOUTS
        origin = [0] * len(shape_c)
        a_tile = tv.load_global(a, offsets=origin, shape=shape_a, layout=layout_a)
        b_tile = tv.load_global(b, offsets=origin, shape=shape_b, layout=layout_b)
        c_tile = tv.load_global(c, offsets=origin, shape=shape_c, layout=layout_c)
        tv.store_global(out, tv.dot(a_tile, b_tile, c_tile), offsets=origin)

    return batched_dot


def random_batched_layouts(
    rng: np.random.Generator, operand, batch, m: int, n: int, k: int, num_threads: int
):
    """A random atom that tiles the shapes (the scalar one where no mma does), a random spread of the atoms
    over the batch dims, rows and columns, and the layouts of a, b and the accumulator they make."""
    name = DTYPE_NAMES.get(str(operand), str(operand))
    atoms = [mma_fragments(shape, name) for shape, types in MMA_OPERANDS.items() if name in types]
    fitting = [atom for atom in atoms if m % 16 == 0 and n % 8 == 0 and k % atom.a.shape[1] == 0]
    atom = fitting[int(rng.integers(len(fitting)))] if fitting else None
    fragments = SCALAR_ATOM if atom is None else atom
    atom_m, atom_n, atom_k = (*fragments.c.shape, fragments.a.shape[1])
    groups = num_threads // fragments.c.num_threads
    quotient = random_layout((*batch, m // atom_m, n // atom_n), groups, rng)
    return atom, quotient, dot_layouts(quotient, fragments, k // atom_k)


def expected_batched_dot(a: np.ndarray, b: np.ndarray, c: np.ndarray, accumulator) -> torch.Tensor:
    """``a @ b + c`` per batch index, by torch's einsum in float64 (exact on these small integers) or int64
    wrapped into the accumulator's dtype."""
    exact_dtype = torch.float64 if accumulator.is_float else torch.int64
    a, b, c = (torch.from_numpy(value).to(exact_dtype) for value in (a, b, c))
    exact = torch.einsum("...mk,...kn->...mn", a, b) + c
    if accumulator.is_float:
        return exact.to(TORCH[accumulator])
    half = 2 ** (accumulator.nbits - 1)
    return ((exact + half) % (2 * half) - half).to(TORCH[accumulator])


CASES = [
    # operand, accumulator, batch dims, m, n, k, warps, bound (products and sums exact in the accumulator)
    (tv.float16, tv.float32, (4,), 16, 16, 32, 4, 8),
    (tv.float16, tv.float16, (3,), 16, 8, 16, 2, 4),
    (tv.bfloat16, tv.float32, (2,), 16, 16, 32, 4, 8),
    (tv.bfloat16, tv.float32, (1,), 16, 8, 16, 1, 8),
    (tv.int8, tv.int32, (4,), 16, 8, 32, 2, 128),
    (tv.int8, tv.int32, (2, 2), 16, 8, 64, 4, 128),
    (tv.float32, tv.float32, (3,), 5, 3, 7, 1, 8),  # no mma: one multiply-add a thread
    (tv.float16, tv.float32, (2,), 3, 5, 4, 2, 8),
    (tv.int16, tv.int32, (4,), 2, 3, 5, 4, 1000),
]


@pytest.mark.parametrize("pinned", [True, False], ids=["random_layouts", "inferred_layouts"])
@pytest.mark.parametrize(("operand", "accumulator", "batch", "m", "n", "k", "warps", "bound"), CASES, ids=str)
def test_a_batched_dot_computes_each_batch_index_exactly(
    monkeypatch, pinned, operand, accumulator, batch, m, n, k, warps, bound
):
    rng = np.random.default_rng([m, n, k, warps, operand.nbits, *batch, pinned])
    a = small_values(rng, operand, (*batch, m, k), bound)
    b = small_values(rng, operand, (*batch, k, n), bound)
    c = small_values(rng, accumulator, (*batch, m, n), 16)
    tensors = packed(a, operand), packed(b, operand), torch.from_numpy(c).to(TORCH[accumulator])
    out = poisoned((*batch, m, n), accumulator)
    layouts = (None, None, None)
    if pinned:  # the operands loaded in the dot's layouts: no conversion
        atom, quotient, layouts = random_batched_layouts(rng, operand, batch, m, n, k, 32 * warps)
        monkeypatch.setattr(
            INFERENCE, "LayoutChooser", lambda num_threads: ChosenDot(num_threads, atom, quotient)
        )
    shapes = ((*batch, m, k), (*batch, k, n), (*batch, m, n))
    reference, threads = run_both(
        batched_dot_kernel(warps), (1,), *tensors, out, SHAPES=shapes, LAYOUTS=layouts
    )
    assert_same_bytes(reference, threads)
    assert torch.equal(threads[3], expected_batched_dot(a, b, c, accumulator))


def test_a_batched_float_dot_of_random_values_is_within_float32_summation_bounds():
    generator = torch.Generator().manual_seed(11)
    a = torch.randn(3, 16, 32, generator=generator).half()
    b = torch.randn(3, 32, 16, generator=generator).half()
    c = torch.randn(3, 16, 16, generator=generator)
    shapes = ((3, 16, 32), (3, 32, 16), (3, 16, 16))
    out = torch.full((3, 16, 16), float("nan"))
    _, threads = run_both(batched_dot_kernel(2), (1,), a, b, c, out, SHAPES=shapes, LAYOUTS=(None,) * 3)
    exact = torch.bmm(a.double(), b.double()) + c.double()
    # k + 1 float32 additions: each rounding at most 2^-24 of the running magnitude
    bound = 33 * 2.0**-24 * (torch.bmm(a.double().abs(), b.double().abs()) + c.double().abs())
    assert torch.all((threads[3].double() - exact).abs() <= bound)


@pytest.mark.parametrize("split", [4, 2, 3, 8])  # a slice a warp; two warps a slice; slices in locals
def test_the_split_k_pattern_through_shared_memory_is_exact_at_ragged_sizes(split):
    # two iterations of split slices of k; the second block has 8 columns of its 32
    m, n, kw, bn = 5, 40, 16, 32
    x, w, x3, w3, y = split_k_operands(m, n, 2 * split * kw, kw, seed=split)
    reference, threads = run_both(split_k_through_shared, (2,), x3, w3, y, SPLIT=split, KW=kw, BN=bn)
    assert_same_bytes(reference, threads)
    assert torch.equal(threads[2], (x.double() @ w.double()).half())


def test_the_split_k_pattern_from_pinned_loads_is_exact_at_ragged_sizes():
    m, n, k, kw, bn = 7, 24, 128, 16, 16  # 8 slices of k, two iterations of 4; the second block 8 columns
    x, w, x3, w3, y = split_k_operands(m, n, k, kw, seed=8)
    layouts = warps_on_the_batch_dim(4, kw, bn)
    reference, threads = run_both(split_k_from_registers, (2,), x3, w3, y, SPLIT=4, BN=bn, LAYOUTS=layouts)
    assert_same_bytes(reference, threads)
    assert torch.equal(threads[2], (x.double() @ w.double()).half())


def check_split_k_on_random_values(device: str, pinned: bool, m: int, n: int, k: int, kw: int, bn: int):
    """The split-k pattern on random float16 values against float64, within float32's summation bound."""
    generator = torch.Generator().manual_seed(12)
    x = torch.randn(m, k, generator=generator).half().to(device)
    w = torch.randn(k, n, generator=generator).half().to(device)
    y = torch.full((m, n), float("nan"), device=device).half()
    x3, w3 = x.view(m, k // kw, kw).permute(1, 0, 2), w.view(k // kw, kw, n)
    if pinned:
        layouts = warps_on_the_batch_dim(4, kw, bn)
        split_k_from_registers[(n // bn,)](x3, w3, y, SPLIT=4, BN=bn, LAYOUTS=layouts)
    else:
        split_k_through_shared[(n // bn,)](x3, w3, y, SPLIT=4, KW=kw, BN=bn)
    exact = x.double() @ w.double()
    # k float32 additions in any order, then one rounding to float16
    bound = (k + 1) * 2.0**-24 * (x.double().abs() @ w.double().abs()) + exact.abs() * 2.0**-11
    assert torch.all((y.double() - exact).abs() <= bound)


@pytest.mark.parametrize("pinned", [False, True], ids=["through_shared", "pinned_loads"])
def test_the_split_k_pattern_of_random_values_is_within_float32_summation_bounds(pinned):
    check_split_k_on_random_values("cpu", pinned, m=16, n=32, k=512, kw=32, bn=32)


@pytest.mark.gpu
@pytest.mark.parametrize("pinned", [False, True], ids=["through_shared", "pinned_loads"])
def test_the_split_k_pattern_on_the_gpu_is_within_float32_summation_bounds(pinned):
    check_split_k_on_random_values("cuda", pinned, m=16, n=512, k=4096, kw=32, bn=64)
