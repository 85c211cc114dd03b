"""Which integer scalar expressions are never negative, given which variables are not: what lets a bounds
check drop its ``index >= 0`` half (``tilevm.passes.lower.global_window``).

Never negative: a constant of 0 or more, a block index and a grid size, a global view's sizes (the
analysis marks them: a view of a negative size is an error), the sum, product, quotient (``floordiv``),
``min``, ``or`` and right shift of values that are never negative, the ``max`` and the ``and`` of anything
with one, a remainder (``mod``, which floors) by a positive constant, an unsigned value cast to a wider
signed integer. A sum or a product is taken not to wrap past the dtype's largest value: these are index
computations, and an index that wrapped would address the wrong element whatever its bounds check said
(lowering computes element addresses in int32).

>>> from tilevm.ir import BinaryExpr, Const, Var
>>> from tilevm.ir.types import ScalarType
>>> from tilevm.dtypes import int32
>>> n, k = Var("n", ScalarType(int32)), Var("k", ScalarType(int32))
>>> is_nonnegative(BinaryExpr("mul", BinaryExpr("add", n, Const(1)), Const(16)), frozenset({n}))
True
>>> is_nonnegative(BinaryExpr("sub", n, Const(1)), frozenset({n})), is_nonnegative(k, frozenset({n}))
(False, False)
"""

from __future__ import annotations

from collections.abc import Callable, Set

from tilevm.ir import BinaryExpr, BlockIndex, CastExpr, Const, Expr, GridSize, Var
from tilevm.passes.index_divisibility import is_integer_scalar

__all__ = ["is_nonnegative"]

#: the operations whose result is never negative when both operands are not (and none wraps) ...
_BOTH = frozenset({"add", "mul", "floordiv", "min", "or", "shr"})
#: ... and those for which one operand suffices
_EITHER = frozenset({"max", "and"})


def is_nonnegative(expression: Expr, known: Set[Var]) -> bool:
    """Whether the integer scalar ``expression`` is never negative, the variables in ``known`` being so
    (see the module's docstring); False for what is not an integer scalar."""
    if not is_integer_scalar(expression):
        return False
    rule = _RULES.get(type(expression))
    return rule is not None and rule(expression, known)


def _constant(expression: Const, known: Set[Var]) -> bool:
    return int(expression.value) >= 0


def _variable(expression: Var, known: Set[Var]) -> bool:
    return expression in known


def _always(expression: Expr, known: Set[Var]) -> bool:
    return True


def _cast(expression: CastExpr, known: Set[Var]) -> bool:
    source, target = expression.operand.type.dtype, expression.type.dtype
    if source.kind == "bool" or (not source.is_signed and source.nbits < target.nbits):
        return True  # every value fits, below the target's sign bit
    # a signed value keeps its value in a signed integer as wide or wider (an unsigned one as wide may not)
    signed = source.is_signed and target.is_signed
    return signed and source.nbits <= target.nbits and is_nonnegative(expression.operand, known)


def _binary(expression: BinaryExpr, known: Set[Var]) -> bool:
    op = expression.op
    if op == "mod":
        return isinstance(expression.rhs, Const) and int(expression.rhs.value) > 0
    if op in _EITHER:
        return is_nonnegative(expression.lhs, known) or is_nonnegative(expression.rhs, known)
    return op in _BOTH and is_nonnegative(expression.lhs, known) and is_nonnegative(expression.rhs, known)


_RULES: dict[type[Expr], Callable[..., bool]] = {
    Const: _constant,
    Var: _variable,
    BlockIndex: _always,
    GridSize: _always,
    CastExpr: _cast,
    BinaryExpr: _binary,
}
