"""Handlers of the instructions that compute on register tiles (see ``tilevm.ir.elementwise``,
``reductions`` and ``layout_ops``).

Elementwise instructions follow ``arith`` (exact or float64 computation, then one rounding to the dtype)
with numpy broadcasting. ``reduce`` sums floats in float64 and rounds once to its ``dtype`` (integers:
exactly, modulo 2^64, then wrapped to its ``dtype``); ``max`` and ``min`` are exact and over floats ignore
NaN. ``dot`` computes ``a @ b + accumulator`` in float64 and rounds once to the accumulator's dtype
(integers: exactly, modulo 2^64, then wrapped). ``assign`` replaces the value of its destination variable.
``view`` reads the tile's bits row-major, ``permute`` transposes, ``arange`` counts, and ``convert_layout``
returns its operand: no result depends on a layout.

>>> sorted(cls.__name__ for cls in HANDLERS)[:3]
['Arange', 'AssignTensor', 'Binary']
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tilevm.dtypes import float32
from tilevm.ir import (
    Arange,
    AssignTensor,
    Binary,
    Cast,
    ConvertLayout,
    Dot,
    Instruction,
    Permute,
    Reduce,
    Unary,
    Var,
    View,
    Where,
)
from tilevm.ir.semantics import binary, cast, to_carrier, unary
from tilevm.runtime.reference.carrier import carrier_type
from tilevm.runtime.reference.convert import view
from tilevm.runtime.reference.scalars import evaluate
from tilevm.runtime.reference.shared import InFlightDot
from tilevm.runtime.reference.state import BlockState

__all__ = ["HANDLERS"]


def _unary(instruction: Unary, state: BlockState) -> None:
    dtype = instruction.operand.type.dtype
    state.bind(instruction.output, unary(instruction.op, evaluate(instruction.operand, state), dtype))


def _binary(instruction: Binary, state: BlockState) -> None:
    lhs, rhs = evaluate(instruction.lhs, state), evaluate(instruction.rhs, state)
    state.bind(instruction.output, binary(instruction.op, lhs, rhs, instruction.lhs.type.dtype))


def _where(instruction: Where, state: BlockState) -> None:
    condition = evaluate(instruction.condition, state)
    on_true, on_false = evaluate(instruction.on_true, state), evaluate(instruction.on_false, state)
    state.bind(instruction.output, np.where(condition, on_true, on_false))


def _reduce(instruction: Reduce, state: BlockState) -> None:
    values = evaluate(instruction.operand, state)
    dtype = instruction.dtype
    keepdims = instruction.keepdim or values.ndim == 1
    axis = instruction.dim
    if instruction.op == "sum":
        # Integers wrap modulo 2^64 in the carrier (exact modulo 2^n once wrapped); floats see the docstring.
        exact = np.float64 if dtype.is_float else carrier_type(dtype)
        with np.errstate(invalid="ignore", over="ignore"):
            result = np.sum(values, axis=axis, keepdims=keepdims, dtype=exact)
    elif instruction.operand.type.dtype.is_float:
        reducer = np.fmax if instruction.op == "max" else np.fmin
        result = reducer.reduce(values, axis=axis, keepdims=keepdims)
    else:
        reducer = np.max if instruction.op == "max" else np.min
        result = reducer(values, axis=axis, keepdims=keepdims)
    # dtype holds every operand value: max and min convert exactly
    state.bind(instruction.output, to_carrier(result, dtype))


def _arange(instruction: Arange, state: BlockState) -> None:
    state.bind(instruction.output, np.arange(instruction.size, dtype=carrier_type(instruction.dtype)))


def _permute(instruction: Permute, state: BlockState) -> None:
    values = evaluate(instruction.operand, state)
    state.bind(instruction.output, np.transpose(values, instruction.dims).copy())


def _dot(instruction: Dot, state: BlockState) -> None:
    a, b = evaluate(instruction.a, state), evaluate(instruction.b, state)
    accumulator = evaluate(instruction.accumulator, state)
    exact = np.float64 if instruction.a.type.dtype.is_float else np.int64
    with np.errstate(all="ignore"):
        result = a.astype(exact) @ b.astype(exact) + accumulator.astype(exact)
    state.bind(instruction.output, to_carrier(result, instruction.accumulator.type.dtype))


def _cast(instruction: Cast, state: BlockState) -> None:
    values = evaluate(instruction.operand, state)
    source = instruction.operand.type.dtype
    if instruction.scale_exponent:  # a low-bit value, exact in float64, and a power of two: one rounding
        values, source = np.ldexp(values.astype(np.float64), instruction.scale_exponent), float32
    state.bind(instruction.output, cast(values, source, instruction.dtype, instruction.rounding))


def _view(instruction: View, state: BlockState) -> None:
    values = evaluate(instruction.operand, state)
    source = instruction.operand.type.dtype
    state.bind(instruction.output, view(values, source, instruction.dtype, instruction.shape))


def _assign(instruction: AssignTensor, state: BlockState) -> None:
    value = state.lookup_in_flight(instruction.value) if isinstance(instruction.value, Var) else None
    if isinstance(value, InFlightDot):  # a loop carries an asynchronous dot's result on: still in flight
        state.bind(instruction.destination, value)
        return
    state.bind(instruction.destination, np.array(evaluate(instruction.value, state), copy=True))


def _convert_layout(instruction: ConvertLayout, state: BlockState) -> None:
    state.bind(instruction.output, np.array(evaluate(instruction.operand, state), copy=True))


HANDLERS: dict[type[Instruction], Callable[..., None]] = {
    Unary: _unary,
    Binary: _binary,
    Where: _where,
    Reduce: _reduce,
    Arange: _arange,
    Permute: _permute,
    Dot: _dot,
    Cast: _cast,
    View: _view,
    AssignTensor: _assign,
    ConvertLayout: _convert_layout,
}
