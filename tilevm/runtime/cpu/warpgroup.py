"""The warpgroup instructions of sm_90a (``wgmma`` and its fence, commit and wait) and the async-proxy fence,
from the PTX ISA's definitions that ``tilevm.ir.thread.warpgroup`` transcribes (matrix descriptors, the
K-major shared-memory layouts, the register orders of A and of the accumulators).

**wgmma** is warpgroup-collective: the block's thread count must be a multiple of 128; a warpgroup whose 128
threads are all active runs it, one with none skips it, and one with only some is an error
(``.sync.aligned``). Both descriptors must be the same in every thread of the warpgroup (the ISA: "the
contents of a matrix descriptor must be same across all the warps in the warpgroup"). A descriptor is
decoded, its 64 (A) or n (B) rows of two 16-byte chunks (values of k 0-7 and 8-15) located by the layout of
its swizzle mode, and read from the block's shared memory: every address must lie inside it, and every
byte must have been written before the last barrier (the whole warpgroup receives the bytes, as an
``ldmatrix`` warp does). A nonzero base offset (swizzle patterns not on their 8 W-byte boundaries) is an
error: the interpreter, like this IR, places patterns on their boundaries.

**A in registers**: each warp of the warpgroup gives 16 rows of A (warp ``w % 4`` rows ``16 (w % 4)`` on)
from its lanes' four registers, laid out as ``mma.sync`` m16n8k16's A fragment, so they are gathered as
``collectives`` gathers that one (its positions, written from the ISA's formulas); only B is read from
shared memory.

The arithmetic is ``mma``'s: each product of two float16 or bfloat16 values is exact in float64, the 16
products are summed in float64, C is added, and the sum is rounded once to float32.

The interpreter completes a wgmma when it is issued: it reads the operands then (the GPU may read them any
time before the wait, so a program must not change them in between: the race checks, which need a barrier
between any write and the read, catch most such programs) and its outputs hold D at once. So the fences,
the commit and the wait have nothing to order or wait for: ``wgmma_wait_group`` only passes its
accumulators to its outputs (its held registers, read already, are nothing to it), and ``fence_proxy_async``
does nothing, since every access is seen by every later one already (see ``memory``'s fence).

>>> sorted(cls.__name__ for cls in WARPGROUP)
['FenceProxyAsync', 'Wgmma', 'WgmmaCommitGroup', 'WgmmaFence', 'WgmmaWaitGroup']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from tilevm.dtypes import DType, float32
from tilevm.ir.semantics import to_carrier as semantic_carrier
from tilevm.ir.thread import FenceProxyAsync, Wgmma, WgmmaCommitGroup, WgmmaFence, WgmmaWaitGroup
from tilevm.ir.thread.warpgroup import A_REGISTERS, WARPGROUP_SIZE, MatrixDescriptor
from tilevm.runtime.cpu.collectives import fragment_carriers, group_threads, operand_positions, scatter
from tilevm.runtime.cpu.control import Step
from tilevm.runtime.cpu.registers import from_carrier, from_codes, to_carrier
from tilevm.runtime.cpu.state import WARP_SIZE, Batch
from tilevm.runtime.reference.errors import ExecutionError

if TYPE_CHECKING:
    from tilevm.runtime.cpu.compiler import Compiler

__all__ = ["WARPGROUP", "operand_chunks", "warpgroup_threads"]

#: rows of wgmma's A (m64), its depth (k16), and the rows of it that one warp's registers hold
_A_ROWS, _DEPTH, _WARP_ROWS = 64, 16, 16
#: the rows and columns ``[32, 4, 2]`` of a warp's part of A in its lanes' fragment registers
_FRAGMENT_ROWS, _FRAGMENT_COLUMNS = operand_positions(16, A_REGISTERS, "a")


def warpgroup_threads(batch: Batch, what: str) -> np.ndarray:
    """The threads of the warpgroups that run a warpgroup-collective instruction (all 128 threads of each,
    warpgroup by warpgroup), after checking that no warpgroup has only some of its threads active."""
    return group_threads(batch, what, WARPGROUP_SIZE, "thread", "warpgroup")


def operand_chunks(descriptor: MatrixDescriptor, rows: int) -> np.ndarray:
    """The shared addresses ``[rows, 2]`` of the two 16-byte chunks (values of k 0-7, 8-15) of each row of
    a K-major operand of 16-bit elements (see ``tilevm.ir.thread.warpgroup``).

    >>> operand_chunks(MatrixDescriptor(0, 128, 256, 0, 0), 9)[[0, 1, 8]].tolist()
    [[0, 128], [16, 144], [256, 384]]
    >>> operand_chunks(MatrixDescriptor(32, 16, 1024, 0, 128), 2).tolist()
    [[32, 48], [176, 160]]
    """
    row = np.arange(rows, dtype=np.int64)[:, None]
    chunk = np.arange(2, dtype=np.int64)[None, :]
    groups = descriptor.start + (row // 8) * descriptor.stride
    if not descriptor.swizzle:
        return groups + chunk * descriptor.leading + (row % 8) * 16
    linear = groups + (row % 8) * descriptor.swizzle + 16 * chunk
    # XOR address bits [4, 4 + b) with bits [7, 7 + b), b = log2(W / 16): CuTe's Swizzle<b, 4, 3>
    mask = descriptor.swizzle // 16 - 1
    return linear ^ ((linear >> 7) & mask) << 4


def _accumulator_positions(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns ``[128, n / 2]`` of D's elements in each thread's accumulator registers."""
    thread = np.arange(WARPGROUP_SIZE)[:, None]
    register = np.arange(n // 2)[None, :]
    warp, lane = thread // 32, thread % 32
    rows = 16 * warp + lane // 4 + 8 * (register % 4 // 2)
    return rows, 8 * (register // 4) + 2 * (lane % 4) + register % 2


def _uniform_descriptors(batch: Batch, threads: np.ndarray, values: np.ndarray, name: str) -> list[int]:
    """The descriptor of each warpgroup, after checking that its threads agree."""
    groups = np.broadcast_to(values, (batch.size,))[threads].reshape(-1, WARPGROUP_SIZE).astype(np.uint64)
    differs = (groups != groups[:, :1]).any(axis=1)
    if differs.any():
        group = int(np.flatnonzero(differs)[0])
        other = int(np.flatnonzero(groups[group] != groups[group, 0])[0])
        first, second = (int(threads[group * WARPGROUP_SIZE + index]) for index in (0, other))
        raise ExecutionError(
            f"wgmma's {name} descriptor is {int(groups[group, 0]):#x} in {batch.describe_thread(first)} but "
            f"{int(groups[group, other]):#x} in {batch.describe_thread(second)}: it must be the same in "
            f"every thread of the warpgroup"
        )
    return [int(value) for value in groups[:, 0]]


def _read_operand(
    batch: Batch, first_thread: int, bits: int, rows: int, name: str, dtype: DType
) -> np.ndarray:
    """The float64 values ``[rows, 16]`` of one warpgroup's operand (row r, value k) in shared memory."""
    descriptor = MatrixDescriptor.decode(bits)
    if descriptor.base_offset:
        raise ExecutionError(
            f"wgmma's {name} descriptor {bits:#x} has base offset {descriptor.base_offset}; tilevm places "
            f"swizzle patterns on their boundaries, with base offset 0"
        )
    offsets = operand_chunks(descriptor, rows).reshape(-1)
    block = np.full(offsets.shape, batch.block_of_thread[first_thread])
    readers = np.full(offsets.shape, first_thread)
    shared_rows = batch.shared.rows(offsets, block, 16, f"wgmma's read of {name}")
    raw = batch.shared.read(shared_rows, 16, readers, warp_wide=True)
    codes = np.ascontiguousarray(raw).view(np.uint16).reshape(rows, 16)
    return to_carrier(from_codes(codes, dtype), dtype)


def _operands(
    batch: Batch, firsts: np.ndarray, descriptors: list[int], rows: int, name: str, dtype: DType
) -> np.ndarray:
    """The values ``[warpgroups, rows, 16]`` of the operand of each warpgroup (whose first thread is in
    ``firsts``)."""
    return np.stack(
        [
            _read_operand(batch, int(first), bits, rows, name, dtype)
            for first, bits in zip(firsts, descriptors)
        ]
    )


def _a_reader(compiler: Compiler, instruction: Wgmma) -> Callable[[Batch, np.ndarray], np.ndarray]:
    """How a wgmma reads the values ``[warpgroups, 64, 16]`` of its A in a batch, given the threads that run
    it: from shared memory by the descriptor, or from each thread's fragment registers."""
    dtype = instruction.dtype
    if not instruction.a_in_registers:
        descriptor = compiler.expression(instruction.a)

        def from_shared(batch: Batch, threads: np.ndarray) -> np.ndarray:
            bits = _uniform_descriptors(batch, threads, descriptor(batch), "a")
            return _operands(batch, threads[::WARPGROUP_SIZE], bits, _A_ROWS, "a", dtype)

        return from_shared
    registers = tuple(compiler.expression(value) for value in instruction.a)

    def from_registers(batch: Batch, threads: np.ndarray) -> np.ndarray:
        values = fragment_carriers(batch, threads, [register(batch) for register in registers], dtype, 2)
        per_warp = np.zeros((threads.size // WARP_SIZE, _WARP_ROWS, _DEPTH))
        per_warp[:, _FRAGMENT_ROWS, _FRAGMENT_COLUMNS] = values
        return per_warp.reshape(-1, _A_ROWS, _DEPTH)  # a warpgroup's warps are consecutive

    return from_registers


def _wgmma(compiler: Compiler, instruction: Wgmma) -> Step:
    slots = tuple(compiler.slot(output) for output in instruction.outputs)
    read_a, b = _a_reader(compiler, instruction), compiler.expression(instruction.b)
    accumulators = tuple(compiler.expression(value) for value in instruction.c)
    n, dtype = instruction.n, instruction.dtype
    rows, columns = _accumulator_positions(n)
    what = f"wgmma m64n{n}k16"

    def run(batch: Batch) -> None:
        threads = warpgroup_threads(batch, what)
        if not threads.size:
            return
        a_values = read_a(batch, threads)
        b_bits = _uniform_descriptors(batch, threads, b(batch), "b")
        firsts = threads[::WARPGROUP_SIZE]
        b_values = _operands(batch, firsts, b_bits, n, "b", dtype)
        registers = [np.broadcast_to(value(batch), (batch.size,))[threads] for value in accumulators]
        c = to_carrier(np.stack(registers, axis=1), float32).reshape(-1, WARPGROUP_SIZE, n // 2)
        c_matrix = np.zeros((len(firsts), _A_ROWS, n))
        c_matrix[:, rows, columns] = c
        # D[m, j] = sum over k of A[m, k] B[k, j]; B's descriptor rows are B's columns j
        total = (a_values[:, :, None, :] * b_values[:, None, :, :]).sum(axis=3) + c_matrix
        rounded = semantic_carrier(total, float32)[:, rows, columns].reshape(threads.size, n // 2)
        for index, slot in enumerate(slots):
            batch.registers[slot] = scatter(batch, threads, from_carrier(rounded[:, index], float32), float32)

    return run


def _wait_group(compiler: Compiler, instruction: WgmmaWaitGroup) -> Step:
    slots = tuple(compiler.slot(output) for output in instruction.outputs)
    accumulators = tuple(compiler.expression(value) for value in instruction.accumulators)

    def run(batch: Batch) -> None:
        threads = warpgroup_threads(batch, "wgmma_wait_group")
        for slot, value in zip(slots, accumulators):
            values = np.broadcast_to(value(batch), (batch.size,))[threads]
            batch.registers[slot] = scatter(batch, threads, values, float32)

    return run


def _collective_without_effect(what: str) -> Callable[[Compiler, object], Step]:
    """A warpgroup-collective instruction with nothing to do here: only the check that whole warpgroups
    run it."""

    def compile_step(compiler: Compiler, instruction: object) -> Step:
        def run(batch: Batch) -> None:
            warpgroup_threads(batch, what)

        return run

    return compile_step


WARPGROUP: dict[type, Callable[[Compiler, object], Step]] = {
    Wgmma: _wgmma,
    WgmmaFence: _collective_without_effect("wgmma_fence"),
    WgmmaCommitGroup: _collective_without_effect("wgmma_commit_group"),
    WgmmaWaitGroup: _wait_group,
    FenceProxyAsync: lambda compiler, instruction: lambda batch: None,
}
