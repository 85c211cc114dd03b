"""Block-uniform scalar atomics (``tv.atomic_add_scalar`` and co.): a split-K reduction in one launch (each
block stores a partial, takes a ticket, and the last block of a tile sums the partials and resets the
counter), checked against torch float64 sums on both CPU executors, run twice in a row; the old values every
thread gets; the ops on every counter dtype against Python integers; the errors at their lines; the Thread
IR and the PTX of the lowering (one atom per block, between fences, guarded by the thread index)."""

from __future__ import annotations

import inspect
import itertools

import numpy as np
import pytest
import torch

import tilevm as tv
from tilevm.layout import spatial
from tilevm.runtime.reference import ExecutionError

EXECUTORS = ("simt", "reference")


def line_of(function, marker: str) -> int:
    lines, first = inspect.getsourcelines(function)
    return first + next(offset for offset, text in enumerate(lines) if marker in text)


@tv.kernel(num_warps=2)
def split_column_sums(x: tv.Tensor, out: tv.Tensor, partials: tv.Tensor, counters: tv.Tensor,
                      SPLITS: tv.constexpr, BK: tv.constexpr, BN: tv.constexpr,
                      SP: tv.constexpr):  # fmt: skip
    """``out[n] = sum_k x[k, n]``: block (t, s) sums rows ``[s * chunk, (s + 1) * chunk)`` of the columns of
    tile t into ``partials[s]``; the block that draws the tile's last ticket sums the ``SPLITS`` partials
    (``SP`` rows, a power of two, the rows past ``SPLITS`` reading 0) and resets the counter."""
    tile, split = tv.block_idx(0), tv.block_idx(1)
    column = tile * BN
    chunk = tv.cdiv(x.shape[0], SPLITS)
    start = split * chunk
    stop = tv.minimum(start + chunk, x.shape[0])
    partial = tv.register_tensor(tv.float32, [BN], init=0.0)
    for row in range(start, stop, BK):
        values = tv.load_global(x, offsets=[row, column], shape=[BK, BN])
        rows = tv.view(tv.arange(BK), tv.int32, [BK, 1]) + row
        partial = partial + tv.sum(tv.where(rows < stop, values, 0.0), dim=0)
    tv.store_global(partials, tv.view(partial, tv.float32, [1, BN]), offsets=[split, column])
    ticket = tv.atomic_add_scalar(counters, tile, 1)  # the ticket
    if ticket == SPLITS - 1:
        every = tv.load_global(partials, offsets=[0, column], shape=[SP, BN])
        tv.store_global(out, tv.sum(every, dim=0), offsets=[column])
        tv.atomic_exchange_scalar(counters, tile, 0)  # the reset


@tv.kernel(num_warps=1)
def split_row_sums(x: tv.Tensor, out: tv.Tensor, partials: tv.Tensor, counters: tv.Tensor[tv.uint64, 1],
                   SPLITS: tv.constexpr, BM: tv.constexpr, BK: tv.constexpr, SP: tv.constexpr):  # fmt: skip
    """``out[m] = sum_k x[m, k]`` split along k, with 64-bit counters counted from ``counters``' value at
    launch (any value: the last of ``SPLITS`` tickets is the one ``SPLITS - 1`` past it) and put back."""
    tile, split = tv.block_idx(0), tv.block_idx(1)
    row = tile * BM
    chunk = tv.cdiv(x.shape[1], SPLITS)
    start = split * chunk
    stop = tv.minimum(start + chunk, x.shape[1])
    partial = tv.register_tensor(tv.float32, [BM], init=0.0)
    for column in range(start, stop, BK):
        values = tv.load_global(x, offsets=[row, column], shape=[BM, BK])
        partial = partial + tv.sum(tv.where(tv.arange(BK) + column < stop, values, 0.0), dim=1)
    tv.store_global(partials, tv.view(partial, tv.float32, [BM, 1]), offsets=[row, split])
    base = tv.load_scalar(counters, tile + tv.num_blocks(0))
    ticket = tv.atomic_add_scalar(counters, tile, 1)
    if ticket == base + (SPLITS - 1):
        every = tv.load_global(partials, offsets=[row, 0], shape=[BM, SP])
        tv.store_global(out, tv.sum(every, dim=1), offsets=[row])
        tv.atomic_exchange_scalar(counters, tile, base)


def summation_bound(x: torch.Tensor, dim: int) -> torch.Tensor:
    """How far a float32 sum of the terms along ``dim``, in any order, may lie from the exact sum."""
    return (x.shape[dim] + 1) * 2.0**-24 * x.double().abs().sum(dim)


