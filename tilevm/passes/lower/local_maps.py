"""Static maps between the slots of two register layouts in the same thread: for each local element of a
target layout, the source layout's local index that holds the same element in every thread.

A register tile is one register per thread (``tilevm.passes.lower.lowering``), so an instruction whose
operand holds, in each thread, the elements its result needs in that thread moves no data across threads: it
is a ``gather`` of the operand's register by static indices, provided the same indices serve every thread.
Broadcast operands, permutes and some layout conversions are such instructions.

>>> from tilevm.layout import local, spatial
>>> broadcast_map(spatial(4, 1).local(2, 3), (8, 1))  # a column: one element a row, three times
(0, 0, 0, 1, 1, 1)
>>> permute_map(spatial(4).local(2, 3), (1, 0))  # the same slots: nothing moves
(0, 1, 2, 3, 4, 5)
>>> conversion_map(spatial(4).local(2, 3), spatial(4).local(2, 3, order=(1, 0)))
(0, 3, 1, 4, 2, 5)
>>> conversion_map(spatial(4).local(2), local(2).spatial(4)) is None  # other threads hold them
True
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from tilevm.layout import RegisterLayout, broadcast_layout

__all__ = ["broadcast_map", "conversion_map", "is_identity", "permute_map", "same_thread_map"]


def same_thread_map(source: RegisterLayout, wanted: np.ndarray) -> tuple[int, ...] | None:
    """For ``wanted`` (``[threads, n, source.rank]``: the coordinates, in the source tile, that each thread
    wants in its ``n`` slots), the source local index holding each wanted element in the same thread, when
    that index is the same in every thread; None otherwise."""
    table = source.table()
    if wanted.shape[0] != table.shape[0]:
        return None
    strides = np.array([int(np.prod(source.shape[dim + 1 :])) for dim in range(source.rank)], dtype=np.int64)
    size = int(np.prod(source.shape))
    threads = np.arange(table.shape[0], dtype=np.int64)[:, None] * size
    held = (table @ strides + threads).reshape(-1)  # unique per (thread, element)
    order = np.argsort(held, kind="stable")
    keys = (wanted.astype(np.int64) @ strides + threads).reshape(-1)
    positions = np.minimum(np.searchsorted(held, keys, sorter=order), held.size - 1)
    found = order[positions]
    if not np.array_equal(held[found], keys):
        return None
    local_indices = (found % source.local_size).reshape(wanted.shape[:2])
    if not (local_indices == local_indices[0]).all():
        return None
    return tuple(int(index) for index in local_indices[0])


@lru_cache(maxsize=1024)
def broadcast_map(result: RegisterLayout, operand_shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The operand slot each result slot reads, for an elementwise operand of ``operand_shape`` in its
    broadcast layout (``tilevm.layout.broadcast_layout``), which keeps every element a thread reads in it
    (None would mean the layout rule failed)."""
    operand = broadcast_layout(result, operand_shape)
    extra = result.rank - len(operand_shape)
    wanted = result.table()[:, :, extra:].copy()
    for dim, extent in enumerate(operand_shape):
        if extent == 1:
            wanted[:, :, dim] = 0
    return same_thread_map(operand, wanted)


@lru_cache(maxsize=1024)
def permute_map(source: RegisterLayout, dims: tuple[int, ...]) -> tuple[int, ...] | None:
    """The source slot of each slot of ``source.permute(dims)`` (result dim ``i`` is source dim ``dims[i]``);
    the layout rule keeps every element in its thread, so None would mean it failed."""
    result = source.permute(dims)
    wanted = result.table()[:, :, np.argsort(dims)]
    return same_thread_map(source, wanted)


@lru_cache(maxsize=1024)
def conversion_map(source: RegisterLayout, target: RegisterLayout) -> tuple[int, ...] | None:
    """The source slot of each target slot when every thread already holds its target elements."""
    return same_thread_map(source, target.table())


def is_identity(indices: Sequence[int], length: int) -> bool:
    """Whether gathering ``indices`` from a register of ``length`` elements gives the register itself."""
    return len(indices) == length and all(index == position for position, index in enumerate(indices))
