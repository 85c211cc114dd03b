"""Lowered reductions run by the SIMT interpreter, against the block-level reference executor (bit for bit)
and numpy: over every combination of the dims of rank-1 to rank-3 tiles of ragged shapes, from random
layouts (replicated ones among them), for integer and float sums and for max and min. Float sums of small
integers are exact in any order; one test of random floats compares with float64 within float32's
summation bound (``tilevm.passes.lower.reductions``)."""

import itertools

import numpy as np
import pytest
import torch
from layout_assignment import random_layout
from lowering import assert_same_bytes, run_both

import tilevm as tv

TORCH = {
    tv.float16: torch.float16,
    tv.bfloat16: torch.bfloat16,
    tv.float32: torch.float32,
    tv.int8: torch.int8,
    tv.uint8: torch.uint8,
    tv.int16: torch.int16,
    tv.int32: torch.int32,
    tv.int64: torch.int64,
}
NUMPY = {"sum": np.sum, "max": np.max, "min": np.min}


def reduce_kernel(num_warps: int):
    @tv.kernel(num_warps=num_warps)
    def reduce_dims(
        x: tv.Tensor,
        out: tv.Tensor,
        OP: tv.constexpr,
        SHAPE: tv.constexpr,
        DIMS: tv.constexpr,
        DTYPE: tv.constexpr,
        LAYOUT: tv.constexpr,
    ):
        tile = tv.load_global(x, offsets=[0] * len(SHAPE), shape=SHAPE, layout=LAYOUT)
        for dim in DIMS:
            if OP == "sum":
                tile = tv.sum(tile, dim, keepdim=True, dtype=DTYPE)
            elif OP == "max":
                tile = tv.max(tile, dim, keepdim=True, dtype=DTYPE)
            else:
                tile = tv.min(tile, dim, keepdim=True, dtype=DTYPE)
        tv.store_global(out, tile, offsets=[0] * len(SHAPE))

    return reduce_dims


#: 4 warps (shuffles, then shared memory), 3 (thread digits of 3: shared memory), 1 (shuffles only)
KERNELS = {num_warps: reduce_kernel(num_warps) for num_warps in (4, 3, 1)}


def packed(values: np.ndarray, dtype) -> tv.TensorArgument:
    """``values`` encoded in ``dtype`` and packed densely (any width), as a kernel argument of their shape."""
    return tv.view(torch.from_numpy(tv.pack(tv.encode(values, dtype), dtype)), dtype, shape=values.shape)


def poisoned(shape: tuple[int, ...], dtype) -> torch.Tensor:
    """A tensor of ``dtype`` whose bytes are all 0xAB, so that an element left unwritten shows."""
    return torch.full((*shape, dtype.nbits // 8), 0xAB, dtype=torch.uint8).view(TORCH[dtype]).reshape(shape)


def all_dim_sets(rank: int) -> list[tuple[int, ...]]:
    return [dims for size in range(1, rank + 1) for dims in itertools.combinations(range(rank), size)]


SHAPES = [(40,), (6, 12), (1, 33), (4, 6, 8), (3, 16, 2), (8, 5, 4)]
CASES = [
    # operand, op, dtype, value bound
    (tv.int8, "sum", tv.int32, 128),
    (tv.int8, "sum", tv.int8, 128),  # wraps
    (tv.int4, "max", tv.int8, 8),
    (tv.uint2, "min", tv.uint8, 3),
    (tv.int16, "min", tv.int16, 30000),
    (tv.int64, "sum", tv.int64, 2**40),
    (tv.boolean, "max", tv.int8, 1),
    (tv.float16, "sum", tv.float32, 64),
    (tv.float16, "sum", tv.float16, 8),
    (tv.bfloat16, "max", tv.bfloat16, 100),
    (tv.float32, "min", tv.float32, 1000),
    (tv.float8_e4m3, "max", tv.float16, 16),
]


def small_values(rng: np.random.Generator, dtype, shape, bound: int) -> np.ndarray:
    if dtype == tv.boolean:
        return rng.integers(0, 2, size=shape).astype(bool)
    low, high = (
        (-bound, bound) if dtype.is_float else (max(dtype.min_value, -bound), min(dtype.max_value, bound))
    )
    return rng.integers(low, high, size=shape, endpoint=True)


def expected_reduction(values: np.ndarray, op: str, dtype, dims: tuple[int, ...]) -> torch.Tensor:
    """The reduction in numpy, exact (integer sums wrapped into ``dtype``), as the output tensor."""
    exact = values.astype(np.int64) if op == "sum" else values
    result = NUMPY[op](exact, axis=dims, keepdims=True)
    if dtype.is_integer and dtype.nbits < 64:
        half = 2 ** (dtype.nbits - 1) if dtype.is_signed else 0
        result = (result + half) % 2**dtype.nbits - half
    return torch.from_numpy(np.asarray(result)).to(TORCH[dtype])


#: every dim set of every shape, each with one of the cases in turn
COMBINATIONS = [(shape, dims) for shape in SHAPES for dims in all_dim_sets(len(shape))]


@pytest.mark.parametrize(
    ("position", "shape", "dims"), [(i, *combination) for i, combination in enumerate(COMBINATIONS)]
)
def test_reductions_over_every_dim_set_of_random_layouts_match_the_reference(position, shape, dims):
    operand, op, dtype, bound = CASES[position % len(CASES)]
    num_warps = list(KERNELS)[position % len(KERNELS)]
    rng = np.random.default_rng(position)
    values = small_values(rng, operand, shape, bound)
    layout = random_layout(shape, 32 * num_warps, rng)
    out = poisoned(tuple(1 if dim in dims else size for dim, size in enumerate(shape)), dtype)
    reference, threads = run_both(
        KERNELS[num_warps],
        (1,),
        packed(values, operand),
        out,
        OP=op,
        SHAPE=shape,
        DIMS=dims,
        DTYPE=dtype,
        LAYOUT=layout,
    )
    assert_same_bytes(reference, threads)
    assert torch.equal(threads[1], expected_reduction(values, op, dtype, dims)), (operand, op, dtype, layout)


def test_float_sums_of_random_values_are_within_float32_summation_bounds():
    rng = np.random.default_rng(17)
    shape = (6, 96)
    values = rng.standard_normal(shape).astype(np.float32)
    for dims in all_dim_sets(2):
        reduced = tuple(1 if dim in dims else size for dim, size in enumerate(shape))
        out = torch.full(reduced, float("nan"))
        layout = random_layout(shape, 128, rng)
        arguments = {"OP": "sum", "SHAPE": shape, "DIMS": dims, "DTYPE": tv.float32, "LAYOUT": layout}
        _, threads = run_both(KERNELS[4], (1,), torch.from_numpy(values), out, **arguments)
        exact = values.astype(np.float64).sum(axis=dims, keepdims=True)
        count = np.prod([shape[dim] for dim in dims])
        bound = (count - 1) * 2.0**-24 * np.abs(values.astype(np.float64)).sum(axis=dims, keepdims=True)
        assert np.all(np.abs(threads[1].numpy() - exact) <= bound)
