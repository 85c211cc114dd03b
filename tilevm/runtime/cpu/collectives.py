"""The warp-collective instructions ``mma``, ``ldmatrix`` and ``shuffle``, from the PTX ISA's definitions.

Every lane of a warp takes part: a warp whose 32 lanes are all active runs the instruction, one with no
active lane skips it, and one with only some active lanes is an error (``shfl.sync`` and ``mma.sync`` with a
full member mask; ``ldmatrix.sync.aligned``).

**mma.sync** (``.m16n8k8``/``k16``/``k32``/``k64``, ``.row.col``). The fragments are the PTX ISA's, with
``group = lane >> 2`` and ``thread = lane % 4``, written here from its formulas and not from
``tilevm.layout`` (whose fragments the lowering uses: this is an independent check of them). For an operand
type of ``e = 32 / bits`` elements per 32-bit register, element j of A register r is at row ``group + 8 (r %
2)``, column ``thread e + j + 4 e (r // 2)``; element j of B register r at row ``thread e + j + 4 e r``,
column ``group``; accumulator element i (C and D, scalars or f16 pairs) at row ``group + 8 (i // 2)``,
column ``2 thread + i % 2``. This is the ISA's per-shape tables (m16n8k16 f16: ``a0, a1`` row ``group``, col
``2 thread + i``; ``a4..a7`` 8 columns on; int8 m16n8k32 ``a8..a15`` 16 columns on; int4 m16n8k64 32).

Accumulation: integers exactly (int64), wrapped to int32 (no ``.satfinite``). Floats: each product of two
f16, bf16 or fp8 operands is exact in float64; the k products are summed in float64 in a fixed order, c is
added, and the sum is rounded once to the accumulator's dtype (float32, or float16 for f16 accumulators).
The float64 sum is exact unless the terms' magnitudes span more than about 2^30; the GPU's own order and
intermediate precision are unspecified, so results compare exactly only on small-integer-valued data.

**ldmatrix** (``.m8n8.x1/.x2/.x4{.trans}.b16``): lane ``8 i + r`` gives the address of row r of matrix i
(16 bytes, 16-byte aligned); output i of lane l holds elements ``(l // 4, 2 (l % 4) + j)``, j = 0, 1, of
matrix i (transposed: ``(2 (l % 4) + j, l // 4)``). Every lane receives bytes written by other lanes, so the
race check counts the whole warp as reading them.

**shfl.sync** (``.idx``/``.up``/``.down``/``.bfly``), exactly as the ISA's pseudo-code with CUDA's clamp for
a segment of ``width`` lanes (``c = ((32 - width) << 8) | 31``, 0 in place of 31 for ``up``): with
``segmask = c[12:8]``, ``min = lane & segmask``, ``max = min | (c[4:0] & ~segmask)`` and ``b`` the low 5 bits
of the lane operand, the source is ``lane - b`` (up, valid if >= max), ``lane + b`` (down, valid if <= max),
``lane ^ b`` (bfly, valid if <= max) or ``min | (b & ~segmask)`` (idx, valid if <= max); an invalid source
gives the thread its own value.

>>> sorted(cls.__name__ for cls in COLLECTIVES)
['Ldmatrix', 'Mma', 'Shuffle']
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from tilevm.dtypes import DType
from tilevm.ir.semantics import to_carrier as semantic_carrier
from tilevm.ir.thread import Ldmatrix, Mma, Shuffle
from tilevm.runtime.cpu.control import Step
from tilevm.runtime.cpu.expressions import length
from tilevm.runtime.cpu.memory import shared_rows
from tilevm.runtime.cpu.registers import from_carrier, from_codes, holder, to_carrier
from tilevm.runtime.cpu.state import WARP_SIZE, Batch
from tilevm.runtime.reference.errors import ExecutionError

if TYPE_CHECKING:
    from tilevm.runtime.cpu.compiler import Compiler

__all__ = [
    "COLLECTIVES",
    "fragment_carriers",
    "group_threads",
    "operand_positions",
    "scatter",
    "warp_threads",
]

_LANE = np.arange(WARP_SIZE)
_GROUP, _THREAD = _LANE >> 2, _LANE % 4


def warp_threads(batch: Batch, what: str) -> np.ndarray:
    """The threads of the warps that run a collective (all 32 lanes of each, warp by warp), after checking
    that no warp has only some of its lanes active."""
    return group_threads(batch, what, WARP_SIZE, "lane", "warp")


def group_threads(batch: Batch, what: str, size: int, member: str, group: str) -> np.ndarray:
    """The threads of the groups of ``size`` consecutive threads (a warp's lanes, a warpgroup's threads)
    that run an instruction collective over the group, group by group, after checking that the block is
    whole groups and that no group has only some of its members (each a ``member``) active."""
    if batch.num_threads % size:
        raise ExecutionError(
            f"{what} needs whole {group}s of {size} threads; the block has {batch.num_threads} threads"
        )
    if batch.mask is None:
        return batch.all_threads
    active = batch.mask.reshape(-1, size).sum(axis=1)
    partial = (active > 0) & (active < size)
    if partial.any():
        index = int(np.flatnonzero(partial)[0])
        first = batch.describe_thread(index * size)
        raise ExecutionError(
            f"{what} with {int(active[index])} of the {size} {member}s of the {group} of {first} active: "
            f"every {member} of the {group} must run it"
        )
    return np.flatnonzero(np.repeat(active == size, size))


def scatter(batch: Batch, threads: np.ndarray, values: np.ndarray, dtype: DType) -> np.ndarray:
    """A register of the batch: ``values`` in ``threads``, zero elsewhere."""
    if threads.size == batch.size:
        return values
    full = np.zeros((batch.size, *values.shape[1:]), dtype=holder(dtype))
    full[threads] = values
    return full


def operand_positions(bits: int, registers: int, operand: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns ``[32, registers, e]`` of the elements of an A or B fragment (see the module)."""
    per_register = 32 // bits
    register = np.arange(registers)[None, :, None]
    element = np.arange(per_register)[None, None, :]
    group, thread = _GROUP[:, None, None], _THREAD[:, None, None]
    base = thread * per_register + element
    if operand == "a":
        rows = group + 8 * (register % 2) + 0 * element
        return rows, base + 4 * per_register * (register // 2)
    return base + 4 * per_register * register, group + 0 * register + 0 * element


def _accumulator_positions(per_register: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns ``[32, 4 / per_register, per_register]`` of the accumulator elements."""
    index = np.arange(4).reshape(1, 4 // per_register, per_register)
    return _GROUP[:, None, None] + 8 * (index // 2), 2 * _THREAD[:, None, None] + index % 2


def fragment_carriers(
    batch: Batch, threads: np.ndarray, registers: list[np.ndarray], dtype: DType, each: int
) -> np.ndarray:
    """The carriers ``[warps, 32, registers, each]`` of one lane-fragment, from its registers."""
    values = [
        to_carrier(np.broadcast_to(value, (batch.size, each) if each > 1 else (batch.size,))[threads], dtype)
        for value in registers
    ]
    stacked = np.stack([value.reshape(-1, each) for value in values], axis=1)
    return stacked.reshape(-1, WARP_SIZE, len(registers), each)


def _mma(compiler: Compiler, instruction: Mma) -> Step:
    slots = tuple(compiler.slot(output) for output in instruction.outputs)
    operands = [
        tuple(compiler.expression(value) for value in values)
        for values in (instruction.a, instruction.b, instruction.c)
    ]
    a_dtype, b_dtype = instruction.a[0].type.dtype, instruction.b[0].type.dtype
    accumulator = instruction.c[0].type
    c_dtype, c_each = accumulator.dtype, length(accumulator)
    rows, columns, depth = (
        int(extent) for extent in re.fullmatch(r"m(\d+)n(\d+)k(\d+)", instruction.shape).groups()
    )
    a_rows, a_columns = operand_positions(a_dtype.nbits, len(instruction.a), "a")
    b_rows, b_columns = operand_positions(b_dtype.nbits, len(instruction.b), "b")
    c_rows, c_columns = _accumulator_positions(c_each)
    carrier = np.int64 if a_dtype.is_integer else np.float64
    where = f"mma {instruction.shape}"

    def run(batch: Batch) -> None:
        threads = warp_threads(batch, where)
        if not threads.size:
            return
        a, b, c = ([value(batch) for value in values] for values in operands)
        warps = threads.size // WARP_SIZE
        a_matrix = np.zeros((warps, rows, depth), dtype=carrier)
        a_matrix[:, a_rows, a_columns] = fragment_carriers(batch, threads, a, a_dtype, 32 // a_dtype.nbits)
        b_matrix = np.zeros((warps, depth, columns), dtype=carrier)
        b_matrix[:, b_rows, b_columns] = fragment_carriers(batch, threads, b, b_dtype, 32 // b_dtype.nbits)
        c_matrix = np.zeros((warps, rows, columns), dtype=carrier)
        c_matrix[:, c_rows, c_columns] = fragment_carriers(batch, threads, c, c_dtype, c_each)
        products = a_matrix[:, :, :, None] * b_matrix[:, None, :, :]
        total = products.sum(axis=2) + c_matrix
        rounded = semantic_carrier(total, c_dtype)
        lanes = rounded[:, c_rows, c_columns].reshape(threads.size, len(slots), c_each)
        for index, slot in enumerate(slots):
            value = lanes[:, index, :] if c_each > 1 else lanes[:, index, 0]
            batch.registers[slot] = scatter(batch, threads, from_carrier(value, c_dtype), c_dtype)

    return run


def _ldmatrix(compiler: Compiler, instruction: Ldmatrix) -> Step:
    slots = tuple(compiler.slot(output) for output in instruction.outputs)
    pointer, count, transpose = (
        compiler.expression(instruction.pointer),
        instruction.count,
        instruction.transpose,
    )
    dtype = instruction.pointer.type.dtype
    matrix, row, column = (
        np.arange(count)[None, :, None],
        (_LANE // 4)[:, None, None],
        (2 * (_LANE % 4))[:, None, None] + np.arange(2)[None, None, :],
    )
    if transpose:
        row, column = column, row

    def run(batch: Batch) -> None:
        threads = warp_threads(batch, "ldmatrix")
        if not threads.size:
            return
        warps = threads.reshape(-1, WARP_SIZE)
        givers = warps[:, : 8 * count].reshape(-1)  # lane 8 i + r: row r of matrix i
        rows = shared_rows(batch, pointer(batch), givers, 16, "ldmatrix")
        raw = batch.shared.read(rows, 16, givers, warp_wide=True)
        codes = np.ascontiguousarray(raw).view(np.uint16).reshape(-1, count, 8, 8)
        picked = codes[:, matrix, row, column]  # [warps, 32, count, 2]
        values = from_codes(picked.reshape(threads.size, count, 2), dtype)
        for index, slot in enumerate(slots):
            batch.registers[slot] = scatter(batch, threads, values[:, index, :], dtype)

    return run


def _shuffle(compiler: Compiler, instruction: Shuffle) -> Step:
    slot, value, lane = (
        compiler.slot(instruction.output),
        compiler.expression(instruction.value),
        compiler.expression(instruction.lane),
    )
    mode, width = instruction.mode, instruction.width
    value_type = instruction.output.type
    dtype, each = value_type.dtype, length(value_type)
    segment_mask = (WARP_SIZE - width) & 0x1F
    clamp = 0 if mode == "up" else 0x1F

    def run(batch: Batch) -> None:
        threads = warp_threads(batch, f"shuffle {mode}")
        if not threads.size:
            return
        own = _LANE[None, :]
        operand = (
            np.broadcast_to(lane(batch), (batch.size,))[threads].reshape(-1, WARP_SIZE).astype(np.int64)
            & 0x1F
        )
        lowest = own & segment_mask
        highest = lowest | (clamp & ~segment_mask)
        if mode == "up":
            source = own - operand
            valid = source >= highest
        elif mode == "down":
            source = own + operand
            valid = source <= highest
        elif mode == "xor":
            source = own ^ operand
            valid = source <= highest
        else:
            source = lowest | (operand & ~segment_mask)
            valid = source <= highest
        source = np.where(valid, source, own)
        shape = (batch.size, each) if each > 1 else (batch.size,)
        values = np.broadcast_to(value(batch), shape)[threads]
        warp_base = (np.arange(threads.size // WARP_SIZE) * WARP_SIZE)[:, None]
        moved = values[(warp_base + source).reshape(-1)]
        batch.registers[slot] = scatter(batch, threads, moved, dtype)

    return run


COLLECTIVES: dict[type, Callable[[Compiler, object], Step]] = {
    Mma: _mma,
    Ldmatrix: _ldmatrix,
    Shuffle: _shuffle,
}
