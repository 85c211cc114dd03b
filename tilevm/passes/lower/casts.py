"""Lowering of ``cast``: a thread's register of one dtype converted to another, element by element.

``convert`` is what every lowering that changes a dtype calls, so that casts are chosen in one place.
"""

from __future__ import annotations

from tilevm.dtypes import DType
from tilevm.ir import Cast
from tilevm.ir.expr import CastExpr, Expr
from tilevm.passes.lower.lowering import Handler, Lowering

__all__ = ["HANDLERS", "convert"]


def convert(lowering: Lowering, value: Expr, target: DType, rounding: str = "nearest") -> Expr:
    """``value`` (a scalar or vector register) converted to ``target`` by the rules of Tile IR's ``cast``."""
    if value.type.dtype == target:
        return value
    return lowering.let("cast", CastExpr(value, target, rounding))


def _cast(lowering: Lowering, cast: Cast) -> None:
    lowering.bind(cast.output, convert(lowering, lowering.tile(cast.operand), cast.dtype, cast.rounding))


HANDLERS: dict[type, Handler] = {Cast: _cast}
