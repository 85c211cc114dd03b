"""``atomic``: read-modify-write of one value, indivisibly, in global or shared memory (PTX ``atom``).

The active threads of the batch act in thread order (blocks in grid order, threads in index order within
each), and each sees the result of the ones before it on the same address: ``output`` is the value it
replaced. The new value is ``old op value`` by ``tilevm.ir.semantics`` (``exchange`` stores ``value``).
Where the predicate is false nothing happens and ``output`` is zero. Addresses are checked as loads' are
(bounds, alignment to the value's size); atomics on shared memory respect pending cp.async bytes but are
left out of the race checks, since atomics of different threads do not race with each other.

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
        else:
            memory, rows = global_rows(batch, *address, threads, width, "atomic")
        values = np.broadcast_to(value(batch), (batch.size,))[threads]
        olds = _apply_in_order(memory, rows, values, op, dtype)
        result = np.zeros(batch.size, dtype=holder(dtype))
        result[threads] = olds
        batch.registers[slot] = result

    return run


ATOMICS: dict[type, Callable[[Compiler, object], Step]] = {Atomic: _atomic}
