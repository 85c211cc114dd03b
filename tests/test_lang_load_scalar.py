"""``tv.load_scalar``: scalars read from global memory as loop bounds and offsets (paged attention's
per-sequence lengths and block tables), checked against numpy; its errors at their lines."""

import inspect

import numpy as np
import pytest
import torch

import tilevm as tv
from tilevm.ir import LoadScalar, ScalarType
from tilevm.runtime.reference import ExecutionError

PAGE, DIM = 4, 16


def line_of(function, marker: str) -> int:
    lines, first = inspect.getsourcelines(function)
    return first + next(offset for offset, text in enumerate(lines) if marker in text)


@tv.kernel
def paged_sum(
    cache: tv.Tensor[tv.float32, 3],
    block_table: tv.Tensor[tv.int32, 2],
    lengths: tv.Tensor[tv.int32, 1],
    scales: tv.Tensor[tv.float32, 1],
    out: tv.Tensor[tv.float32, 2],
    PAGE: tv.constexpr,
    DIM: tv.constexpr,
):
    """``out[s] = scales[s] * sum(token rows of sequence s)``; token t of a sequence lies in page
    ``block_table[s, t // PAGE]`` of the cache, at row ``t % PAGE``."""
    sequence = tv.block_idx(0)
    length = tv.load_scalar(lengths, sequence)  # the length
    total = tv.register_tensor(tv.float32, [DIM], init=0.0)
    for token in range(length):
        page = tv.load_scalar(block_table, sequence, token // PAGE)
        total = total + tv.load_global(cache, offsets=[page, token % PAGE, 0], shape=[DIM], dims=[2])
    tv.store_global(out, total * tv.load_scalar(scales, sequence), offsets=[sequence, 0], dims=[1])


def paged_inputs(seed: int, lengths: list[int], num_pages: int = 40):
    """A cache of ``num_pages`` pages and a block table that gives each sequence distinct random pages."""
    rng = np.random.default_rng(seed)
    max_pages = max(-(-length // PAGE) for length in lengths)
    pages = rng.permutation(num_pages)[: len(lengths) * max_pages].reshape(len(lengths), max_pages)
    cache = rng.standard_normal((num_pages, PAGE, DIM)).astype(np.float32)
    scales = rng.uniform(0.5, 2.0, len(lengths)).astype(np.float32)
    return cache, pages.astype(np.int32), np.array(lengths, dtype=np.int32), scales


def numpy_paged_sum(cache, block_table, lengths, scales):
    out = np.zeros((len(lengths), DIM), dtype=np.float32)
    for sequence, length in enumerate(lengths):
        total = np.zeros(DIM, dtype=np.float32)
        for token in range(length):  # in the kernel's order, each add rounded to float32
            total = total + cache[block_table[sequence, token // PAGE], token % PAGE]
        out[sequence] = total * scales[sequence]
    return out


@pytest.mark.parametrize(("seed", "lengths"), [(1, [5, 0, 13, 1, 8]), (2, [31]), (3, [3, 17, 9])])
def test_paged_loop_bounds_and_offsets_come_from_memory(seed, lengths):
    cache, block_table, lengths_array, scales = paged_inputs(seed, lengths)
    out = torch.full((len(lengths), DIM), np.nan)
    arguments = [torch.from_numpy(array) for array in (cache, block_table, lengths_array, scales)]
    paged_sum[(len(lengths),)](*arguments, out, PAGE=PAGE, DIM=DIM)
    np.testing.assert_array_equal(out.numpy(), numpy_paged_sum(cache, block_table, lengths_array, scales))


def test_the_scalar_has_the_tensors_dtype():
    @tv.kernel
    def read(x: tv.Tensor[tv.int16, 2], y: tv.Tensor[tv.uint8, 1], out: tv.Tensor[tv.int16, 1]):
        tv.load_scalar(y, 0)
        tv.store_global(out, tv.register_tensor(tv.int16, [1], init=tv.load_scalar(x, 1, 2)), offsets=[0])

    x = torch.tensor(np.random.default_rng(4).integers(-1000, 1000, (3, 5)), dtype=torch.int16)
    y, out = torch.arange(7, dtype=torch.uint8), torch.zeros(1, dtype=torch.int16)
    program = read.ir(x, y, out)
    loads = [instruction for instruction in program.body if isinstance(instruction, LoadScalar)]
    assert [load.output.type for load in loads] == [ScalarType(tv.uint8), ScalarType(tv.int16)]
    read[(1,)](x, y, out)
    assert int(out[0]) == int(x[1, 2])


@pytest.mark.parametrize(
    ("executor", "message"),
    [
        ("reference", "load_scalar of lengths[2]: the index is outside its shape [2]"),
        ("simt", "load_scalar of lengths: an index is outside its shape"),  # a trap in the lowered code
    ],
)
def test_an_index_outside_the_tensor_is_an_error_at_its_line(executor, message, monkeypatch):
    monkeypatch.setenv("TILEVM_CPU_EXECUTOR", executor)
    cache, block_table, lengths, scales = paged_inputs(5, [6, 2])
    arguments = [torch.from_numpy(array) for array in (cache, block_table, lengths, scales)]
    with pytest.raises(ExecutionError) as caught:  # one block more than there are sequences
        paged_sum[(3,)](*arguments, torch.zeros(3, DIM), PAGE=PAGE, DIM=DIM)
    assert caught.value.location.line == line_of(paged_sum, "the length")
    assert caught.value.message == message


def test_load_scalar_needs_one_integer_index_per_dimension_of_a_global_tensor():
    @tv.kernel
    def too_few(x: tv.Tensor[tv.int32, 2]):
        tv.load_scalar(x, 0)  # marker

    @tv.kernel
    def float_index(x: tv.Tensor[tv.int32, 1]):
        tv.load_scalar(x, 1.5)  # marker

    @tv.kernel
    def of_a_tile(x: tv.Tensor[tv.int32, 1]):
        tv.load_scalar(tv.load_global(x, offsets=[0], shape=[4]), 0)  # marker

    x = torch.zeros(4, 4, dtype=torch.int32)
    for kernel, argument, message in (
        (too_few, x, "load_scalar needs 2 indices (one per dimension), got 1"),
        (float_index, x[0], "load_scalar's index[0] must be an integer, got the Python float 1.5"),
        (of_a_tile, x[0], "load_scalar cannot take a register tile int32[4]"),
    ):
        with pytest.raises(tv.CompilationError) as caught:
            kernel.ir(argument)
        assert caught.value.message == message
        assert caught.value.location.line == line_of(kernel, "marker")
