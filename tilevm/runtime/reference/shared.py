"""Shared tiles and the asynchronous copies (cp.async) into them, modelled strictly.

**Bytes.** A shared tile holds bytes, as on the GPU: its allocation is a ``Pointer`` into a byte buffer
(bit-exact reads and writes, as for global memory), and element ``c`` lies where its placement says
(``tilevm.ir.shared_tiles``): ``layout.shifted_by(base).offset(c)`` elements from the allocation's first byte.
A slice is the same pointer with the slice's layout and base, so writes through either are seen by both. A
program whose shared memory is planned has one buffer of ``shared_bytes`` per block, and each allocation
points to its planned offset in it; otherwise each allocation has a buffer of its own. Both go through the
same placement, so every run checks the layouts and bases of slices that lowering will use, and a plan that
overlaps two live tiles corrupts one of them, as it would on the GPU, instead of going unnoticed.

**Copies.** Beside the bytes, each allocation keeps a count per element of the copies still in flight
into it. ``copy_async`` belongs to the open group; ``copy_async_commit`` closes the group;
``copy_async_wait(n)`` completes every committed group but the newest ``n``: only then do their copies read
global memory and write shared memory. Reading or writing an element with a copy in flight raises
``ExecutionError`` (on the GPU that is a race that reads stale data), and so does a block that ends with a
copy never committed or never waited for.

**Races.** Each buffer (the planned one, or an allocation's own) also keeps, per byte, the last access since
the block's last ``sync`` (``races``): loads, stores and copies pass their access to ``read`` and
``write``, which raise on a race first; the poison of fresh and freed tiles is no access.

>>> from tilevm.dtypes import float16
>>> from tilevm.layout import SharedLayout
>>> pointer, unsynced = SharedMemory.for_block(None).allocate(None, 8, float16, "buffer")
>>> tile = SharedTile.allocate(pointer, SharedLayout.row_major(4), unsynced)
>>> copies = AsyncCopies()
>>> copies.start(tile, lambda: tile.write(np.full(4, 1.5)))
>>> tile.check_ready("read")
Traceback (most recent call last):
    ...
tilevm.runtime.reference.errors.ExecutionError: read of shared tile buffer before copy_async_wait
>>> copies.commit(); copies.wait(0); tile.read().tolist(), tile.pointer.storage.tolist()[:2]
([1.5, 1.5, 1.5, 1.5], [0, 62])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tilevm.dtypes import DType
from tilevm.layout import SharedLayout
from tilevm.runtime.reference.carrier import carrier_to_codes, codes_to_carrier
from tilevm.runtime.reference.errors import ExecutionError
from tilevm.runtime.reference.global_memory import Pointer, read_codes, write_codes
from tilevm.runtime.reference.races import Access, UnsyncedBytes

__all__ = ["AsyncCopies", "AsyncDots", "InFlightDot", "SharedMemory", "SharedTile"]


@dataclass(eq=False)
class SharedMemory:
    """The shared memory of one block: its planned buffer (None when the program has no plan), and the
    unsynced bytes of every buffer that ``sync`` clears (see ``races``)."""

    planned: np.ndarray | None
    buffers: list[UnsyncedBytes]

    @staticmethod
    def for_block(shared_bytes: int | None) -> SharedMemory:
        """A block's memory: ``shared_bytes`` of zeros (fresh tiles are poisoned when allocated), or none."""
        if shared_bytes is None:
            return SharedMemory(None, [])
        return SharedMemory(np.zeros(shared_bytes, dtype=np.uint8), [UnsyncedBytes.of_size(shared_bytes)])

    def allocate(
        self, offset: int | None, footprint_bytes: int, dtype: DType, name: str
    ) -> tuple[Pointer, UnsyncedBytes]:
        """The bytes of an allocation, at ``offset`` in the planned buffer or in a buffer of its own."""
        if self.planned is None:
            self.buffers.append(UnsyncedBytes.of_size(footprint_bytes))
            return Pointer(np.zeros(footprint_bytes, dtype=np.uint8), 0, dtype, name), self.buffers[-1]
        if offset is None:
            raise ExecutionError(
                f"shared tile {name} has no planned offset, but the program's shared memory is planned"
            )
        if not 0 <= offset <= self.planned.size - footprint_bytes:
            raise ExecutionError(
                f"shared tile {name} at bytes [{offset}, {offset + footprint_bytes}) is outside the block's "
                f"{self.planned.size} bytes of shared memory"
            )
        return Pointer(self.planned, offset, dtype, name), self.buffers[0]

    def sync(self) -> None:
        """A barrier: every access so far is seen by every thread of the block."""
        for buffer in self.buffers:
            buffer.clear()


