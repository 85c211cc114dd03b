"""Shared tiles and the asynchronous copies (cp.async) into them, modelled strictly.

**Bytes.** A shared tile holds bytes, as on the GPU: its allocation is a ``Pointer`` into a byte buffer
(bit-exact reads and writes, as for global memory), and element ``c`` lies where its placement says
(``tilevm.ir.memory``): ``layout.shifted_by(base).offset(c)`` elements from the allocation's first byte. A
slice is the same pointer with the slice's layout and base, so writes through either are seen by both. A
program whose shared memory is planned has one buffer of ``shared_bytes`` per block, and each allocation
points to its planned offset in it; otherwise each allocation has a buffer of its own. Both go through
the same placement, so every run checks the layouts and bases of slices that lowering will use, and a
plan that overlaps two live tiles corrupts one of them, as it would on the GPU, instead of going unnoticed.

**Copies.** Beside the bytes, each allocation keeps a count per element of the copies still in flight
into it. ``copy_async`` belongs to the open group; ``copy_async_commit`` closes the group;
``copy_async_wait(n)`` completes every committed group but the newest ``n``: only then do their copies read
global memory and write shared memory. Reading or writing an element with a copy in flight raises
``ExecutionError`` (on the GPU that is a race that reads stale data), and so does a block that ends with a
copy never committed or never waited for.

>>> from tilevm.dtypes import float16
>>> from tilevm.layout import SharedLayout
>>> tile = SharedTile.allocate(allocation(None, None, 8, float16, "buffer"), SharedLayout.row_major(4))
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

__all__ = ["AsyncCopies", "SharedTile", "allocation", "block_shared_memory"]


def block_shared_memory(shared_bytes: int | None) -> np.ndarray | None:
    """The planned shared memory of one block (zeros; fresh tiles are poisoned when allocated), or None."""
    return None if shared_bytes is None else np.zeros(shared_bytes, dtype=np.uint8)


def allocation(
    memory: np.ndarray | None, offset: int | None, footprint_bytes: int, dtype: DType, name: str
) -> Pointer:
    """The bytes of an allocation: at ``offset`` in the block's planned ``memory``, or a buffer of its own."""
    if memory is None:
        return Pointer(np.zeros(footprint_bytes, dtype=np.uint8), 0, dtype, name)
    if offset is None:
        raise ExecutionError(
            f"shared tile {name} has no planned offset, but the program's shared memory is planned"
        )
    if not 0 <= offset <= memory.size - footprint_bytes:
        raise ExecutionError(
            f"shared tile {name} at bytes [{offset}, {offset + footprint_bytes}) is outside the block's "
            f"{memory.size} bytes of shared memory"
        )
    return Pointer(memory, offset, dtype, name)


@dataclass(frozen=True, eq=False)
class SharedTile:
    """A shared tile: its allocation's bytes, where its elements are, and its in-flight copy counts."""

    pointer: Pointer
    layout: SharedLayout
    base: int
    pending: np.ndarray
    name: str

    @staticmethod
    def allocate(pointer: Pointer, layout: SharedLayout) -> SharedTile:
        """A whole allocation, placed by ``layout`` from its first byte."""
        return SharedTile(pointer, layout, 0, np.zeros(layout.shape, dtype=np.int64), pointer.name)

    def window(
        self, index: tuple[int | slice, ...], layout: SharedLayout, base: int, name: str
    ) -> SharedTile:
        """The slice at numpy ``index`` of this tile, placed by ``layout`` at ``base`` (see the module)."""
        return SharedTile(self.pointer, layout, base, self.pending[index], name)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.layout.shape

    def read(self) -> np.ndarray:
        """The tile's values, as a carrier array of its shape."""
        codes = read_codes(self.pointer, self._addresses())
        return codes_to_carrier(codes, self.pointer.dtype).reshape(self.shape)

    def write(self, values: np.ndarray) -> None:
        """Store carrier ``values`` (broadcast to the tile's shape) into the tile's elements."""
        flat = np.broadcast_to(values, self.shape).ravel()
        codes = carrier_to_codes(flat, self.pointer.dtype)
        write_codes(self.pointer, self._addresses(), codes)

    def _addresses(self) -> np.ndarray:
        return self.layout.shifted_by(self.base).table().ravel()

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
