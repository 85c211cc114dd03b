"""Loads, stores, ``cp.async`` and its groups, the block barrier, the fence, and ``trap``.

Each active thread accesses ``width`` bytes at its own address, which must lie inside the memory (a
tensor's storage, or the block's ``shared_bytes``) and be a multiple of ``width`` (PTX's alignment rule:
a misaligned address is an error, as on the GPU). A global address is counted from the start of the
tensor's storage, which torch aligns to 64 bytes. Where the predicate is false, or the thread is inactive,
nothing is touched and a load gives zero. Shared accesses go through ``SharedMemory``'s race checks.

A fence does nothing here: the interpreter runs each instruction for every thread of a batch before the
next, and batches one after another, so every access is already seen by every later one.

>>> sorted(cls.__name__ for cls in MEMORY)
['Barrier', 'CopyAsyncCommitGroup', 'CopyAsyncGroup', 'CopyAsyncWaitGroup', 'Fence', 'Load', 'Store', 'Trap']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from tilevm.dtypes import uint8
from tilevm.ir.thread import (
    Barrier,
    CopyAsyncCommitGroup,
    CopyAsyncGroup,
    CopyAsyncWaitGroup,
    Fence,
    Load,
    Store,
    Trap,
)
from tilevm.ir.types import AddressSpace
from tilevm.runtime.cpu.control import Step
from tilevm.runtime.cpu.expressions import length
from tilevm.runtime.cpu.registers import bitcast, holder
from tilevm.runtime.cpu.state import Batch
from tilevm.runtime.reference.errors import ExecutionError
from tilevm.runtime.reference.global_memory import Pointer

if TYPE_CHECKING:
    from tilevm.runtime.cpu.compiler import Compiler

__all__ = ["MEMORY", "global_rows", "shared_rows"]


def global_rows(
    batch: Batch, pointer: Pointer, offsets: np.ndarray, threads: np.ndarray, width: int, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """The storage viewed as rows of ``width`` bytes, and the row that each of ``threads`` accesses at its
    offset from ``pointer``, after checking alignment and bounds."""
    first = _checked_first(batch, pointer, offsets, threads, width, width, what)
    size = pointer.storage.size
    return pointer.storage[: size - size % width].reshape(-1, width), first // width


def _checked_first(
    batch: Batch,
    pointer: Pointer,
    offsets: np.ndarray,
    threads: np.ndarray,
    width: int,
    extents: int | np.ndarray,
    what: str,
) -> np.ndarray:
    """The storage byte where each of ``threads``' access of ``width`` bytes starts, after checking that
    it is a multiple of ``width`` and that the ``extents`` bytes read from there lie inside the storage."""
    first = pointer.byte_offset + (offsets if offsets.ndim == 0 else offsets[threads])
    first = np.broadcast_to(first, threads.shape)
    misaligned = first % width != 0
    if misaligned.any():
        index = int(np.flatnonzero(misaligned)[0])
        raise ExecutionError(
            f"{what} of {width} bytes by {batch.describe_thread(int(threads[index]))} at storage byte "
            f"{int(first[index])} of {pointer.name}, which is not a multiple of {width} (misaligned)"
        )
    size = pointer.storage.size
    outside = (first < 0) | (first > size - extents)
    if outside.any():
        index = int(np.flatnonzero(outside)[0])
        raise ExecutionError(
            f"{what} of {width} bytes by {batch.describe_thread(int(threads[index]))} at byte "
            f"{int(first[index]) - pointer.byte_offset} from {pointer.name} falls outside the tensor's "
            f"storage ({size} bytes, the tensor from byte {pointer.byte_offset})"
        )
    return first


def shared_rows(batch: Batch, offsets: np.ndarray, threads: np.ndarray, width: int, what: str) -> np.ndarray:
    """The shared-memory rows (``SharedMemory``) of ``threads``' accesses at ``offsets``, checked."""
    mine = np.broadcast_to(offsets if offsets.ndim == 0 else offsets[threads], threads.shape)
    return batch.shared.rows(mine, batch.block_of_thread[threads], width, what)


def _site(instruction: object) -> str:
    return f"{instruction.opname} at {instruction.loc}" if instruction.loc else instruction.opname


def _load(compiler: Compiler, instruction: Load) -> Step:
    slot, pointer = compiler.slot(instruction.output), compiler.expression(instruction.pointer)
    predicate = compiler.optional(instruction.predicate)
    width, pointer_type = instruction.width, instruction.pointer.type
    dtype, count = pointer_type.dtype, length(instruction.output.type)
    shape = () if count == 1 else (count,)
    shared = pointer_type.space is AddressSpace.SHARED

    def run(batch: Batch) -> None:
        address = pointer(batch)
        active = batch.active(None if predicate is None else predicate(batch))
        threads = batch.threads(active)
        if shared:
            raw = batch.shared.read(shared_rows(batch, address, threads, width, "load"), width, threads)
        elif active is None and address[1].ndim == 0:
            # Every thread reads the same bytes: read them once and keep the value uniform.
            storage, rows = global_rows(batch, *address, threads[:1], width, "load")
            raw = storage[rows[0]]
        else:
            storage, rows = global_rows(batch, *address, threads, width, "load")
            raw = storage[rows]
        # one byte is a scalar uint8 to bitcast, not a vector of one
        value = bitcast(raw if width > 1 else raw[..., 0], uint8, width, dtype, count)
        if active is not None:
            full = np.zeros((batch.size, *shape), dtype=holder(dtype))
            full[threads] = value
            value = full
        batch.registers[slot] = value

    return run


