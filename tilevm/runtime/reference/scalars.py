"""Evaluation of scalar expressions (and of operands, which may also name a tile) in a block's state.

Each expression class has one evaluator in ``EVALUATORS``; results are 0-d carrier arrays (see
``carrier``), computed by the same rules as the elementwise tile instructions.

>>> from tilevm.dtypes import int32
>>> from tilevm.ir import BinaryExpr, BlockIndex, Const
>>> state = BlockState(block_index=(2, 0, 0), grid=(3, 1, 1), rng=np.random.default_rng(0), run=None)
>>> int(evaluate(BinaryExpr("mod", BinaryExpr("sub", BlockIndex(0), Const(7)), Const(4)), state))
3
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tilevm.ir import BinaryExpr, BlockIndex, CastExpr, Const, Expr, GridSize, UnaryExpr, Var
from tilevm.ir.semantics import binary, cast, to_carrier, unary
from tilevm.runtime.reference.errors import ExecutionError
from tilevm.runtime.reference.state import BlockState

__all__ = ["EVALUATORS", "evaluate", "evaluate_int"]


def _const(expr: Const, state: BlockState) -> object:
    return to_carrier(expr.value, expr.dtype)


def _block_index(expr: BlockIndex, state: BlockState) -> object:
    return np.asarray(state.block_index[expr.axis], dtype=np.int64)


def _grid_size(expr: GridSize, state: BlockState) -> object:
    return np.asarray(state.grid[expr.axis], dtype=np.int64)


def _unary(expr: UnaryExpr, state: BlockState) -> object:
    return unary(expr.op, evaluate(expr.operand, state), expr.operand.type.dtype)


def _binary(expr: BinaryExpr, state: BlockState) -> object:
    lhs, rhs = evaluate(expr.lhs, state), evaluate(expr.rhs, state)
    return binary(expr.op, lhs, rhs, expr.lhs.type.dtype)


def _cast(expr: CastExpr, state: BlockState) -> object:
    return cast(evaluate(expr.operand, state), expr.operand.type.dtype, expr.dtype, expr.rounding)


EVALUATORS: dict[type[Expr], Callable[..., object]] = {
    Var: lambda expr, state: state.lookup(expr),
    Const: _const,
    BlockIndex: _block_index,
    GridSize: _grid_size,
    UnaryExpr: _unary,
    BinaryExpr: _binary,
    CastExpr: _cast,
}


def evaluate(expr: Expr, state: BlockState) -> object:
    """The value of ``expr``: a 0-d carrier for scalar expressions, the bound value for a variable."""
    return EVALUATORS[type(expr)](expr, state)


def evaluate_int(expr: Expr, state: BlockState, what: str) -> int:
    """The value of an integer scalar expression as a Python int."""
    value = evaluate(expr, state)
    if not isinstance(value, np.ndarray) or value.ndim != 0 or value.dtype.kind not in "iu":
        raise ExecutionError(f"{what} must be an integer scalar")
    return int(value)
