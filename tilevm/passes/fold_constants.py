"""``fold_constants``: scalar expressions computed at compile time where their operands are constants.

Before: any verified program. After: the same program, in which every unary, binary and cast expression
whose operands are constants is a constant (unless the executor would raise or the target computes it
approximately, see ``tilevm.ir.semantics``), and the identities that keep their operand exactly are gone:
``x + 0``, ``x - 0``, ``x * 1``, ``x // 1``, ``x | 0``, ``x ^ 0``, ``x & ~0``, ``x << 0``, ``x >> 0`` on
integers; ``x * 1.0``, ``x / 1.0``, ``x - 0.0`` and ``x + -0.0`` on floats (not ``x + 0.0``, which turns
``-0.0`` into ``0.0``). Integer offsets are gathered: ``(x + 2) - 1`` is ``x + 1``. Every result is the value
the reference executor computes, bit for bit.

>>> from tilevm.ir import parse
>>> print(fold_constants(parse('''kernel k(%n: int32) num_threads=32 {
...   %x: int32 = declare(init=((%n * (3 - 2)) + cast<int32>(1.75:float16)) - 1)
... }''')))
kernel k(%n: int32) num_threads=32 {
  %x: int32 = declare(init=%n + 1)
}
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from tilevm.dtypes import DType
from tilevm.ir import BinaryExpr, BlockIndex, CastExpr, Const, Expr, GridSize, Program, UnaryExpr, Var
from tilevm.ir.rewrite import map_expressions
from tilevm.ir.semantics import (
    CORRECTLY_ROUNDED_UNARY,
    IntegerDivisionByZero,
    binary,
    cast,
    to_carrier,
    unary,
)

__all__ = ["fold_constants", "fold_expression"]


def fold_constants(program: Program) -> Program:
    """``program`` with its constant scalar expressions folded (see the module doc)."""
    return map_expressions(program, fold_expression)


def fold_expression(expression: Expr) -> Expr:
    """``expression`` folded one level, assuming its operands are folded already (as ``map_expressions``
    calls it: bottom-up)."""
    return _FOLDERS[type(expression)](expression)


def _value(expression: Expr) -> np.ndarray | None:
    """The value a constant holds at run time (a 0-d array rounded into its dtype, as ``tilevm.ir.semantics``
    computes with), None for other expressions."""
    if not isinstance(expression, Const):
        return None
    return to_carrier(expression.value, expression.dtype)


def _fold_unary(expression: UnaryExpr) -> Expr:
    value = _value(expression.operand)
    dtype = expression.operand.type.dtype
    if value is None or (dtype.is_float and expression.op not in CORRECTLY_ROUNDED_UNARY):
        return expression
    return Const(unary(expression.op, value, dtype).item(), dtype)


def _fold_cast(expression: CastExpr) -> Expr:
    value = _value(expression.operand)
    if value is None:
        return expression
    source = expression.operand.type.dtype
    return Const(cast(value, source, expression.dtype, expression.rounding).item(), expression.dtype)


def _fold_binary(expression: BinaryExpr) -> Expr:
    lhs, rhs = _value(expression.lhs), _value(expression.rhs)
    dtype = expression.lhs.type.dtype
    if lhs is not None and rhs is not None:
        try:
            return Const(binary(expression.op, lhs, rhs, dtype).item(), expression.type.dtype)
        except IntegerDivisionByZero:
            return expression  # the executor reports it where it runs
    if dtype.kind == "bool":
        return expression
    if rhs is not None and _is_identity(expression.op, rhs, dtype, _RIGHT_IDENTITIES):
        return expression.lhs
    if rhs is not None and dtype.is_integer:
        return _reassociate(expression, rhs, dtype)
    if lhs is not None and _is_identity(expression.op, lhs, dtype, _LEFT_IDENTITIES):
        return expression.rhs
    return expression


def _reassociate(expression: BinaryExpr, rhs: np.ndarray, dtype: DType) -> Expr:
    """``(y + a) - b`` as ``y + (a - b)``, and the like: exact, since n-bit integers add modulo 2^n."""
    inner = expression.lhs
    if (
        expression.op not in ("add", "sub")
        or not isinstance(inner, BinaryExpr)
        or inner.op not in ("add", "sub")
    ):
        return expression
    inner_value = _value(inner.rhs)
    if inner_value is None:
        return expression
    signed_inner = inner_value if inner.op == "add" else unary("neg", inner_value, dtype)
    offset = binary(expression.op, signed_inner, rhs, dtype).item()
    if offset == 0:
        return inner.lhs
    # A subtraction when the offset reads as negative (for unsigned, when it is 2^n minus a little).
    negative = offset < 0 if dtype.is_signed else offset >= 1 << (dtype.nbits - 1)
    if negative:
        return BinaryExpr(
            "sub", inner.lhs, Const(unary("neg", to_carrier(offset, dtype), dtype).item(), dtype)
        )
    return BinaryExpr("add", inner.lhs, Const(offset, dtype))


def _is_identity(op: str, value: np.ndarray, dtype: DType, table: dict) -> bool:
    test = table.get((op, "float" if dtype.is_float else "int"))
    return test is not None and test(value.item(), dtype)


def _is_negative_zero(value: float, dtype: DType) -> bool:
    return value == 0.0 and math.copysign(1.0, value) < 0


def _is_positive_zero(value: float, dtype: DType) -> bool:
    return value == 0.0 and math.copysign(1.0, value) > 0


def _is_all_ones(value: int, dtype: DType) -> bool:
    return value == (-1 if dtype.is_signed else (1 << dtype.nbits) - 1)


# (op, kind of dtype) -> whether a constant operand with this value leaves the other operand unchanged.
IdentityTest = Callable[[int | float, DType], bool]
_RIGHT_IDENTITIES: dict[tuple[str, str], IdentityTest] = {
    ("add", "int"): lambda value, _: value == 0,
    ("sub", "int"): lambda value, _: value == 0,
    ("mul", "int"): lambda value, _: value == 1,
    ("floordiv", "int"): lambda value, _: value == 1,
    ("or", "int"): lambda value, _: value == 0,
    ("xor", "int"): lambda value, _: value == 0,
    ("and", "int"): _is_all_ones,
    ("shl", "int"): lambda value, _: value == 0,
    ("shr", "int"): lambda value, _: value == 0,
    ("add", "float"): _is_negative_zero,  # x + (-0.0) is x for every x, -0.0 included; x + 0.0 is not
    ("sub", "float"): _is_positive_zero,
    ("mul", "float"): lambda value, _: value == 1.0,
    ("div", "float"): lambda value, _: value == 1.0,
}
_LEFT_IDENTITIES: dict[tuple[str, str], IdentityTest] = {
    key: test for key, test in _RIGHT_IDENTITIES.items() if key[0] in ("add", "mul", "or", "xor", "and")
}


def _leaf(expression: Expr) -> Expr:
    return expression


#: one folder per expression class; variables, constants and block indices have nothing to fold
_FOLDERS: dict[type[Expr], Callable[..., Expr]] = {
    Var: _leaf,
    Const: _leaf,
    BlockIndex: _leaf,
    GridSize: _leaf,
    UnaryExpr: _fold_unary,
    BinaryExpr: _fold_binary,
    CastExpr: _fold_cast,
}
