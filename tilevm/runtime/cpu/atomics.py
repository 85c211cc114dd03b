"""``atomic``: read-modify-write of one value, indivisibly, in global or shared memory (PTX ``atom``).

The active threads of the batch act in thread order (blocks in grid order, threads in index order within
each), and each sees the result of the ones before it on the same address: ``output`` is the value it
replaced. The new value is ``old op value`` by ``tilevm.ir.semantics`` (``exchange`` stores ``value``).
Where the predicate is false nothing happens and ``output`` is zero. Addresses are checked as loads' are
(bounds, alignment to the value's size); atomics on shared memory respect pending cp.async bytes but are
left out of the race checks, since atomics of different threads do not race with each other.

A global ``and`` or ``or`` may span the end of a tensor's storage when it leaves the bytes past the end as
they are (an ``and`` with all their bits set, an ``or`` with none): the lowering updates the sub-byte
elements of a partly written byte that way, through the aligned 32-bit word holding it, which on the GPU
always lies inside the allocation (allocations are whole multiples of 256 bytes). The bytes past the end
read as zero.

>>> sorted(cls.__name__ for cls in ATOMICS)
['Atomic']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from tilevm.dtypes import DType, uint8
from tilevm.ir.semantics import binary
from tilevm.ir.thread import Atomic
from tilevm.ir.types import AddressSpace
from tilevm.runtime.cpu.control import Step
from tilevm.runtime.cpu.memory import global_rows, shared_rows
from tilevm.runtime.cpu.registers import bitcast, from_carrier, holder, to_carrier
from tilevm.runtime.cpu.state import Batch
from tilevm.runtime.reference.errors import ExecutionError

if TYPE_CHECKING:
    from tilevm.runtime.cpu.compiler import Compiler

__all__ = ["ATOMICS"]


def _combine(op: str, old: np.ndarray, value: np.ndarray, dtype: DType) -> np.ndarray:
    if op == "exchange":
        return value
    return from_carrier(binary(op, to_carrier(old, dtype), to_carrier(value, dtype), dtype), dtype)


def _apply_in_order(
    memory: np.ndarray, rows: np.ndarray, values: np.ndarray, op: str, dtype: DType
) -> np.ndarray:
    """Apply the atomics on the ``rows`` of ``memory`` (rows of the value's bytes) in order; returns the old
    value of each. Each round applies the first remaining atomic of every row at once, so a round touches
    each row once."""
    width = memory.shape[1]
    olds = np.zeros(values.shape, dtype=holder(dtype))
    remaining = np.arange(rows.size)
    while remaining.size:
        _, first = np.unique(rows[remaining], return_index=True)
        now = remaining[first]
        old = bitcast(memory[rows[now]], uint8, width, dtype, 1)
        memory[rows[now]] = bitcast(_combine(op, old, values[now], dtype), dtype, 1, uint8, width)
        olds[now] = old
        done = np.zeros(rows.size, dtype=bool)
        done[now] = True
        remaining = remaining[~done[remaining]]
    return olds


def _atomic(compiler: Compiler, instruction: Atomic) -> Step:
    slot, op = compiler.slot(instruction.output), instruction.op
    pointer, value = compiler.expression(instruction.pointer), compiler.expression(instruction.value)
    predicate = compiler.optional(instruction.predicate)
    dtype = instruction.value.type.dtype
    width = dtype.nbits // 8
    shared = instruction.pointer.type.space is AddressSpace.SHARED

    def run(batch: Batch) -> None:
        address = pointer(batch)
        active = batch.active(None if predicate is None else predicate(batch))
        threads = batch.threads(active)
        if shared:
            rows = shared_rows(batch, address, threads, width, "atomic")
            batch.shared.check_pending(rows, width, threads, "updates")
            memory = batch.shared.data.reshape(-1, width)
        values = np.broadcast_to(value(batch), (batch.size,))[threads]
        if not shared and op in _BITWISE_IDENTITY and _past_the_end(address, threads, width):
            olds = _apply_past_the_end(batch, address, threads, values, op, dtype, width)
        else:
            if not shared:
                memory, rows = global_rows(batch, *address, threads, width, "atomic")
            olds = _apply_in_order(memory, rows, values, op, dtype)
        result = np.zeros(batch.size, dtype=holder(dtype))
        result[threads] = olds
        batch.registers[slot] = result

    return run


#: the byte a bitwise atomic leaves unchanged
_BITWISE_IDENTITY = {"and": 0xFF, "or": 0x00}


def _past_the_end(address: tuple, threads: np.ndarray, width: int) -> bool:
    pointer, offsets = address
    first = pointer.byte_offset + (offsets if offsets.ndim == 0 else offsets[threads])
    return bool(np.any(first + width > pointer.storage.size))


def _apply_past_the_end(
    batch: Batch, address: tuple, threads: np.ndarray, values: np.ndarray, op: str, dtype: DType, width: int
) -> np.ndarray:
    """``and``/``or`` atomics of which some span the storage's end: applied to the storage padded with
    zeros, after checking that they leave every padding byte as it is."""
    pointer, offsets = address
    size = pointer.storage.size
    first = pointer.byte_offset + (offsets if offsets.ndim == 0 else offsets[threads])
    first = np.broadcast_to(first, threads.shape)
    value_bytes = bitcast(values, dtype, 1, uint8, width).reshape(-1, width)
    beyond = first[:, None] + np.arange(width) >= size
    changed = beyond & (value_bytes != _BITWISE_IDENTITY[op])
    if changed.any():
        index = int(np.flatnonzero(changed.any(axis=1))[0])
        raise ExecutionError(
            f"atomic {op} of {width} bytes by {batch.describe_thread(int(threads[index]))} at byte "
            f"{int(first[index]) - pointer.byte_offset} from {pointer.name} changes bytes past the end of "
            f"the tensor's storage ({size} bytes)"
        )
    padded = np.concatenate([pointer.storage, np.zeros(-(-size // width) * width + width - size, np.uint8)])
    inside = type(pointer)(padded, pointer.byte_offset, pointer.dtype, pointer.name)
    memory, rows = global_rows(batch, inside, offsets, threads, width, "atomic")
    olds = _apply_in_order(memory, rows, values, op, dtype)
    pointer.storage[:] = padded[:size]
    return olds


ATOMICS: dict[type, Callable[[Compiler, object], Step]] = {Atomic: _atomic}
