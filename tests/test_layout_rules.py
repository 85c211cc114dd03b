"""The layout rules, checked against the layouts' tables (the ground truth), on seeded random layouts."""

import numpy as np
import pytest
from layout_assignment import random_layout

from tilevm.layout import (
    SCALAR_ATOM,
    bit_layout,
    broadcast_layout,
    dot_atom,
    local,
    mma_fragments,
    view_layout,
)

NUM_THREADS = 32


def first_appearances(coordinates: np.ndarray) -> list[tuple[int, ...]]:
    seen: list[tuple[int, ...]] = []
    for coordinate in map(tuple, coordinates.tolist()):
        if coordinate not in seen:
            seen.append(coordinate)
    return seen


@pytest.mark.parametrize("seed", range(12))
def test_a_broadcast_operand_holds_in_each_thread_the_elements_its_results_read(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(x) for x in rng.choice([1, 2, 3, 4, 8], size=int(rng.integers(1, 4))))
    result = random_layout(shape, NUM_THREADS, rng)
    operand_shape = tuple(1 if rng.random() < 0.4 else extent for extent in shape)[
        int(rng.integers(len(shape))) :
    ]
    operand = broadcast_layout(result, operand_shape)
    # the element a result element reads: broadcast dims at 0, leading dims dropped (numpy's rule)
    reads = np.where(
        np.array((1,) * (len(shape) - len(operand_shape)) + operand_shape) == 1, 0, result.table()
    )
    reads = reads[..., len(shape) - len(operand_shape) :]
    assert operand.shape == operand_shape and operand.num_threads == NUM_THREADS
    for thread in range(NUM_THREADS):
        assert first_appearances(operand.table()[thread]) == first_appearances(reads[thread])


def thread_bits(layout, bits: int) -> np.ndarray:
    """Per thread, the row-major bit positions its slots hold, slot 0's lowest bit first."""
    linear = np.ravel_multi_index(tuple(np.moveaxis(layout.table(), -1, 0)), layout.shape)
    positions = linear[..., None] * bits + np.arange(bits)
    return positions.reshape(layout.num_threads, -1)


def aligned_chunks(stream: np.ndarray, bits: int) -> bool:
    """Whether every thread's bit stream is whole elements of ``bits`` bits, each in order."""
    if stream.shape[1] % bits:
        return False
    chunks = stream.reshape(stream.shape[0], -1, bits)
    return bool(np.all(chunks[..., 0] % bits == 0) and np.all(np.diff(chunks, axis=-1) == 1))


@pytest.mark.parametrize("seed", range(24))
@pytest.mark.parametrize(("source_bits", "target_bits"), [(8, 4), (4, 8), (8, 16), (16, 8), (8, 8), (2, 4)])
def test_view_layout_keeps_every_threads_bits_exactly_when_they_are_whole_elements(
    seed, source_bits, target_bits
):
    rng = np.random.default_rng(seed)
    source = random_layout((4, 8), NUM_THREADS, rng)
    target_shape = (4, 8 * source_bits // target_bits)
    stream = thread_bits(source, source_bits)
    derived = view_layout(source, source_bits, target_bits, target_shape)
    assert (derived is not None) == aligned_chunks(stream, target_bits)
    if derived is not None:
        assert derived.shape == target_shape
        np.testing.assert_array_equal(thread_bits(derived, target_bits), stream)
        assert bit_layout(derived, target_bits) == bit_layout(source, source_bits)


def test_view_layout_of_packed_int4_weights():
    # uint8 [K, N/2] with four bytes per thread along N becomes int4 [K, N] with eight nibbles
    source = random_layout((16, 8), NUM_THREADS, np.random.default_rng(5)) * local(1, 4)
    derived = view_layout(source, 8, 4, (16, 64))
    np.testing.assert_array_equal(thread_bits(derived, 4), thread_bits(source, 8))
    assert derived == (source / local(1, 4)) * local(1, 8)


def holds_its_operands(a, b, accumulator) -> bool:
    """Whether every thread holding accumulator[i, j] holds all of a[i, :] and b[:, j] (one multiply-add
    per thread needs nothing from other threads)."""
    k = a.shape[1]
    for thread in range(accumulator.num_threads):
        a_held, b_held = (
            set(map(tuple, a.table()[thread].tolist())),
            set(map(tuple, b.table()[thread].tolist())),
        )
        for i, j in accumulator.table()[thread].tolist():
            if not all((i, kk) in a_held and (kk, j) in b_held for kk in range(k)):
                return False
    return True


@pytest.mark.parametrize("seed", range(8))
def test_fma_dot_layouts_give_each_thread_its_operands(seed):
    rng = np.random.default_rng(seed)
    accumulator = random_layout((4, 8), NUM_THREADS, rng)
    a, b = accumulator.reduce(1) * local(1, 6), local(6, 1) * accumulator.reduce(0)
    assert dot_atom(a, b, accumulator, "float32") == "fma"
    assert holds_its_operands(a, b, accumulator)
    spread = random_layout((4, 6), NUM_THREADS, rng)
    if not holds_its_operands(spread, b, accumulator):
        assert dot_atom(spread, b, accumulator, "float32") is None


def test_mma_fragments_over_four_warps():
    fragments = mma_fragments("m16n8k16", "f16")
    warps = random_layout((2, 4), 4, np.random.default_rng(3))  # [32 rows, 32 columns] of atoms
    a = warps.reduce(1) * local(1, 2) * fragments.a
    b = local(2, 1) * warps.reduce(0) * fragments.b
    accumulator = warps * fragments.c
    assert dot_atom(a, b, accumulator, "float16") == "m16n8k16"
    assert dot_atom(a, b, accumulator, "int8") is None  # int8 takes k32 fragments
    assert SCALAR_ATOM.c.num_threads == 1
