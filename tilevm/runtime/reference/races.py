r"""Races between the threads of a block on shared memory, found at byte granularity.

The executor runs each instruction on whole tiles, but on the GPU a tile is spread over the block's threads
and nothing orders the accesses of two threads except a ``sync`` (a barrier). So every buffer of shared
memory keeps, per byte, the last access since the block's last ``sync``, and an access that conflicts
with it raises ``ExecutionError`` at the instruction that makes it:

- a **read** of a byte written since the last sync (read after write: another thread may not have written
  it yet; this covers a ``copy_async`` completed by ``copy_async_wait``, which only waits for the calling
  thread's own copies);
- a **write** of a byte written since the last sync (write after write: which thread's value survives
  depends on timing, and sub-byte elements of two threads in one byte are written read-modify-write);
- a **write** of a byte read since the last sync (write after read: another thread may still be reading).

A ``sync`` forgets every access. The check is conservative: a thread may read what it wrote itself
without a barrier, but which thread holds which element depends on the register layouts, which the
executor does not know, so any conflicting access counts. Bytes, not elements, are compared, as the memory
system does; two sub-byte elements that share a byte conflict even when they are distinct (for a read of
one after a write of the other this is stricter than the GPU needs). Fresh and freed tiles' poison is not
an access. The usual kernels pass: ``store_shared; sync; load_shared`` and ``copy_async; commit; wait;
sync; load_shared``, with a ``sync`` before shared bytes are written again after being read.

>>> from tilevm.errors import SourceLocation
>>> tracker = UnsyncedBytes.of_size(8)
>>> tracker.access(np.arange(4), Access("write", "store_shared into a", SourceLocation("k.py", 3)))
>>> try:
...     tracker.access(np.arange(2, 6), Access("read", "load_shared of b"))
... except ExecutionError as error:
...     print(*error.message.split(": "), sep="\n")
load_shared of b after store_shared into a at k.py:3:0 with no sync in between
another thread may not have written those bytes yet
>>> tracker.clear(); tracker.access(np.arange(2, 6), Access("read", "load_shared of b"))
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tilevm.errors import SourceLocation
from tilevm.runtime.reference.errors import ExecutionError

__all__ = ["Access", "UnsyncedBytes"]

_REASONS = {
    ("read", "write"): "another thread may not have written those bytes yet",
    ("write", "write"): "writes of different threads to the same bytes race",
    ("write", "read"): "another thread may still be reading those bytes",
}


@dataclass(frozen=True)
class Access:
    """A read or a write of shared memory, and what made it (an instruction, a tile, a line) for messages."""

    kind: str  # "read" or "write"
    description: str
    location: SourceLocation | None = None

    def __str__(self) -> str:
        return self.description if self.location is None else f"{self.description} at {self.location}"


@dataclass(eq=False)
class UnsyncedBytes:
    """Per byte of one buffer, the last access since the block's last sync: ``last[byte]`` indexes
    ``accesses`` from 1, and 0 is no access."""

    last: np.ndarray
    accesses: list[Access] = field(default_factory=list)

    @staticmethod
    def of_size(size: int) -> UnsyncedBytes:
        return UnsyncedBytes(np.zeros(size, dtype=np.int64))

    def access(self, byte_indices: np.ndarray, access: Access, record: bool = True) -> None:
        """Raise when ``access`` of these bytes conflicts with one since the last sync, else record it."""
        previous = self.last[byte_indices]
        for index in np.unique(previous[previous > 0]):
            earlier = self.accesses[index - 1]
            reason = _REASONS.get((access.kind, earlier.kind))
            if reason is not None:
                raise ExecutionError(
                    f"{access.description} after {earlier} with no sync in between: {reason}"
                )
        if record:
            if not self.accesses or self.accesses[-1] != access:  # a loop's repeated access is kept once
                self.accesses.append(access)
            self.last[byte_indices] = len(self.accesses)

    def clear(self) -> None:
        """A sync: every access so far is seen by every thread."""
        self.last[...] = 0
        self.accesses.clear()
