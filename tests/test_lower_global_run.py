"""Global loads, stores and scalar loads run through lowering and the SIMT interpreter, bit for bit against
the reference executor (``tests/lowering.py::run_both``): random offsets (negative, unaligned, and multiples
of 16 for the wide paths), ragged shapes, sliced, transposed and broadcast (stride 0) views, sub-byte
dtypes, masked tails with ``other``, and offsets read by ``load_scalar`` (atomics:
``test_lower_global_atomics.py``). Outputs start as poison bytes (0xAB); the window of every copy is also
checked against torch, so that an element neither executor wrote would show.
"""

from __future__ import annotations

import pathlib
import runpy

import numpy as np
import pytest
import torch
from lowering import assert_same_bytes, run_both

import tilevm as tv

POISON = 0xAB
EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"


@tv.kernel(num_warps=2)
def shifted_copy(
    source: tv.Tensor, destination: tv.Tensor, m0: int, n0: int, d0: int, d1: int,
    BM: tv.constexpr, BN: tv.constexpr, OTHER: tv.constexpr,
):  # fmt: skip
    row = tv.block_idx(0) * BM
    column = tv.block_idx(1) * BN
    tile = tv.load_global(source, offsets=[m0 + row, n0 + column], shape=[BM, BN], other=OTHER)
    tv.store_global(destination, tile, offsets=[d0 + row, d1 + column])


