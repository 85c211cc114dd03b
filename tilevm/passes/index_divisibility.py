"""Divisibility of integer scalar expressions: the largest power of two known to divide every value an
expression can take, given what is known of its variables (as Triton's axis analysis, on scalars).

Claims hold for the values the reference executor computes: integers wrap modulo ``2**nbits``, which keeps
divisibility by any power of two up to ``2**nbits``, so every claim is capped there (and at
``DIVISIBILITY_CAP``). Zero is divisible by everything, so a constant 0 gets the cap.

>>> from tilevm.ir import BinaryExpr, Const, Var
>>> from tilevm.ir.types import ScalarType
>>> from tilevm.dtypes import int32
>>> n = Var("n", ScalarType(int32))
>>> expression_divisibility(BinaryExpr("add", BinaryExpr("mul", n, Const(16)), Const(32)), {n: 1})
16
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from tilevm.ir import BinaryExpr, BlockIndex, CastExpr, Const, Expr, GridSize, UnaryExpr, Var
from tilevm.ir.types import ScalarType

__all__ = ["DIVISIBILITY_CAP", "expression_divisibility", "is_integer_scalar", "power_of_two_part"]

#: the largest divisibility claimed: enough for any alignment a vector access asks about
DIVISIBILITY_CAP = 1 << 16

Divisibilities = Mapping[Var, int]


def power_of_two_part(value: int, cap: int = DIVISIBILITY_CAP) -> int:
    """The largest power of two dividing ``value``, at most ``cap`` (``cap`` for 0).

    >>> power_of_two_part(48), power_of_two_part(-8), power_of_two_part(0, cap=64)
    (16, 8, 64)
    """
    if value == 0:
        return cap
    return min(value & -value, cap)


def is_integer_scalar(expression: Expr) -> bool:
    """Whether ``expression`` is a scalar of an integer dtype (bool excluded)."""
    value_type = expression.type
    return (
        isinstance(value_type, ScalarType) and value_type.dtype.is_integer and value_type.dtype.kind != "bool"
    )


def expression_divisibility(expression: Expr, variables: Divisibilities) -> int:
    """The largest power of two known to divide ``expression``'s value; ``variables`` gives each variable's
    (a variable it lacks is known to nothing: 1). Raises ``ValueError`` for a non-integer expression."""
    if not is_integer_scalar(expression):
        raise ValueError(f"divisibility of a {expression.type} expression; only integer scalars have one")
    return min(_RULES[type(expression)](expression, variables), _cap(expression))


def _cap(expression: Expr) -> int:
    return min(DIVISIBILITY_CAP, 1 << expression.type.dtype.nbits)


def _of(expression: Expr, variables: Divisibilities) -> int:
    """The divisibility of an operand, 1 when it is not an integer scalar (a float cast to an integer)."""
    return expression_divisibility(expression, variables) if is_integer_scalar(expression) else 1


def _constant(expression: Const, variables: Divisibilities) -> int:
    return power_of_two_part(int(expression.value), _cap(expression))


def _variable(expression: Var, variables: Divisibilities) -> int:
    return variables.get(expression, 1)


def _unknown(expression: Expr, variables: Divisibilities) -> int:
    return 1


def _unary(expression: UnaryExpr, variables: Divisibilities) -> int:
    if expression.op == "not":
        return 1  # ~x = -x - 1: odd when x is even
    return _of(expression.operand, variables)  # neg, abs, and the rounding ops (the identity on integers)


def _cast(expression: CastExpr, variables: Divisibilities) -> int:
    # Integer to integer keeps the low bits (truncation or extension); the caller caps at the new width.
    return _of(expression.operand, variables)


def _constant_value(expression: Expr) -> int | None:
    return int(expression.value) if isinstance(expression, Const) else None


def _binary(expression: BinaryExpr, variables: Divisibilities) -> int:
    lhs, rhs = _of(expression.lhs, variables), _of(expression.rhs, variables)
    rule = _BINARY_RULES.get(expression.op)
    if rule is not None:
        return rule(lhs, rhs)
    amount = _constant_value(expression.rhs)
    if expression.op == "floordiv":
        # a multiple of 2^a divided by 2^b (a >= b) is exact: a multiple of 2^(a-b)
        exact = amount is not None and amount > 0 and amount == power_of_two_part(amount) and lhs >= amount
        return lhs // amount if exact else 1
    return _shift(expression, lhs, amount)


def _shift(expression: BinaryExpr, lhs: int, amount: int | None) -> int:
    nbits = expression.type.dtype.nbits
    if expression.op == "shl":
        # x << s is x * 2^s modulo 2^nbits (0 when s is out of range, divisible by everything)
        return lhs << amount if amount is not None and 0 <= amount < nbits else lhs
    # shr by 0 <= s < nbits of a multiple of 2^a (a >= s) is exact; otherwise nothing is known (sign fill)
    return lhs >> amount if amount is not None and 0 <= amount < nbits and lhs > 1 << amount else 1


_BINARY_RULES: dict[str, Callable[[int, int], int]] = {
    "add": min,
    "sub": min,
    "mul": lambda lhs, rhs: lhs * rhs,
    "mod": min,  # x - y * floor(x / y)
    "max": min,  # one of the two
    "min": min,
    "and": max,  # a low bit is clear when it is clear in either operand
    "or": min,
    "xor": min,
}

#: one rule per expression class; a block index or a grid size is any int
_RULES: dict[type[Expr], Callable[..., int]] = {
    Var: _variable,
    Const: _constant,
    BlockIndex: _unknown,
    GridSize: _unknown,
    UnaryExpr: _unary,
    BinaryExpr: _binary,
    CastExpr: _cast,
}
