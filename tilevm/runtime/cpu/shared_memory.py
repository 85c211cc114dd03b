r"""The shared memory of a batch of blocks: ``shared_bytes`` per block, with the checks the GPU does not do.

Every access is bounds-checked and alignment-checked (a misaligned address is an error, as on the GPU), and
checked for **races** at byte granularity: between two barriers of a block, a byte written by one thread and
then read or written by another, or read by one thread and then written by another, is an error at the
second access. A thread may read and rewrite its own bytes. Per byte, the tracker keeps the last writer
since the block's last barrier (and where it wrote) and its reader: none, one thread, or several (a warp's
``ldmatrix`` reads for all its lanes at once). Two threads writing one byte in one instruction race too. A
barrier forgets its block's accesses.

Bytes that a ``cp.async`` will write are *pending* until the thread waits for the copy's group
(``copies``): any access to them before that is an error.

Every access of ``width`` bytes is aligned to ``width``, so it is one row of the memory viewed as rows of
``width`` bytes: accesses are numbered by that row (``rows``), and numpy moves whole rows. Each block's
memory starts at a multiple of 16 bytes, so that its rows never straddle two blocks.

Memory starts as seeded random bytes: a program reading shared memory nobody wrote gets garbage that tests
notice, as on the GPU.

>>> memory = SharedMemory.of(1, 64, poison=None, describe=lambda thread: f"thread {thread}")
>>> memory.write(np.array([0]), np.arange(4, dtype=np.uint8)[None], np.array([3]), "store at k.py:3")
>>> try:
...     memory.read(np.array([0]), 4, np.array([5]))
... except ExecutionError as error:
...     print(error.message)
thread 5 reads shared byte 0 of block 0, written by thread 3 (store at k.py:3) with no barrier in between
>>> memory.barrier(np.array([True])); memory.read(np.array([1]), 2, np.array([5])).tolist()
[[2, 3]]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tilevm.runtime.reference.errors import ExecutionError

__all__ = ["SharedMemory"]

_NOBODY = -1
_SEVERAL = -2  # a byte read by more than one thread
_BLOCK_ALIGNMENT = 16  # the widest access


@dataclass(eq=False)
class SharedMemory:
    """``data[b * stride + i]`` is byte i of block b's shared memory; the other arrays are per byte."""

    shared_bytes: int
    stride: int
    data: np.ndarray
    writer: np.ndarray
    writer_site: np.ndarray
    reader: np.ndarray
    pending: np.ndarray
    describe: Callable[[int], str]
    sites: list[str] = field(default_factory=list)
    touched: bool = False

    @staticmethod
    def of(
        blocks: int, shared_bytes: int, poison: np.random.Generator | None, describe: Callable[[int], str]
    ) -> SharedMemory:
        stride = -(-shared_bytes // _BLOCK_ALIGNMENT) * _BLOCK_ALIGNMENT
        size = blocks * stride
        rng = poison if poison is not None else np.random.default_rng(0)
        return SharedMemory(
            shared_bytes=shared_bytes,
            stride=stride,
            data=rng.integers(0, 256, size=size, dtype=np.uint8),
            writer=np.full(size, _NOBODY, dtype=np.int32),
            writer_site=np.zeros(size, dtype=np.int32),
            reader=np.full(size, _NOBODY, dtype=np.int32),
            pending=np.zeros(size, dtype=np.int8),
            describe=describe,
        )

    def rows(self, offsets: np.ndarray, blocks: np.ndarray, width: int, what: str) -> np.ndarray:
        """The rows (see the module) of accesses of ``width`` bytes at ``offsets`` (bytes into the memory of
        each thread's block, of the batch's ``blocks``), after checking their alignment and bounds."""
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
        return (blocks * self.stride + offsets) // width

    def read(self, rows: np.ndarray, width: int, threads: np.ndarray, warp_wide: bool = False) -> np.ndarray:
        """The bytes ``[k, width]`` of ``rows``, read by ``threads`` (or, ``warp_wide``, by every lane of
        each thread's warp, which all receive the bytes of a warp-collective load), after the checks."""
        self.check_pending(rows, width, threads, "reads")
        writers = self.writer.reshape(-1, width)[rows]
        others = writers != _NOBODY
        if not warp_wide:
            others &= writers != threads[:, None]
        if others.any():
            self._race(rows, width, threads, others, "reads", "written")
        self._mark_read(rows, width, threads, warp_wide)
        self.touched = True
        return self.data.reshape(-1, width)[rows]

    def _mark_read(self, rows: np.ndarray, width: int, threads: np.ndarray, warp_wide: bool) -> None:
        readers = self.reader.reshape(-1, width)
        if warp_wide:
            readers[rows] = _SEVERAL
            return
        rows, reader = _reader_per_row(rows, threads)
        current = readers[rows]
        column = reader[:, None]
        readers[rows] = np.where((current == _NOBODY) | (current == column), column, _SEVERAL)

    def write(self, rows: np.ndarray, values: np.ndarray, threads: np.ndarray, site: str) -> None:
        """Write the rows of ``values`` (uint8 ``[k, width]``) at ``rows``, each by its thread."""
        width = values.shape[1]
        self.check_pending(rows, width, threads, "writes")
        self.check_write(rows, width, threads)
        self.data.reshape(-1, width)[rows] = values
        self.mark_written(rows, width, threads, site)

    def mark_written(self, rows: np.ndarray, width: int, threads: np.ndarray, site: str) -> None:
        """Record ``threads`` as the writers of ``rows``."""
        writers = self.writer.reshape(-1, width)
        column = threads[:, None].astype(np.int32)
        writers[rows] = column
        collided = writers[rows] != column
        if collided.any():
            row, byte = (int(axis[0]) for axis in np.nonzero(collided))
            other = int(writers[rows[row], byte])
            raise ExecutionError(
                f"{self.describe(int(threads[row]))} and {self.describe(other)} write shared byte "
                f"{self._byte(int(rows[row]) * width + byte)} in the same instruction: their writes race"
            )
        self.writer_site.reshape(-1, width)[rows] = self._site(site)
        self.touched = True

    def check_write(self, rows: np.ndarray, width: int, threads: np.ndarray) -> None:
        """A write races with another thread's write, or another thread's read, since the last barrier."""
        column = threads[:, None]
        writers = self.writer.reshape(-1, width)[rows]
        written = (writers != _NOBODY) & (writers != column)
        if written.any():
            self._race(rows, width, threads, written, "writes", "written")
        readers = self.reader.reshape(-1, width)[rows]
        read = (readers != _NOBODY) & (readers != column)
        if read.any():
            self._race(rows, width, threads, read, "writes", "read")

    def check_pending(self, rows: np.ndarray, width: int, threads: np.ndarray, verb: str) -> None:
        waiting = self.pending.reshape(-1, width)[rows] != 0
        if waiting.any():
            row, byte = (int(axis[0]) for axis in np.nonzero(waiting))
            raise ExecutionError(
                f"{self.describe(int(threads[row]))} {verb} shared byte "
                f"{self._byte(int(rows[row]) * width + byte)}, the destination of a cp.async whose group was "
                f"not waited for (cp_async_wait_group)"
            )

    def set_pending(self, rows: np.ndarray, width: int, pending: bool) -> None:
        self.pending.reshape(-1, width)[rows] = pending

    def _race(
        self,
        rows: np.ndarray,
        width: int,
        threads: np.ndarray,
        conflicts: np.ndarray,
        verb: str,
        earlier: str,
    ) -> None:
        row, column = (int(axis[0]) for axis in np.nonzero(conflicts))
        byte, thread = int(rows[row]) * width + column, int(threads[row])
        if earlier == "written":
            before = (
                f"written by {self.describe(int(self.writer[byte]))} ({self.sites[self.writer_site[byte]]})"
            )
        else:
            reader = int(self.reader[byte])
            before = "read by other threads" if reader == _SEVERAL else f"read by {self.describe(reader)}"
        raise ExecutionError(
            f"{self.describe(thread)} {verb} shared byte {self._byte(byte)}, {before} with no barrier in "
            f"between"
        )

    def _byte(self, index: int) -> str:
        return f"{index % self.stride} of block {index // self.stride}"

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
            self.reader.fill(_NOBODY)
            self.touched = False
            return
        for array in (self.writer, self.reader):
            array.reshape(blocks.size, -1)[blocks] = _NOBODY


def _reader_per_row(rows: np.ndarray, threads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ``rows`` and, for each, its one reading thread or ``_SEVERAL`` (many threads reading one
    value, as after a reduction, read the same row)."""
    reader = threads.astype(np.int32)
    if rows.size < 2 or (rows[1:] > rows[:-1]).all():  # one row per thread, in order: the usual case
        return rows, reader
    order = np.argsort(rows, kind="stable")
    rows, reader = rows[order], reader[order]
    starts = np.flatnonzero(np.concatenate(([True], rows[1:] != rows[:-1])))
    first = reader[starts]
    differs = reader != np.repeat(first, np.diff(np.append(starts, rows.size)))
    several = np.logical_or.reduceat(differs, starts)
    return rows[starts], np.where(several, np.int32(_SEVERAL), first)
