"""Shared tiles and the asynchronous copies (cp.async) into them, modelled strictly.

A shared tile is a numpy carrier array; a slice is a numpy view of its allocation, so writes through either
are seen by both. Beside the data, each allocation keeps a count per element of the copies still in flight
into it. ``copy_async`` belongs to the open group; ``copy_async_commit`` closes the group;
``copy_async_wait(n)`` completes every committed group but the newest ``n``: only then do their copies read
global memory and write shared memory. Reading or writing an element with a copy in flight raises
``ExecutionError`` (on the GPU that is a race that reads stale data), and so does a block that ends with a
copy never committed or never waited for.

>>> tile = SharedTile.allocate(np.zeros(4), "buffer")
>>> copies = AsyncCopies()
>>> copies.start(tile, lambda: tile.data.fill(1.0))
>>> tile.check_ready("read")
Traceback (most recent call last):
    ...
tilevm.runtime.reference.errors.ExecutionError: read of shared tile buffer before copy_async_wait
>>> copies.commit(); copies.wait(0); tile.data.tolist()
[1.0, 1.0, 1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tilevm.runtime.reference.errors import ExecutionError

__all__ = ["AsyncCopies", "SharedTile"]


@dataclass(frozen=True, eq=False)
class SharedTile:
    """A shared tile: its data and its in-flight copy counts, views of one allocation."""

    data: np.ndarray
    pending: np.ndarray
    name: str

    @staticmethod
    def allocate(data: np.ndarray, name: str) -> SharedTile:
        return SharedTile(data, np.zeros(data.shape, dtype=np.int64), name)

    def slice(self, index: tuple[int | slice, ...], name: str) -> SharedTile:
        return SharedTile(self.data[index], self.pending[index], name)

    def check_ready(self, access: str) -> None:
        """Raise when a copy into any element of this tile has not been completed by a wait."""
        if self.pending.any():
            raise ExecutionError(f"{access} of shared tile {self.name} before copy_async_wait")


@dataclass(eq=False)
class _Copy:
    destination: SharedTile
    apply: Callable[[], None]


@dataclass(eq=False)
class AsyncCopies:
    """The copies of one block: the open group, and the committed groups not yet waited for (oldest first)."""

    open_group: list[_Copy] = field(default_factory=list)
    committed: list[list[_Copy]] = field(default_factory=list)

    def start(self, destination: SharedTile, apply: Callable[[], None]) -> None:
        """Start a copy into ``destination``; ``apply`` performs it when a wait completes it."""
        destination.check_ready("write")
        destination.pending[...] += 1
        self.open_group.append(_Copy(destination, apply))

    def commit(self) -> None:
        self.committed.append(self.open_group)
        self.open_group = []

    def wait(self, pending_groups: int) -> None:
        while len(self.committed) > pending_groups:
            for copy in self.committed.pop(0):
                copy.destination.pending[...] -= 1
                copy.apply()

    def check_finished(self) -> None:
        """Raise when the block ends with copies that were never committed, or never waited for."""
        in_flight = [copy for group in self.committed for copy in group]
        if self.open_group:
            name = self.open_group[0].destination.name
            raise ExecutionError(f"copy_async into shared tile {name} was never committed and waited for")
        if in_flight:
            name = in_flight[0].destination.name
            raise ExecutionError(f"copy_async into shared tile {name} was never waited for (copy_async_wait)")
