"""``cp.async`` as the PTX ISA orders it: each thread has its own groups of copies.

A thread's copies join its open group; ``cp_async_commit_group`` closes it (the thread's group count goes up
by one); ``cp_async_wait_group N`` completes every group of the thread but its newest N. The copy reads
global memory when it is issued (its bounds are checked there) and its bytes land in shared memory when the
thread waits for its group: until then they are *pending* (``SharedMemory``), and reading or writing them is
an error. At issue the destination counts as written by the thread, for the race checks; landing writes it
again, so another thread must pass a barrier after the wait before it reads the data.

A batch that ends with copies never waited for is an error at the ``cp_async`` that issued them.

>>> from tilevm.runtime.cpu.shared_memory import SharedMemory
>>> memory = SharedMemory.of(1, 16, None, str)
>>> copies = AsyncCopies(2)
>>> data = np.array([[1, 2, 3, 4], [5, 6, 7, 8]], dtype=np.uint8)
>>> copies.start(np.array([0, 1]), np.array([0, 1]), data, memory, "cp_async", None)
>>> copies.commit(np.array([0, 1])); copies.wait(np.array([0]), 0, memory)
>>> memory.data[:4].tolist(), int(memory.pending[4])
([1, 2, 3, 4], 1)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tilevm.errors import SourceLocation
from tilevm.runtime.cpu.shared_memory import SharedMemory
from tilevm.runtime.reference.errors import ExecutionError

__all__ = ["AsyncCopies"]


@dataclass(eq=False)
class _Copies:
    """The copies of one ``cp_async`` execution still in flight: one per thread, to a row of shared memory
    (``SharedMemory``'s rows of the copy's size)."""

    threads: np.ndarray
    groups: np.ndarray
    rows: np.ndarray
    data: np.ndarray
    site: str
    location: SourceLocation | None


@dataclass(eq=False)
class AsyncCopies:
    """Per thread of the batch, the number of groups it committed, and the copies in flight."""

    committed: np.ndarray
    in_flight: list[_Copies] = field(default_factory=list)

    def __init__(self, size: int) -> None:
        self.committed = np.zeros(size, dtype=np.int64)
        self.in_flight = []

    def start(
        self,
        threads: np.ndarray,
        rows: np.ndarray,
        data: np.ndarray,
        memory: SharedMemory,
        site: str,
        location: SourceLocation | None,
    ) -> None:
        """Copies by ``threads`` of the rows of ``data`` to the shared memory ``rows``, in flight."""
        width = data.shape[1]
        memory.check_pending(rows, width, threads, "writes")
        memory.check_write(rows, width, threads)
        memory.mark_written(rows, width, threads, site)
        memory.set_pending(rows, width, True)
        self.in_flight.append(_Copies(threads, self.committed[threads], rows, data, site, location))

    def commit(self, threads: np.ndarray) -> None:
        self.committed[threads] += 1

    def wait(self, threads: np.ndarray, pending_groups: int, memory: SharedMemory) -> None:
        """``threads`` complete all their groups but the newest ``pending_groups``."""
        if not self.in_flight:
            return
        threshold = np.full(self.committed.size, -1, dtype=np.int64)
        threshold[threads] = self.committed[threads] - pending_groups
        remaining = []
        for copies in self.in_flight:
            lands = copies.groups < threshold[copies.threads]
            if lands.any():
                rows, width = copies.rows[lands], copies.data.shape[1]
                memory.data.reshape(-1, width)[rows] = copies.data[lands]
                memory.set_pending(rows, width, False)
                memory.mark_written(rows, width, copies.threads[lands], copies.site)
                copies = _Copies(
                    copies.threads[~lands],
                    copies.groups[~lands],
                    copies.rows[~lands],
                    copies.data[~lands],
                    copies.site,
                    copies.location,
                )
            if copies.threads.size:
                remaining.append(copies)
        self.in_flight = remaining

    def check_finished(self, describe: Callable[[int], str]) -> None:
        """Raise, at its ``cp_async``, when a copy was never waited for."""
        if self.in_flight:
            copies = self.in_flight[0]
            thread = int(copies.threads[0])
            never = (
                "waited for (cp_async_wait_group)"
                if copies.groups[0] < self.committed[thread]
                else "committed (cp_async_commit_group) nor waited for"
            )
            raise ExecutionError(f"a cp.async of {describe(thread)} was never {never}", copies.location)
