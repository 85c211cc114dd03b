"""Scalar expressions of Tile IR: variables, constants, block indices and arithmetic on them.

Expressions are immutable. Constants and operators compare structurally; a ``Var`` is compared by identity,
since two variables that print alike are still different values.

>>> from tilevm.dtypes import int32
>>> n = Var("n", ScalarType(int32))
>>> str(BinaryExpr("mul", n, Const(4, int32)).type)
'int32'
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, fields

from tilevm.dtypes import DType, boolean, float32, int32
from tilevm.ir.types import ScalarType, Type

__all__ = [
    "ARITHMETIC_OPS",
    "BITWISE_OPS",
    "COMPARISON_OPS",
    "UNARY_OPS",
    "BinaryExpr",
    "BlockIndex",
    "CastExpr",
    "Const",
    "Expr",
    "GridSize",
    "UnaryExpr",
    "Var",
    "binary_result_dtype",
]

ARITHMETIC_OPS = ("add", "sub", "mul", "div", "floordiv", "mod", "max", "min")
BITWISE_OPS = ("and", "or", "xor", "shl", "shr")
COMPARISON_OPS = ("eq", "ne", "lt", "le", "gt", "ge")
UNARY_OPS = ("neg", "not", "abs", "exp", "exp2", "log", "log2", "sqrt", "rsqrt", "sin", "cos", "tanh")
FLOAT_ONLY_OPS = ("div", "exp", "exp2", "log", "log2", "sqrt", "rsqrt", "sin", "cos", "tanh")
INTEGER_ONLY_OPS = ("floordiv", "mod", *BITWISE_OPS, "not")


class Expr:
    """Base class of scalar expressions. Every expression has a ``type``."""

    @property
    def type(self) -> Type:
        raise NotImplementedError

    def children(self) -> tuple[Expr, ...]:
        """The expressions this one is built from (none for variables and constants)."""
        return tuple(
            getattr(self, item.name) for item in fields(self) if isinstance(getattr(self, item.name), Expr)
        )


_var_ids = itertools.count()


@dataclass(frozen=True, eq=False)
class Var(Expr):
    """A named value: a kernel parameter, a loop counter, or the result of an instruction.

    ``name`` is a hint for printing; the printer makes names unique.
    """

    name: str
    var_type: Type
    uid: int = field(default_factory=lambda: next(_var_ids), repr=False)

    @property
    def type(self) -> Type:
        return self.var_type

    def children(self) -> tuple[Expr, ...]:
        return ()


@dataclass(frozen=True)
class Const(Expr):
    """A compile-time scalar: an int, a float (``inf``/``nan`` allowed) or a bool, of a dtype that defaults
    to the value's Python type (int32, float32, bool)."""

    value: int | float | bool
    dtype: DType = None  # type: ignore[assignment]  (filled in by __post_init__)

    def __post_init__(self) -> None:
        if self.dtype is None:
            default = (
                boolean
                if isinstance(self.value, bool)
                else float32
                if isinstance(self.value, float)
                else int32
            )
            object.__setattr__(self, "dtype", default)

    @property
    def type(self) -> ScalarType:
        return ScalarType(self.dtype)


@dataclass(frozen=True)
class BlockIndex(Expr):
    """The index of the executing block along grid axis 0, 1 or 2."""

    axis: int

    @property
    def type(self) -> ScalarType:
        return ScalarType(int32)


@dataclass(frozen=True)
class GridSize(Expr):
    """The number of blocks of the launch along grid axis 0, 1 or 2."""

    axis: int

    @property
    def type(self) -> ScalarType:
        return ScalarType(int32)


@dataclass(frozen=True)
class UnaryExpr(Expr):
    op: str
    operand: Expr

    @property
    def type(self) -> Type:
        return self.operand.type


@dataclass(frozen=True)
class BinaryExpr(Expr):
    """``lhs op rhs`` on two scalars of the same dtype; comparisons give ``bool``.

    Integer ``floordiv`` and ``mod`` follow Python (floor division; the remainder has the divisor's sign);
    a zero divisor is an error in the reference executor and undefined on the GPU. Shift amounts are
    clamped as PTX does: shifting by ``nbits`` or more (or by a negative amount, read as unsigned) gives 0,
    or the sign fill for ``shr`` of a signed value. The same rules hold for the elementwise ``Binary``.
    """

    op: str
    lhs: Expr
    rhs: Expr

    @property
    def type(self) -> ScalarType:
        return ScalarType(binary_result_dtype(self.op, self.lhs.type.dtype))


@dataclass(frozen=True)
class CastExpr(Expr):
    """A scalar converted to ``dtype``, rounding as the ``Cast`` instruction does ("nearest" or "zero")."""

    operand: Expr
    dtype: DType
    rounding: str = "nearest"

    @property
    def type(self) -> ScalarType:
        return ScalarType(self.dtype)


def binary_result_dtype(op: str, operand_dtype: DType) -> DType:
    """The dtype of ``a op b`` where both operands have ``operand_dtype``."""
    return boolean if op in COMPARISON_OPS else operand_dtype


def operator_error(op: str, dtype: DType) -> str | None:
    """Why ``op`` cannot apply to values of ``dtype``, or None when it can."""
    if op in FLOAT_ONLY_OPS and not dtype.is_float:
        return f"'{op}' needs floating-point operands, got {dtype}"
    if op in INTEGER_ONLY_OPS and dtype.is_float:
        return f"'{op}' needs integer operands, got {dtype}"
    return None
