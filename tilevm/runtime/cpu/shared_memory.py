r"""The shared memory of a batch of blocks: ``shared_bytes`` per block, with the checks the GPU does not do.

Every access is bounds-checked and alignment-checked (a misaligned address is an error, as on the GPU), and
checked for **races** at byte granularity: between two barriers of a block, a byte written by one thread and
then read or written by another, or read by one thread and then written by another, is an error at the
second access. A thread may read and rewrite its own bytes. Per byte, the tracker keeps the last writer
since the block's last barrier (and where it wrote) and the lowest and highest thread that read it: another
thread is among the readers exactly when the lowest is below it or the highest above it. Two threads writing
one byte in the same instruction race too. A barrier forgets its block's accesses.

Bytes that a ``cp.async`` will write are *pending* until the thread waits for the copy's group
(``copies``): any access to them before that is an error.

Memory starts as seeded random bytes: a program reading shared memory nobody wrote gets garbage that tests
notice, as on the GPU.

>>> memory = SharedMemory.of(1, 64, poison=None, describe=lambda thread: f"thread {thread}")
>>> memory.write(np.array([0]), np.arange(4, dtype=np.uint8)[None], np.array([3]), "store at k.py:3")
>>> try:
...     memory.read(np.array([2]), 4, np.array([5]), np.array([5]))
... except ExecutionError as error:
...     print(error.message)
thread 5 reads shared byte 2 of block 0, written by thread 3 (store at k.py:3) with no barrier in between
>>> memory.barrier(np.array([True])); memory.read(np.array([2]), 2, np.array([5]), np.array([5])).tolist()
[[2, 3]]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tilevm.runtime.reference.errors import ExecutionError

__all__ = ["SharedMemory"]

_NOBODY = -1
_NO_READER_LOW = np.iinfo(np.int64).max


@dataclass(eq=False)
class SharedMemory:
    """``data[b * shared_bytes + i]`` is byte i of block b's shared memory; the other arrays are per byte."""

    shared_bytes: int
    data: np.ndarray
    writer: np.ndarray
    writer_site: np.ndarray
    reader_low: np.ndarray
    reader_high: np.ndarray
    pending: np.ndarray
    describe: Callable[[int], str]
    sites: list[str] = field(default_factory=list)
    touched: bool = False

    @staticmethod
    def of(
        blocks: int, shared_bytes: int, poison: np.random.Generator | None, describe: Callable[[int], str]
    ) -> SharedMemory:
        size = blocks * shared_bytes
        rng = poison if poison is not None else np.random.default_rng(0)
        return SharedMemory(
            shared_bytes=shared_bytes,
            data=rng.integers(0, 256, size=size, dtype=np.uint8),
            writer=np.full(size, _NOBODY, dtype=np.int64),
            writer_site=np.zeros(size, dtype=np.int64),
            reader_low=np.full(size, _NO_READER_LOW, dtype=np.int64),
            reader_high=np.full(size, _NOBODY, dtype=np.int64),
            pending=np.zeros(size, dtype=np.int64),
            describe=describe,
        )

    def addresses(self, offsets: np.ndarray, blocks: np.ndarray, width: int, what: str) -> np.ndarray:
        """The first bytes, in ``data``, of accesses of ``width`` bytes at ``offsets`` (bytes into each
        thread's block's memory, of the batch's ``blocks``), after checking their bounds and alignment."""
        misaligned = offsets % width != 0
        if misaligned.any():
            index = int(np.flatnonzero(misaligned)[0])
            raise ExecutionError(
                f"{what} of {width} bytes at shared byte {int(offsets[index])}, which is not a multiple of "
                f"{width} (misaligned)"
            )
        outside = (offsets < 0) | (offsets > self.shared_bytes - width)
        if outside.any():
            index = int(np.flatnonzero(outside)[0])
            raise ExecutionError(
                f"{what} of {width} bytes at shared byte {int(offsets[index])} is outside the block's "
                f"{self.shared_bytes} bytes of shared memory"
            )
        return blocks * self.shared_bytes + offsets

    def read(self, first: np.ndarray, width: int, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """The ``width`` bytes from each of ``first``, read by threads ``low`` to ``high`` (one thread, or the
        lanes of a warp that all receive the bytes of a warp-collective load), after the race checks."""
        spans = first[:, None] + np.arange(width)
        self.check_pending(spans, low, "reads")
        writers = self.writer[spans]
        alone = (low == high)[:, None] & (writers == low[:, None])
        bad = (writers != _NOBODY) & ~alone
        if bad.any():
            row, column = (int(axis[0]) for axis in np.nonzero(bad))
            self._race(int(low[row]), "reads", int(spans[row, column]), "written")
        np.minimum.at(self.reader_low, spans, low[:, None])
        np.maximum.at(self.reader_high, spans, high[:, None])
        self.touched = True
        return self.data[spans]

    def write(self, first: np.ndarray, values: np.ndarray, threads: np.ndarray, site: str) -> None:
        """Write the rows of ``values`` (uint8 ``[k, width]``) at ``first``, each by its thread."""
        spans = first[:, None] + np.arange(values.shape[1])
        self.check_pending(spans, threads, "writes")
        self.check_write(spans, threads)
        self.data[spans] = values
        self.mark_written(spans, threads, site)

    def mark_written(self, spans: np.ndarray, threads: np.ndarray, site: str) -> None:
        """Record ``threads`` as the writers of the bytes ``spans`` (one row per thread)."""
        owners = np.broadcast_to(threads[:, None], spans.shape)
        self.writer[spans] = owners
        collided = self.writer[spans] != owners
        if collided.any():
            row, column = (int(axis[0]) for axis in np.nonzero(collided))
            other = int(self.writer[spans[row, column]])
            raise ExecutionError(
                f"{self.describe(int(threads[row]))} and {self.describe(other)} write shared byte "
                f"{self._byte(int(spans[row, column]))} in the same instruction: their writes race"
            )
        self.writer_site[spans] = self._site(site)
        self.touched = True

    def check_write(self, spans: np.ndarray, threads: np.ndarray) -> None:
        """A write races with another thread's write, or another thread's read, since the last barrier."""
        column = threads[:, None]
        writers = self.writer[spans]
        written = (writers != _NOBODY) & (writers != column)
        if written.any():
            row, col = (int(axis[0]) for axis in np.nonzero(written))
            self._race(int(threads[row]), "writes", int(spans[row, col]), "written")
        read = (self.reader_low[spans] < column) | (self.reader_high[spans] > column)
        if read.any():
            row, col = (int(axis[0]) for axis in np.nonzero(read))
            self._race(int(threads[row]), "writes", int(spans[row, col]), "read")

    def check_pending(self, spans: np.ndarray, threads: np.ndarray, verb: str) -> None:
        waiting = self.pending[spans] > 0
        if waiting.any():
            row, column = (int(axis[0]) for axis in np.nonzero(waiting))
            raise ExecutionError(
                f"{self.describe(int(threads[row]))} {verb} shared byte "
                f"{self._byte(int(spans[row, column]))}, the destination of a cp.async whose group was not "
                f"waited for (cp_async_wait_group)"
            )

    def _race(self, thread: int, verb: str, byte: int, earlier: str) -> None:
        if earlier == "written":
            other = int(self.writer[byte])
            before = f"written by {self.describe(other)} ({self.sites[self.writer_site[byte]]})"
        else:
            low, high = int(self.reader_low[byte]), int(self.reader_high[byte])
            other = low if low != thread else high
            before = f"read by {self.describe(other)}"
        raise ExecutionError(
            f"{self.describe(thread)} {verb} shared byte {self._byte(byte)}, {before} with no barrier "
            f"in between"
        )

    def _byte(self, index: int) -> str:
        return f"{index % self.shared_bytes} of block {index // self.shared_bytes}"

    def _site(self, site: str) -> int:
        if not self.sites or self.sites[-1] != site:
            self.sites.append(site)
        return len(self.sites) - 1

    def barrier(self, blocks: np.ndarray) -> None:
        """The blocks where ``blocks`` is true passed a barrier: their accesses so far are seen by all."""
        if not self.touched:
            return
        if blocks.all():
            self.writer.fill(_NOBODY)
            self.reader_low.fill(_NO_READER_LOW)
            self.reader_high.fill(_NOBODY)
            self.touched = False
            return
        per_block = (arr.reshape(blocks.size, -1) for arr in (self.writer, self.reader_low, self.reader_high))
        for array, clear in zip(per_block, (_NOBODY, _NO_READER_LOW, _NOBODY)):
            array[blocks] = clear