def poisoned(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    width = torch.empty(0, dtype=dtype).element_size()
    return torch.full((*shape[:-1], shape[-1] * width), POISON, dtype=torch.uint8).view(dtype)


def random_values(rng: np.random.Generator, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Random bytes for integers; random normal floats (the reference executor keeps a NaN's value, not its
    payload bits, so NaNs from random bytes would differ from a raw copy for no fault of either)."""
    if dtype.is_floating_point:
        scale = 10 if dtype.itemsize == 1 else 100  # float8_e4m3fn has no infinity: 448 is its largest
        return torch.from_numpy(rng.standard_normal(shape) * scale).to(dtype)
    width = torch.empty(0, dtype=dtype).element_size()
    raw = rng.integers(0, 256, size=(*shape[:-1], shape[-1] * width), dtype=np.uint8)
    return torch.from_numpy(raw).view(dtype)


def expected_copy(source, destination, m0, n0, d0, d1, rows, columns, other) -> torch.Tensor:
    """What the copy leaves in ``destination``, element by element (torch on the byte-sized elements)."""
    expected = destination.clone()
    for i in range(rows):
        for j in range(columns):
            di, dj = d0 + i, d1 + j
            if not (0 <= di < destination.shape[0] and 0 <= dj < destination.shape[1]):
                continue
            si, sj = m0 + i, n0 + j
            inside = 0 <= si < source.shape[0] and 0 <= sj < source.shape[1]
            expected[di, dj] = source[si, sj] if inside else other
    return expected


def random_offset(rng: np.random.Generator, extent: int) -> int:
    """Aligned (a multiple of 16, the wide paths) half the time; negative or past the end at times."""
    if rng.random() < 0.5:
        return int(rng.choice([0, 16, -16]))
    return int(rng.integers(-3, extent + 2))


COPY_DTYPES = [torch.float32, torch.float16, torch.int8, torch.int64, torch.uint8, torch.float8_e4m3fn]


@pytest.mark.parametrize("seed", range(12))
def test_copies_of_random_windows_match_the_reference(seed):
    rng = np.random.default_rng(seed)
    dtype = COPY_DTYPES[seed % len(COPY_DTYPES)]
    rows, columns = int(rng.integers(1, 40)), int(rng.choice([int(rng.integers(1, 70)), 64, 48]))
    source = random_values(rng, (rows, columns), dtype)
    if seed % 3 == 1:  # rows further apart than their length: a slice of a wider tensor
        source = random_values(rng, (rows, columns + 16), dtype)[:, 3 : 3 + columns]
    if seed % 3 == 2:  # a transposed view: unit stride down the columns
        source = random_values(rng, (columns, rows), dtype).t()
    if seed % 4 == 3:  # one row read again and again: a stride of 0
        source = random_values(rng, (1, columns), dtype).expand(rows, columns)
    block_m, block_n = int(rng.choice([4, 8, 16])), int(rng.choice([8, 16, 32]))
    m0, n0 = random_offset(rng, rows), random_offset(rng, columns)
    d0, d1 = random_offset(rng, rows), random_offset(rng, columns)
    destination = poisoned((rows + 3, columns + 5), dtype)
    other = 7 if not dtype.is_floating_point else -2.5
    other = None if dtype == tv.boolean else 1  # (the front end rejects an other for bool tensors)
    grid = (tv.cdiv(rows, block_m), tv.cdiv(columns, block_n))
    args = (source, destination, m0, n0, d0, d1)
    reference, lowered = run_both(shifted_copy, grid, *args, BM=block_m, BN=block_n, OTHER=other)
    assert_same_bytes(reference, lowered)
    rows_run, columns_run = grid[0] * block_m, grid[1] * block_n
    expected = expected_copy(source, destination, m0, n0, d0, d1, rows_run, columns_run, other)
    assert torch.equal(reference[1].view(torch.uint8), expected.view(torch.uint8))


SUB_BYTE = [tv.int4, tv.uint2, tv.float4_e2m1, tv.uint1, tv.boolean]


@pytest.mark.parametrize("seed", range(10))
def test_sub_byte_copies_match_the_reference(seed):
    """Loads at any offset (a byte shifted down where a group does not start on one); stores of whole bytes,
    at columns and sizes that are multiples of 16 (what makes them race-free), masked at the ragged rows."""
    rng = np.random.default_rng(100 + seed)
    dtype = SUB_BYTE[seed % len(SUB_BYTE)]
    per_byte = 8 // dtype.nbits
    rows, columns = int(rng.integers(1, 30)), 16 * int(rng.integers(1, 5))
    source_bytes = torch.from_numpy(rng.integers(0, 256, size=(rows, columns // per_byte), dtype=np.uint8))
    destination_bytes = torch.full((rows + 2, 64 // per_byte), POISON, dtype=torch.uint8)
    source, destination = tv.view(source_bytes, dtype), tv.view(destination_bytes, dtype)
    block_m, block_n = int(rng.choice([2, 8])), int(rng.choice([16, 32, 64]))
    m0, n0 = random_offset(rng, rows), random_offset(rng, columns)
    d0, d1 = int(rng.integers(-2, rows)), int(rng.choice([0, 16, -16]))
    other = None if dtype == tv.boolean else 1  # (the front end rejects an other for bool tensors)
    grid = (tv.cdiv(rows, block_m), tv.cdiv(columns, block_n))
    args = (source, destination, m0, n0, d0, d1)
    reference, lowered = run_both(shifted_copy, grid, *args, BM=block_m, BN=block_n, OTHER=other)
    assert_same_bytes(reference, lowered)


@tv.kernel(num_warps=1)
def gather_rows(table: tv.Tensor, source: tv.Tensor, destination: tv.Tensor, BN: tv.constexpr):
    row = tv.load_scalar(table, tv.block_idx())
    tile = tv.load_global(source, offsets=[row, 0], shape=[1, BN], other=-1.0)
    tv.store_global(destination, tile, offsets=[tv.block_idx(), 0])


def test_offsets_read_by_load_scalar_match_the_reference():
    rng = np.random.default_rng(5)
    table = torch.tensor([3, 0, 9, 9, 11, 1], dtype=torch.int32)  # 11 is past the last row: all -1
    source = torch.from_numpy(rng.standard_normal((10, 40))).float()
    destination = poisoned((6, 40), torch.float32)
    reference, lowered = run_both(gather_rows, (6,), table, source, destination, BN=64)
    assert_same_bytes(reference, lowered)
    expected = torch.stack([source[r] if r < 10 else torch.full((40,), -1.0) for r in table.tolist()])
    assert torch.equal(reference[2], expected)


@pytest.mark.parametrize("n", [1000, 1024, 37])
def test_the_vector_add_example_matches_the_reference(n):
    """The example through the whole lowering: 16-byte groups, the ragged end one float at a time."""
    vector_add = runpy.run_path(str(EXAMPLES / "vector_add.py"), run_name="example")["vector_add"]
    generator = torch.Generator().manual_seed(n)
    a, b = torch.randn(n, generator=generator), torch.randn(n, generator=generator)
    out = poisoned((n,), torch.float32)
    reference, lowered = run_both(vector_add, (tv.cdiv(n, 256),), a, b, out, BLOCK=256)
    assert_same_bytes(reference, lowered)
    assert torch.equal(reference[2], a + b)


@tv.kernel(num_warps=1)
def narrow(source: tv.Tensor, destination: tv.Tensor, m0: int, n0: int, BM: tv.constexpr, BN: tv.constexpr):
    tile = tv.load_global(source, offsets=[m0, n0], shape=[BM, BN])
    tv.store_global(destination, tv.cast(tile, destination.dtype), offsets=[m0, n0])


@tv.kernel(num_warps=1)
def widen(source: tv.Tensor, destination: tv.Tensor, m0: int, n0: int, BM: tv.constexpr, BN: tv.constexpr):
    tile = tv.load_global(source, offsets=[m0, n0], shape=[BM, BN], other=3)
    tv.store_global(destination, tv.cast(tile, tv.int32), offsets=[0, 0])


STRADDLING = [tv.int3, tv.uint5, tv.int6, tv.float6_e3m2, tv.int7, tv.uint3]


@pytest.mark.parametrize("seed", range(6))
def test_elements_that_straddle_bytes_match_the_reference(seed):
    """3, 5, 6 and 7-bit elements: loads at any offset (one or two bytes an element), from a tensor packed
    with padding bits; stores of 16 consecutive elements a thread (cast from int8 loaded 16 a thread), in
    byte-aligned groups of 8, at column offsets that are multiples of 16."""
    rng = np.random.default_rng(200 + seed)
    dtype = STRADDLING[seed]
    rows, columns = int(rng.integers(3, 20)), int(rng.integers(3, 40))
    packed = torch.from_numpy(
        rng.integers(0, 256, size=(rows * columns * dtype.nbits + 7) // 8, dtype=np.uint8)
    )
    source = tv.view(packed, dtype, (rows, columns))
    destination = poisoned((16, 32), torch.int32)
    m0, n0 = int(rng.integers(-2, rows)), int(rng.integers(-2, columns))
    reference, lowered = run_both(widen, (1,), source, destination, m0, n0, BM=16, BN=32)
    assert_same_bytes(reference, lowered)
    small = torch.from_numpy(rng.integers(-3, 4, size=(rows, 64))).to(torch.int8)
    stored_bytes = torch.full((rows * 64 * dtype.nbits // 8,), POISON, dtype=torch.uint8)
    stored = tv.view(stored_bytes, dtype, (rows, 64))
    grid = (tv.cdiv(rows, 8),)
    reference, lowered = run_both(narrow, grid, small, stored, int(rng.integers(-1, 3)), 16, BM=8, BN=32)
    assert_same_bytes(reference, lowered)