def _store(compiler: Compiler, instruction: Store) -> Step:
    pointer, value = compiler.expression(instruction.pointer), compiler.expression(instruction.value)
    predicate = compiler.optional(instruction.predicate)
    pointer_type = instruction.pointer.type
    dtype, count = pointer_type.dtype, length(instruction.value.type)
    width = dtype.nbits * count // 8
    shared = pointer_type.space is AddressSpace.SHARED
    site = _site(instruction)

    def run(batch: Batch) -> None:
        address = pointer(batch)
        active = batch.active(None if predicate is None else predicate(batch))
        threads = batch.threads(active)
        if not threads.size:
            return
        raw = bitcast(value(batch), dtype, count, uint8, width)
        raw = raw if width > 1 else raw[..., None]  # a scalar uint8 for one byte: its one column
        raw = np.broadcast_to(raw, (batch.size, width))[threads]
        if shared:
            batch.shared.write(shared_rows(batch, address, threads, width, "store"), raw, threads, site)
        else:
            storage, rows = global_rows(batch, *address, threads, width, "store")
            storage[rows] = raw

    return run


def _copy_async(compiler: Compiler, instruction: CopyAsyncGroup) -> Step:
    destination, source = (
        compiler.expression(instruction.destination),
        compiler.expression(instruction.source),
    )
    source_size, size = compiler.expression(instruction.source_size), instruction.size
    site, location = _site(instruction), instruction.loc

    def run(batch: Batch) -> None:
        threads = batch.threads(batch.mask)
        if not threads.size:
            return
        sizes = np.broadcast_to(source_size(batch), (batch.size,))[threads].astype(np.int64)
        wrong = (sizes < 0) | (sizes > size)
        if wrong.any():
            index = int(np.flatnonzero(wrong)[0])
            raise ExecutionError(
                f"cp.async of {size} bytes by {batch.describe_thread(int(threads[index]))} with a source "
                f"size of {int(sizes[index])}: it is 0 to {size}"
            )
        rows = shared_rows(batch, destination(batch), threads, size, "cp.async into shared memory")
        data = np.zeros((threads.size, size), dtype=np.uint8)
        whole = sizes == size
        if whole.any():
            storage, sources = global_rows(
                batch, *source(batch), threads[whole], size, "cp.async from global memory"
            )
            data[whole] = storage[sources]
        partial = ~whole & (sizes > 0)  # a source size of 0 reads nothing: its address may be anything
        if partial.any():
            data[partial] = _read_partial(batch, *source(batch), threads[partial], sizes[partial], size)
        batch.copies.start(threads, rows, data, batch.shared, site, location)

    return run


def _read_partial(
    batch: Batch, pointer: Pointer, offsets: np.ndarray, threads: np.ndarray, sizes: np.ndarray, size: int
) -> np.ndarray:
    """The first ``sizes`` bytes of each thread's source, then zeros: only the bytes read are checked."""
    first = _checked_first(batch, pointer, offsets, threads, size, sizes, "cp.async from global memory")
    spans = first[:, None] + np.arange(size)
    valid = np.arange(size) < sizes[:, None]
    return np.where(valid, pointer.storage[np.where(valid, spans, spans[:, :1])], 0).astype(np.uint8)


def _commit(compiler: Compiler, instruction: CopyAsyncCommitGroup) -> Step:
    return lambda batch: batch.copies.commit(batch.threads(batch.mask))


def _wait(compiler: Compiler, instruction: CopyAsyncWaitGroup) -> Step:
    pending = instruction.pending
    return lambda batch: batch.copies.wait(batch.threads(batch.mask), pending, batch.shared)


def _barrier(compiler: Compiler, instruction: Barrier) -> Step:
    def run(batch: Batch) -> None:
        blocks = len(batch.blocks)
        if batch.mask is None:
            batch.shared.barrier(np.ones(blocks, dtype=bool))
            return
        arrived = batch.mask.reshape(blocks, batch.num_threads).sum(axis=1)
        partial = (arrived > 0) & (arrived < batch.num_threads)
        if partial.any():
            block = int(np.flatnonzero(partial)[0])
            raise ExecutionError(
                f"barrier reached by {int(arrived[block])} of the {batch.num_threads} threads of block "
                f"{batch.blocks[block]}: every thread of the block must reach the same barrier"
            )
        batch.shared.barrier(arrived == batch.num_threads)

    return run


def _trap(compiler: Compiler, instruction: Trap) -> Step:
    condition = compiler.expression(instruction.condition)

    def run(batch: Batch) -> None:
        trapped = np.broadcast_to(condition(batch), (batch.size,))
        if batch.mask is not None:
            trapped = trapped & batch.mask
        if trapped.any():
            raise ExecutionError(instruction.message)

    return run


MEMORY: dict[type, Callable[[Compiler, object], Step]] = {
    Trap: _trap,
    Load: _load,
    Store: _store,
    CopyAsyncGroup: _copy_async,
    CopyAsyncCommitGroup: _commit,
    CopyAsyncWaitGroup: _wait,
    Barrier: _barrier,
    Fence: lambda compiler, instruction: lambda batch: None,
}