@dataclass(frozen=True, eq=False)
class SharedTile:
    """A shared tile: its allocation's bytes, where its elements are, its in-flight copy counts, and the
    unsynced bytes of its buffer."""

    pointer: Pointer
    layout: SharedLayout
    base: int
    pending: np.ndarray
    name: str
    unsynced: UnsyncedBytes

    @staticmethod
    def allocate(pointer: Pointer, layout: SharedLayout, unsynced: UnsyncedBytes) -> SharedTile:
        """A whole allocation, placed by ``layout`` from its first byte. ``pending`` counts, per element,
        the copies into it (``[..., 0]``) and the asynchronous dots reading it (``[..., 1]``) in flight."""
        pending = np.zeros((*layout.shape, 2), dtype=np.int64)
        return SharedTile(pointer, layout, 0, pending, pointer.name, unsynced)

    def window(
        self, index: tuple[int | slice, ...], layout: SharedLayout, base: int, name: str
    ) -> SharedTile:
        """The slice at numpy ``index`` of this tile, placed by ``layout`` at ``base`` (see the module)."""
        return SharedTile(self.pointer, layout, base, self.pending[index], name, self.unsynced)

    @property
    def description(self) -> str:
        """The tile's name in messages: its allocation's, and its own when it is a slice."""
        allocation = self.pointer.name
        return allocation if self.name == allocation else f"{allocation} (slice {self.name})"

    @property
    def shape(self) -> tuple[int, ...]:
        return self.layout.shape

    def read(self, access: Access | None = None) -> np.ndarray:
        """The tile's values, as a carrier array of its shape; ``access`` is checked for races first."""
        if access is not None:
            self.unsynced.access(self.bytes(), access)
        codes = read_codes(self.pointer, self._addresses())
        return codes_to_carrier(codes, self.pointer.dtype).reshape(self.shape)

    def write(self, values: np.ndarray, access: Access | None = None) -> None:
        """Store carrier ``values`` (broadcast to the tile's shape) into the tile's elements; ``access`` is
        checked for races first (None: poison, which no thread writes)."""
        if access is not None:
            self.unsynced.access(self.bytes(), access)
        flat = np.broadcast_to(values, self.shape).ravel()
        codes = carrier_to_codes(flat, self.pointer.dtype)
        write_codes(self.pointer, self._addresses(), codes)

    def bytes(self) -> np.ndarray:
        """The indices, in the buffer, of the bytes holding some bit of the tile's elements (may repeat)."""
        nbits = self.pointer.dtype.nbits
        first = 8 * self.pointer.byte_offset + self._addresses().astype(np.int64) * nbits
        # From each element's first byte to its last (an index may repeat: the caller only reads and marks).
        spans = (first // 8)[:, None] + np.arange(-(-nbits // 8) + 1)
        return np.minimum(spans, ((first + nbits - 1) // 8)[:, None]).ravel()

    def _addresses(self) -> np.ndarray:
        return self.layout.shifted_by(self.base).table().ravel()

    def check_ready(self, access: str) -> None:
        """Raise when a copy into any element of this tile has not been completed by a wait, or (for a
        ``write``) a dot reading one (``dot_shared`` with ``wait`` false) by a ``dot_wait``."""
        if self.pending[..., 0].any():
            raise ExecutionError(f"{access} of shared tile {self.name} before copy_async_wait")
        if access == "write" and self.pending[..., 1].any():
            raise ExecutionError(
                f"write of shared tile {self.name} while an asynchronous dot reads it: dot_wait first"
            )


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
        destination.pending[..., 0] += 1
        self.open_group.append(_Copy(destination, apply))

    def commit(self) -> None:
        self.committed.append(self.open_group)
        self.open_group = []

    def wait(self, pending_groups: int) -> None:
        while len(self.committed) > pending_groups:
            for copy in self.committed.pop(0):
                copy.destination.pending[..., 0] -= 1
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


@dataclass(eq=False)
class InFlightDot:
    """The result of an asynchronous dot from shared memory, which no instruction but another such dot may
    read until a ``dot_wait`` completes it (``AsyncDots``)."""

    values: np.ndarray
    operands: tuple[SharedTile, ...]
    description: str


@dataclass(eq=False)
class AsyncDots:
    """The asynchronous dots of one block in flight, oldest first."""

    in_flight: list[InFlightDot] = field(default_factory=list)

    def start(self, values: np.ndarray, operands: tuple[SharedTile, ...], description: str) -> InFlightDot:
        """A dot whose result is ``values``, reading ``operands`` until it completes."""
        for operand in operands:
            operand.pending[..., 1] += 1
        dot = InFlightDot(values, operands, description)
        self.in_flight.append(dot)
        return dot

    def wait(self, pending: int) -> list[InFlightDot]:
        """Complete all but the ``pending`` latest dots; returns the completed ones."""
        done = self.in_flight[: max(0, len(self.in_flight) - pending)]
        self.in_flight = self.in_flight[len(done) :]
        for dot in done:
            for operand in dot.operands:
                operand.pending[..., 1] -= 1
        return done

    def check_finished(self) -> None:
        """Raise when the block ends with a dot that no ``dot_wait`` completed."""
        if self.in_flight:
            raise ExecutionError(f"{self.in_flight[0].description} was never completed by a dot_wait")