def check_sums(out: torch.Tensor, x: torch.Tensor, dim: int) -> None:
    assert not out.isnan().any()  # every element written
    assert torch.all((out.double() - x.double().sum(dim)).abs() <= summation_bound(x, dim))


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize(("splits", "k", "n", "seed"), [(2, 37, 50, 1), (3, 70, 23, 2), (5, 45, 40, 3)])
def test_split_k_column_sums_in_one_launch_twice_in_a_row(executor, splits, k, n, seed, monkeypatch):
    monkeypatch.setenv("TILEVM_CPU_EXECUTOR", executor)
    generator = torch.Generator().manual_seed(seed)
    tiles, block = -(-n // 16), 1 << (splits - 1).bit_length()
    counters = torch.zeros(tiles + 1, dtype=torch.int32)  # one more than the tiles: it must stay 0
    for _ in range(2):  # the first launch leaves the counters at 0 for the second
        x = torch.randn(k, n, generator=generator)
        out, partials = torch.full((n,), float("nan")), torch.full((splits, n), float("nan"))
        split_column_sums[(tiles, splits)](x, out, partials, counters, SPLITS=splits, BK=16, BN=16, SP=block)
        check_sums(out, x, 0)
        assert counters.tolist() == [0] * (tiles + 1)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_split_k_row_sums_with_64_bit_counters_from_any_start(executor, monkeypatch):
    monkeypatch.setenv("TILEVM_CPU_EXECUTOR", executor)
    generator = torch.Generator().manual_seed(4)
    m, k, splits = 19, 53, 3
    tiles = -(-m // 8)
    starts = [2**40 + 7, 0, 2**64 - 2]  # past 32 bits, zero, and one that wraps around during the launch
    counters = torch.tensor(starts * 2, dtype=torch.uint64)  # the counters, then their starts
    for _ in range(2):
        x = torch.randn(m, k, generator=generator)
        out, partials = torch.full((m,), float("nan")), torch.full((m, splits), float("nan"))
        split_row_sums[(tiles, splits)](x, out, partials, counters, SPLITS=splits, BM=8, BK=16, SP=4)
        check_sums(out, x, 1)
        assert [int(value) % 2**64 for value in counters.tolist()] == starts * 2


@pytest.mark.parametrize(
    ("executor", "message"),
    [
        ("reference", "atomic_scalar of counters[2]: the index is outside its shape [2]"),
        ("simt", "atomic_scalar of counters: an index is outside its shape"),  # a trap in the lowered code
    ],
)
def test_an_index_outside_the_counters_is_an_error_at_its_line(executor, message, monkeypatch):
    monkeypatch.setenv("TILEVM_CPU_EXECUTOR", executor)
    x, counters = torch.ones(8, 40), torch.zeros(2, dtype=torch.int32)  # three tiles, two counters
    out, partials = torch.zeros(40), torch.zeros(2, 40)
    with pytest.raises(ExecutionError) as caught:
        split_column_sums[(3, 2)](x, out, partials, counters, SPLITS=2, BK=16, BN=16, SP=2)
    assert caught.value.location.line == line_of(split_column_sums.function, "the ticket")
    assert caught.value.message == message


@tv.kernel(num_warps=4)
def tickets(counter: tv.Tensor[tv.int32, 1], seen: tv.Tensor[tv.int32, 2], THREADS: tv.constexpr):
    ticket = tv.atomic_add_scalar(counter, 0, 1)
    every_thread = tv.register_tensor(tv.int32, [THREADS], init=ticket, layout=spatial(THREADS))
    tv.store_global(seen, tv.view(every_thread, tv.int32, [1, THREADS]), offsets=[tv.block_idx(), 0])


@pytest.mark.parametrize("executor", EXECUTORS)
def test_every_thread_of_a_block_gets_the_blocks_old_value(executor, monkeypatch):
    monkeypatch.setenv("TILEVM_CPU_EXECUTOR", executor)
    blocks = 6
    counter = torch.tensor([100], dtype=torch.int32)
    seen = torch.full((blocks, 128), -1, dtype=torch.int32)
    tickets[(blocks,)](counter, seen, THREADS=128)
    assert counter.item() == 100 + blocks  # one add per block, not one per thread
    assert all(len(set(row)) == 1 for row in seen.tolist())  # each thread of a block, the same value
    assert sorted(seen[:, 0].tolist()) == list(range(100, 100 + blocks))  # each block, its own ticket


@tv.kernel(num_warps=1)
def combine(target: tv.Tensor, values: tv.Tensor, olds: tv.Tensor, OP: tv.constexpr):
    block = tv.block_idx()
    value = tv.load_scalar(values, block)
    if OP == "add":
        old = tv.atomic_add_scalar(target, 1, value)
    elif OP == "max":
        old = tv.atomic_max_scalar(target, 1, value)
    elif OP == "min":
        old = tv.atomic_min_scalar(target, 1, value)
    else:
        old = tv.atomic_exchange_scalar(target, 1, value)
    tv.store_global(olds, tv.register_tensor(olds.dtype, [1], init=old), offsets=[block])


def apply(op: str, old: int, value: int, dtype: tv.dtypes.DType) -> int:
    """The new value, as integers of ``dtype`` wrap around."""
    new = {"add": old + value, "max": max(old, value), "min": min(old, value), "exchange": value}[op]
    new = (new - dtype.min_value) % 2**dtype.nbits + dtype.min_value
    return new


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("op", ["add", "max", "min", "exchange"])
@pytest.mark.parametrize(
    ("dtype", "seed"), [(tv.int32, 5), (tv.uint32, 6), (tv.int64, 7), (tv.uint64, 8)], ids=str
)
def test_each_op_on_each_counter_dtype_acts_as_on_python_integers_in_some_order(
    executor, op, dtype, seed, monkeypatch
):
    monkeypatch.setenv("TILEVM_CPU_EXECUTOR", executor)
    rng = np.random.default_rng(seed)
    numbers = rng.integers(dtype.min_value, dtype.max_value, 5, endpoint=True, dtype=f"{str(dtype)[0]}8")
    start, *values = (int(number) for number in numbers)
    torch_dtype = getattr(torch, str(dtype))
    target = torch.tensor([7, start, 9], dtype=torch_dtype)
    olds = torch.zeros(len(values), dtype=torch_dtype)
    combine[(len(values),)](target, torch.tensor(values, dtype=torch_dtype), olds, OP=op)
    # the blocks ran in some order, in which each block's old value is what the blocks before it left
    outcomes = set()
    for order in itertools.permutations(range(len(values))):
        current, seen = start, [0] * len(values)
        for block in order:
            seen[block], current = current, apply(op, current, values[block], dtype)
        outcomes.add((tuple(seen), current))
    assert (tuple(olds.tolist()), target[1].item()) in outcomes
    assert (target[0].item(), target[2].item()) == (7, 9)
