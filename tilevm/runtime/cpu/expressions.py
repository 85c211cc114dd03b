"""Expressions compiled to closures ``evaluate(batch) -> value``, one compiler per expression class.

Arithmetic (unary, binary, cast), on scalars or element by element on vectors, goes through
``tilevm.ir.semantics``, the one definition of what operators compute; everything else moves bits
(``registers``). A global pointer's value is the pair (``Pointer`` of a tensor's storage, byte offsets from
the pointer); a shared pointer's value is the byte offsets into the block's shared memory.

>>> from tilevm.ir import parse
>>> from tilevm.ir.thread import THREAD_IR
>>> from tilevm.runtime.cpu.compiler import Compiler
>>> from tilevm.runtime.cpu.state import Batch
>>> program = parse('''kernel k() num_threads=4 {
...   %v: vector<int8, 2> = let(value=pack([cast<int8>(thread_index() * 100), -1:int8]))
... }''', THREAD_IR)
>>> batch = Batch.of([(0, 0, 0)], (1, 1, 1), 4, 0, 10, 1)
>>> Compiler().expression(program.body[0].value)(batch).tolist()
[[0, -1], [100, -1], [-56, -1], [44, -1]]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from tilevm.ir import BinaryExpr, BlockIndex, CastExpr, Const, GridSize, UnaryExpr, Var
from tilevm.ir.expr import COMPARISON_OPS, binary_result_dtype
from tilevm.ir.semantics import binary, cast, unary
from tilevm.ir.semantics import to_carrier as semantic_carrier
from tilevm.ir.thread import (
    Bitcast,
    Element,
    Gather,
    LaneIndex,
    Pack,
    PointerAdd,
    PointerCast,
    Select,
    SharedAddress,
    SharedPointer,
    ThreadIndex,
    WarpIndex,
)
from tilevm.ir.types import AddressSpace, VectorType
from tilevm.runtime.cpu.registers import bitcast, carrier_reader, from_carrier, register_writer
from tilevm.runtime.cpu.state import Batch

if TYPE_CHECKING:
    from tilevm.runtime.cpu.compiler import Compiler

__all__ = ["EXPRESSIONS", "Evaluator", "length"]

Evaluator = Callable[[Batch], object]


def length(value_type: object) -> int:
    """The number of elements of a register type: a vector's length, 1 for a scalar."""
    return value_type.length if isinstance(value_type, VectorType) else 1


def _var(compiler: Compiler, expr: Var) -> Evaluator:
    slot = compiler.slot(expr)
    return lambda batch: batch.registers[slot]


def _const(compiler: Compiler, expr: Const) -> Evaluator:
    value = from_carrier(semantic_carrier(expr.value, expr.dtype), expr.dtype)
    return lambda batch: value


def _unary(compiler: Compiler, expr: UnaryExpr) -> Evaluator:
    operand, op, dtype = compiler.expression(expr.operand), expr.op, expr.operand.type.dtype
    read, write = carrier_reader(dtype), register_writer(dtype)
    return lambda batch: write(unary(op, read(operand(batch)), dtype))


def _binary(compiler: Compiler, expr: BinaryExpr) -> Evaluator:
    lhs, rhs, op = compiler.expression(expr.lhs), compiler.expression(expr.rhs), expr.op
    dtype = expr.lhs.type.dtype
    result = binary_result_dtype(op, dtype)
    read, write = carrier_reader(dtype), register_writer(result)
    if op in COMPARISON_OPS:
        return lambda batch: binary(op, read(lhs(batch)), read(rhs(batch)), dtype)
    if op in ("floordiv", "mod") and dtype.is_integer:
        rhs = _divisor_of_active_threads(rhs, isinstance(expr.type, VectorType))

    def evaluate(batch: Batch) -> np.ndarray:
        return write(binary(op, read(lhs(batch)), read(rhs(batch)), dtype))

    return evaluate


def _divisor_of_active_threads(divisor: Evaluator, vector: bool) -> Evaluator:
    """The divisor where threads are active and 1 elsewhere: an inactive thread divides by zero harmlessly
    (its result is never used), while the semantics raise on any zero."""

    def evaluate(batch: Batch) -> np.ndarray:
        value = divisor(batch)
        if batch.mask is None or value.ndim == 0 or (vector and value.ndim == 1):
            return value
        mask = batch.mask[:, None] if vector else batch.mask
        return np.where(mask, value, np.ones_like(value))

    return evaluate


def _cast(compiler: Compiler, expr: CastExpr) -> Evaluator:
    operand, source, target = compiler.expression(expr.operand), expr.operand.type.dtype, expr.dtype
    rounding = expr.rounding
    if source == target:
        return operand
    read, write = carrier_reader(source), register_writer(target)
    return lambda batch: write(cast(read(operand(batch)), source, target, rounding))


