"""Races on shared memory: an access that conflicts with one since the last sync is an error at its line
(``tilevm.runtime.reference.races``); the same kernels with the sync compute what numpy computes."""

import inspect

import numpy as np
import pytest
import torch

import tilevm as tv
from tilevm.runtime.reference import ExecutionError


def line_of(function, marker: str) -> int:
    """The file line of the first source line of ``function`` containing ``marker``."""
    lines, first = inspect.getsourcelines(function)
    return first + next(offset for offset, text in enumerate(lines) if marker in text)


def matrix(seed: int, rows: int = 12, cols: int = 20) -> torch.Tensor:
    return torch.tensor(np.random.default_rng(seed).standard_normal((rows, cols)), dtype=torch.float32)


def race(kernel, *args, **constants) -> ExecutionError:
    with pytest.raises(ExecutionError) as caught:
        kernel[(1,)](*args, **constants)
    return caught.value


@tv.kernel
def transpose_through_shared(x: tv.Tensor, y: tv.Tensor, SYNC: tv.constexpr):
    """``y = x.T`` column by column of shared memory: each column is written as a row of a [20, 12] tile."""
    staged = tv.shared_tensor(tv.float32, [20, 12])
    for column in tv.static_range(20):
        values = tv.load_global(x, offsets=[0, column], shape=[12], dims=[0])
        tv.store_shared(tv.slice_shared(staged, [column, 0], [12]), values)  # the store
    if SYNC:
        tv.sync()
    tv.store_global(y, tv.load_shared(staged), offsets=[0, 0])  # the read


def test_a_read_after_a_store_needs_a_sync():
    x = matrix(1)
    y = torch.full((20, 12), -1.0)
    transpose_through_shared[(1,)](x, y, SYNC=True)
    np.testing.assert_array_equal(y.numpy(), x.numpy().T)

    error = race(transpose_through_shared, x, torch.zeros(20, 12), SYNC=False)
    assert error.location.line == line_of(transpose_through_shared, "the read")
    store_line = line_of(transpose_through_shared, "the store")
    assert error.message == (
        "load_shared of staged after store_shared into staged (slice slice_shared) "
        f"at {__file__}:{store_line}:8 with no sync in between: another thread may not have written those "
        "bytes yet"
    )


@tv.kernel
def staged_copy(x: tv.Tensor, y: tv.Tensor, SYNC: tv.constexpr):
    staged = tv.shared_tensor(tv.float32, [16, 32])
    tv.copy_async(staged, x, offsets=[0, 0])  # the copy
    tv.copy_async_commit()
    tv.copy_async_wait(0)
    if SYNC:
        tv.sync()
    tv.store_global(y, tv.load_shared(staged), offsets=[0, 0])  # the read


def test_a_copy_completed_by_its_wait_needs_a_sync_before_it_is_read():
    x = matrix(2)
    y = torch.full((12, 20), -1.0)
    staged_copy[(1,)](x, y, SYNC=True)
    np.testing.assert_array_equal(y.numpy(), x.numpy())  # the [16, 32] window's part inside y

    error = race(staged_copy, x, y, SYNC=False)
    assert error.location.line == line_of(staged_copy, "the read")
    assert error.message.startswith(
        f"load_shared of staged after copy_async into staged at {__file__}:"
        f"{line_of(staged_copy, 'the copy')}:4 with no sync in between"
    )


@tv.kernel
def overwrite(x: tv.Tensor, y: tv.Tensor, SYNC: tv.constexpr):
    staged = tv.shared_tensor(tv.float32, [12, 20])
    tv.store_shared(staged, tv.load_global(x, offsets=[0, 0], shape=[12, 20]))
    if SYNC:
        tv.sync()
    first = tv.load_shared(staged)
    if SYNC:
        tv.sync()
    tv.store_shared(staged, first * 2.0)  # the second write
    tv.sync()
    tv.store_global(y, tv.load_shared(staged), offsets=[0, 0])


def test_a_write_after_a_read_needs_a_sync():
    x = matrix(3)
    y = torch.full((12, 20), -1.0)
    overwrite[(1,)](x, y, SYNC=True)
    np.testing.assert_array_equal(y.numpy(), x.numpy() * 2)

    @tv.kernel
    def read_then_write(x: tv.Tensor, y: tv.Tensor):
        staged = tv.shared_tensor(tv.float32, [12, 20])
        tv.store_shared(staged, tv.load_global(x, offsets=[0, 0], shape=[12, 20]))
        tv.sync()
        first = tv.load_shared(staged)  # the read
        tv.store_shared(staged, first * 2.0)  # the write

    error = race(read_then_write, x, y)
    assert error.location.line == line_of(read_then_write, "the write")
    assert error.message == (
        f"store_shared into staged after load_shared of staged at {__file__}:"
        f"{line_of(read_then_write, 'the read')}:16 with no sync in between: another thread may still be "
        "reading those bytes"
    )


def test_a_write_after_a_write_needs_a_sync():
    @tv.kernel
    def write_twice(x: tv.Tensor):
        staged = tv.shared_tensor(tv.float32, [12, 20])
        tv.store_shared(staged, tv.load_global(x, offsets=[0, 0], shape=[12, 20]))
        tv.store_shared(tv.slice_shared(staged, [4, 0], [20]), tv.load_global(x, offsets=[0, 0], shape=[20]))

    error = race(write_twice, matrix(4))
    assert error.location.line == line_of(write_twice, "tv.slice_shared")
    assert "with no sync in between: writes of different threads to the same bytes race" in error.message


@tv.kernel
def nibble_columns(x: tv.Tensor[tv.uint4, 2], y: tv.Tensor[tv.uint4, 2], COLUMNS: tv.constexpr):
    """Copies an [8, 2 * COLUMNS] uint4 matrix through shared memory, one [8, COLUMNS] half at a time."""
    staged = tv.shared_tensor(tv.uint4, [8, 2 * COLUMNS])
    for half in tv.static_range(2):
        values = tv.load_global(x, offsets=[0, half * COLUMNS], shape=[8, COLUMNS])
        tv.store_shared(tv.slice_shared(staged, [0, half * COLUMNS], [8, COLUMNS]), values)  # a half
    tv.sync()
    tv.store_global(y, tv.load_shared(staged), offsets=[0, 0])


def test_sub_byte_elements_in_one_byte_race_and_whole_bytes_do_not():
    """Halves of two nibbles share every byte (a read-modify-write race on the GPU); halves of two
    nibbles per row do not."""
    rng = np.random.default_rng(5)
    for columns, racy in ((1, True), (2, False), (3, True)):
        codes = torch.tensor(rng.integers(0, 16, (8, 2 * columns)), dtype=torch.uint8)
        packed = (codes[:, 0::2] | (codes[:, 1::2] << 4)).contiguous()
        x, y = packed.view(-1), torch.zeros(8 * columns, dtype=torch.uint8)
        x2, y2 = x.view(8, columns), y.view(8, columns)
        if racy:
            error = race(nibble_columns, x2, y2, COLUMNS=columns)
            assert error.location.line == line_of(nibble_columns, "a half")
            assert "writes of different threads to the same bytes race" in error.message
        else:
            nibble_columns[(1,)](x2, y2, COLUMNS=columns)
            assert torch.equal(y, x)
