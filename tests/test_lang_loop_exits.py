"""``break`` and ``continue`` in a kernel, on conditions read from memory (ragged per row), in ``for`` and
``while`` loops, nested, and unrolled; each kernel is compared with the same loops run in Python."""

import inspect

import numpy as np
import pytest
import torch

import tilevm as tv
from tilevm import ir

ROWS, COLUMNS, BLOCK = 6, 11, 4


def line_of(function, marker: str) -> int:
    lines, first = inspect.getsourcelines(function)
    return first + next(offset for offset, text in enumerate(lines) if marker in text)


def ragged_values(seed: int) -> torch.Tensor:
    """Small ints with a stop value (-1) at a different column in each row, or none."""
    generator = np.random.default_rng(seed)
    values = generator.integers(0, 10, size=(ROWS, COLUMNS))
    for row in range(ROWS - 1):
        values[row, generator.integers(0, COLUMNS)] = -1
    values[0, BLOCK] = -1  # a stop at the start of a tile: the while loop breaks there
    return torch.from_numpy(values.astype(np.int32))


@tv.kernel(num_warps=1)
def sum_until_stop(x: tv.Tensor[tv.int32, 2], sums: tv.Tensor[tv.int32, 1], rows: tv.Tensor[tv.float32, 2],
                   n: int, BLOCK: tv.constexpr):  # fmt: skip
    """Per row: the sum of the values before the first -1, skipping multiples of 3; and the sum of the
    BLOCK-wide tiles of the row up to the first that starts with a -1 (a tile carried out of a while loop)."""
    row = tv.block_idx()
    total = 0
    for column in range(n):
        value = tv.load_scalar(x, row, column)
        if value == -1:
            break
        if value % 3 == 0:
            continue
        total += value
    tiles = tv.register_tensor(tv.float32, [BLOCK], init=0.0)
    column = 0
    while column < n:
        if tv.load_scalar(x, row, column) == -1:
            break
        tile = tv.load_global(x, offsets=[row, column], shape=[BLOCK], dims=[1], other=0)
        tiles = tiles + tv.cast(tile, tv.float32)
        column += BLOCK
    tv.store_global(sums, tv.register_tensor(tv.int32, [1], init=total), offsets=[row])
    tv.store_global(rows, tiles, offsets=[row, 0], dims=[1])


@pytest.mark.parametrize("seed", [0, 1])
def test_break_and_continue_on_values_read_per_row(seed):
    x = ragged_values(seed)
    sums = torch.full((ROWS,), -7, dtype=torch.int32)
    rows = torch.full((ROWS, BLOCK), float("nan"))
    sum_until_stop[(ROWS,)](x, sums, rows, COLUMNS, BLOCK=BLOCK)
    padded = np.zeros((ROWS, -(-COLUMNS // BLOCK) * BLOCK), dtype=np.int64)
    padded[:, :COLUMNS] = x.numpy()
    for row in range(ROWS):
        expected = 0
        for value in x[row].tolist():
            if value == -1:
                break
            if value % 3 == 0:
                continue
            expected += value
        assert sums[row].item() == expected, row
        tiles = np.zeros(BLOCK)
        for start in range(0, COLUMNS, BLOCK):
            if padded[row, start] == -1:
                break
            tiles += padded[row, start : start + BLOCK]
        np.testing.assert_array_equal(rows[row].numpy(), tiles)


@tv.kernel(num_warps=1)
def nested(limits: tv.Tensor[tv.int32, 1], out: tv.Tensor[tv.int32, 1], n: int):
    """An inner break ends only the inner loop; an outer continue skips the rest of the outer body."""
    row = tv.block_idx()
    limit = tv.load_scalar(limits, row)
    count = 0
    i = 0
    while i < n:
        i += 1
        if i % 4 == 0:
            continue
        for j in range(n):
            if j * i > limit:
                break
            for _k in range(j):
                if _k == 2:
                    continue
                count += 1
        count += 100
    tv.store_global(out, tv.register_tensor(tv.int32, [1], init=count), offsets=[row])


def test_nested_loops_break_and_continue_their_own_loop():
    limits = torch.tensor([0, 3, 7, 12, 40], dtype=torch.int32)
    out = torch.zeros(5, dtype=torch.int32)
    n = 7
    nested[(5,)](limits, out, n)
    for row, limit in enumerate(limits.tolist()):
        count, i = 0, 0
        while i < n:
            i += 1
            if i % 4 == 0:
                continue
            for j in range(n):
                if j * i > limit:
                    break
                for k in range(j):
                    if k == 2:
                        continue
                    count += 1
            count += 100
        assert out[row].item() == count, row


def test_unrolled_loops_break_and_continue_at_compile_time():
    @tv.kernel(num_warps=1)
    def unrolled(out: tv.Tensor[tv.int32, 1], STOP: tv.constexpr):
        total = 0
        for i in tv.static_range(10):
            if i == STOP:
                break
            if i % 2:
                continue
            total += i * tv.block_idx()
        tv.store_global(out, tv.register_tensor(tv.int32, [1], init=total), offsets=[tv.block_idx()])

    out = torch.zeros(3, dtype=torch.int32)
    unrolled[(3,)](out, STOP=7)
    assert out.tolist() == [(0 + 2 + 4 + 6) * block for block in range(3)]
    program = unrolled.ir(out, STOP=7)
    assert not any(isinstance(instruction, (ir.For, ir.While, ir.If)) for instruction in program.body)


def test_a_for_loop_that_breaks_runs_no_body_after_the_break():
    program = sum_until_stop.ir(ragged_values(0), torch.zeros(ROWS, dtype=torch.int32),
                                torch.zeros(ROWS, BLOCK), COLUMNS, BLOCK=BLOCK)  # fmt: skip
    loop = next(instruction for instruction in program.body if isinstance(instruction, ir.For))
    declared = [
        instruction.output.name for instruction in program.body if isinstance(instruction, ir.DeclareScalar)
    ]
    assert "broke" in declared
    assert isinstance(loop.body[-1], ir.If) and loop.body[-1].condition.lhs.name == "broke"


def test_break_under_a_kernel_value_in_an_unrolled_loop_names_its_line():
    @tv.kernel
    def mixed(out: tv.Tensor[tv.int32, 1], n: int):
        for i in tv.static_range(4):
            if i < n:
                break  # marker
        tv.store_global(out, tv.register_tensor(tv.int32, [1], init=n), offsets=[0])

    with pytest.raises(
        tv.CompilationError, match="break under a kernel-value condition in a loop unrolled"
    ) as caught:
        mixed.ir(torch.zeros(1, dtype=torch.int32), 3)
    assert caught.value.location.line == line_of(mixed, "marker")