def _block_index(compiler: Compiler, expr: BlockIndex) -> Evaluator:
    axis = expr.axis
    return lambda batch: batch.block_index[axis]


def _grid_size(compiler: Compiler, expr: GridSize) -> Evaluator:
    axis = expr.axis
    return lambda batch: np.asarray(batch.grid[axis], dtype=np.int32)


def _shared_pointer(compiler: Compiler, expr: SharedPointer) -> Evaluator:
    offset = compiler.expression(expr.offset)
    return lambda batch: offset(batch).astype(np.int64)


def _shared_address(compiler: Compiler, expr: SharedAddress) -> Evaluator:
    # the interpreter's shared window holds the block's shared memory from address 0
    pointer = compiler.expression(expr.pointer)
    return lambda batch: pointer(batch).astype(np.uint32)


def _pointer_add(compiler: Compiler, expr: PointerAdd) -> Evaluator:
    pointer, offset = compiler.expression(expr.pointer), compiler.expression(expr.offset)
    if expr.type.space is AddressSpace.SHARED:
        return lambda batch: pointer(batch) + offset(batch).astype(np.int64)

    def evaluate(batch: Batch) -> tuple[object, np.ndarray]:
        storage, offsets = pointer(batch)
        return storage, offsets + offset(batch).astype(np.int64)

    return evaluate


def _pointer_cast(compiler: Compiler, expr: PointerCast) -> Evaluator:
    # the same address: a pointer's dtype only says what its loads and stores move
    return compiler.expression(expr.pointer)


def _element(compiler: Compiler, expr: Element) -> Evaluator:
    vector, index = compiler.expression(expr.vector), expr.index
    return lambda batch: vector(batch)[..., index]


def _pack(compiler: Compiler, expr: Pack) -> Evaluator:
    elements = tuple(compiler.expression(element) for element in expr.elements)
    return lambda batch: np.stack(np.broadcast_arrays(*(element(batch) for element in elements)), axis=-1)


def _bitcast(compiler: Compiler, expr: Bitcast) -> Evaluator:
    operand, source_type = compiler.expression(expr.operand), expr.operand.type
    source, source_length, target, target_length = (
        source_type.dtype,
        length(source_type),
        expr.dtype,
        expr.length,
    )
    return lambda batch: bitcast(operand(batch), source, source_length, target, target_length)


def _select(compiler: Compiler, expr: Select) -> Evaluator:
    condition = compiler.expression(expr.condition)
    if_true, if_false = compiler.expression(expr.if_true), compiler.expression(expr.if_false)
    # A scalar condition chooses whole vectors: it gets the vector's element axis.
    widen = isinstance(expr.type, VectorType) and not isinstance(expr.condition.type, VectorType)

    def evaluate(batch: Batch) -> np.ndarray:
        chosen = condition(batch)
        if widen and chosen.ndim:
            chosen = chosen[:, None]
        return np.where(chosen, if_true(batch), if_false(batch))

    return evaluate


def _gather(compiler: Compiler, expr: Gather) -> Evaluator:
    sources = tuple(compiler.expression(source) for source in expr.sources)
    vectors = tuple(isinstance(source.type, VectorType) for source in expr.sources)
    indices = np.asarray(expr.indices)
    pick = indices[0] if indices.size == 1 else indices
    if len(sources) == 1 and vectors[0]:
        only = sources[0]
        return lambda batch: only(batch)[..., pick]

    def evaluate(batch: Batch) -> np.ndarray:
        rows = [
            value if vector else value[..., None]
            for value, vector in zip((source(batch) for source in sources), vectors)
        ]
        lead = np.broadcast_shapes(*(row.shape[:-1] for row in rows))
        row = np.concatenate([np.broadcast_to(row, (*lead, row.shape[-1])) for row in rows], axis=-1)
        return row[..., pick]

    return evaluate


def _thread_value(name: str) -> Callable[[Compiler, object], Evaluator]:
    return lambda compiler, expr: lambda batch: getattr(batch, name)


EXPRESSIONS: dict[type, Callable[[Compiler, object], Evaluator]] = {
    Var: _var,
    Const: _const,
    BlockIndex: _block_index,
    GridSize: _grid_size,
    UnaryExpr: _unary,
    BinaryExpr: _binary,
    CastExpr: _cast,
    ThreadIndex: _thread_value("thread_index"),
    LaneIndex: _thread_value("lane_index"),
    WarpIndex: _thread_value("warp_index"),
    SharedPointer: _shared_pointer,
    SharedAddress: _shared_address,
    PointerAdd: _pointer_add,
    PointerCast: _pointer_cast,
    Element: _element,
    Pack: _pack,
    Bitcast: _bitcast,
    Select: _select,
    Gather: _gather,
}
