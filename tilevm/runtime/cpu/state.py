"""The state of one batch of blocks while the interpreter runs it: every thread's registers, which threads
are active, and the batch's shared memory.

The interpreter runs several blocks of the grid at once, as one batch of ``N = blocks * num_threads``
threads (thread ``b * num_threads + t`` is thread t of the batch's block b), so that numpy works on long
arrays; each block keeps its own shared memory, barriers and races (``SharedMemory``).

``mask`` is None while every thread runs (the usual case: the lowering's control flow is block-uniform), else
a bool array ``[N]`` of the threads that run the current instruction: a divergent ``if``, ``for`` or
``while`` runs its body with the threads that take it.

>>> batch = Batch.of(blocks=[(0, 0, 0), (1, 0, 0)], grid=(2, 1, 1), num_threads=64, shared_bytes=0,
...                  while_limit=10, slots=0)
>>> batch.size, batch.block_index[0].tolist()[62:66], batch.lane_index.tolist()[30:34]
(128, [0, 0, 1, 1], [30, 31, 0, 1])
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tilevm.runtime.cpu.copies import AsyncCopies
from tilevm.runtime.cpu.shared_memory import SharedMemory
from tilevm.runtime.reference.errors import ExecutionError
from tilevm.runtime.reference.limits import WHILE_LIMIT_VARIABLE

__all__ = ["WARP_SIZE", "Batch"]

WARP_SIZE = 32


@dataclass(eq=False)
class Batch:
    """Registers by slot (see ``compiler``), the active mask, the threads' indices and the shared memory."""

    blocks: list[tuple[int, int, int]]
    grid: tuple[int, int, int]
    num_threads: int
    size: int
    registers: list[object]
    mask: np.ndarray | None
    thread_index: np.ndarray
    lane_index: np.ndarray
    warp_index: np.ndarray
    block_index: tuple[np.ndarray, np.ndarray, np.ndarray]
    block_of_thread: np.ndarray
    all_threads: np.ndarray
    shared: SharedMemory
    copies: AsyncCopies
    while_limit: int

    @staticmethod
    def of(
        blocks: list[tuple[int, int, int]],
        grid: tuple[int, int, int],
        num_threads: int,
        shared_bytes: int,
        while_limit: int,
        slots: int,
        poison: np.random.Generator | None = None,
    ) -> Batch:
        """A fresh batch of ``blocks`` with ``slots`` registers, none written yet."""
        count = len(blocks)
        size = count * num_threads
        thread, lane, warp, block_of_thread, all_threads = _thread_indices(count, num_threads)
        coordinates = np.asarray(blocks, dtype=np.int32)
        # One block: its indices are uniform (0-d), which keeps the values computed from them uniform too.
        block_index = tuple(
            np.asarray(coordinates[0, axis]) if count == 1 else np.repeat(coordinates[:, axis], num_threads)
            for axis in range(3)
        )
        return Batch(
            blocks=blocks,
            grid=grid,
            num_threads=num_threads,
            size=size,
            registers=[None] * slots,
            mask=None,
            thread_index=thread,
            lane_index=lane,
            warp_index=warp,
            block_index=block_index,
            block_of_thread=block_of_thread,
            all_threads=all_threads,
            shared=SharedMemory.of(count, shared_bytes, poison, _describer(blocks, num_threads)),
            copies=AsyncCopies(size),
            while_limit=while_limit,
        )

    def active(self, predicate: np.ndarray | None) -> np.ndarray | None:
        """The threads that run an instruction guarded by ``predicate`` (None: all of them)."""
        if predicate is None:
            return self.mask
        if predicate.ndim == 0:
            if bool(predicate):
                return self.mask
            return np.zeros(self.size, dtype=bool)
        if self.mask is None:
            return None if predicate.all() else predicate
        return self.mask & predicate

    def threads(self, active: np.ndarray | None) -> np.ndarray:
        """The indices of the ``active`` threads, in order."""
        return self.all_threads if active is None else np.flatnonzero(active)

    def describe_thread(self, thread: int) -> str:
        """``thread 5 of block (1, 0, 0)`` for messages."""
        return self.shared.describe(thread)

    def check_while_limit(self, iterations: int) -> None:
        if iterations == self.while_limit:
            raise ExecutionError(
                f"while loop still running after {iterations} iterations, the limit (a hang?); "
                f"execute's while_limit or {WHILE_LIMIT_VARIABLE} sets it"
            )


def _describer(blocks: list[tuple[int, int, int]], num_threads: int) -> Callable[[int], str]:
    def describe(thread: int) -> str:
        return f"thread {thread % num_threads} of block {blocks[thread // num_threads]}"

    return describe


@functools.lru_cache(maxsize=16)
def _thread_indices(blocks: int, num_threads: int) -> tuple[np.ndarray, ...]:
    """Per thread of a batch of ``blocks``: its index in its block, lane, warp, block in the batch, and its
    index in the batch (shared by every batch of the size; never written)."""
    thread = np.tile(np.arange(num_threads, dtype=np.int32), blocks)
    arrays = (
        thread,
        thread % WARP_SIZE,
        thread // WARP_SIZE,
        np.repeat(np.arange(blocks, dtype=np.int64), num_threads),
        np.arange(blocks * num_threads),
    )
    for array in arrays:
        array.flags.writeable = False
    return arrays
