"""Scalar expressions of Tile IR: variables, constants, block indices and arithmetic on them.

Expressions are immutable. Constants and operators compare structurally; a ``Var`` is compared by identity,
since two variables that print alike are still different values.

>>> from tilevm.dtypes import int32
>>> n = Var("n", ScalarType(int32))
>>> str(BinaryExpr("mul", n, Const(4, int32)).type)
'int32'
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, field
from typing import ClassVar

from tilevm.dtypes import DType, boolean, float32, int32
from tilevm.ir.types import ScalarType, Type, VectorType

__all__ = [
    "expect_choice",
    "ARITHMETIC_OPS",
    "BINARY_OPS",
    "BITWISE_OPS",
    "COMPARISON_OPS",
    "ROUNDING_MODES",
    "ROUNDING_OPS",
    "UNARY_OPS",
    "BinaryExpr",
    "BlockIndex",
    "CastExpr",
    "Const",
    "Expr",
    "GridSize",
    "IRTypeError",
    "Syntax",
    "UnaryExpr",
    "Var",
    "binary_result_dtype",
]

ARITHMETIC_OPS = ("add", "sub", "mul", "div", "floordiv", "mod", "max", "min")
BITWISE_OPS = ("and", "or", "xor", "shl", "shr")
COMPARISON_OPS = ("eq", "ne", "lt", "le", "gt", "ge")
BINARY_OPS = (*ARITHMETIC_OPS, *BITWISE_OPS, *COMPARISON_OPS)
#: the single list of unary operators: the DSL's builtins (tv.exp, ...) and the text form are derived from it
#: (docs/dsl.md's "Math operators" lists each op's domain, result dtype and exactness)
UNARY_OPS = (
    "neg", "not", "abs", "exp", "exp2", "log", "log2", "sqrt", "rsqrt", "sin", "cos", "tanh",
    "floor", "ceil", "round", "trunc",
)  # fmt: skip
#: round to an integral value in the operand's dtype (``round``: half to even); identity on integers, as torch
ROUNDING_OPS = ("floor", "ceil", "round", "trunc")
FLOAT_ONLY_OPS = ("div", "exp", "exp2", "log", "log2", "sqrt", "rsqrt", "sin", "cos", "tanh")
INTEGER_ONLY_OPS = ("floordiv", "mod", *BITWISE_OPS, "not")
#: how a cast rounds: to nearest (ties to even) or toward zero
ROUNDING_MODES = ("nearest", "zero")


class IRTypeError(Exception):
    """An instruction or expression whose operands break its type rule; the verifier adds the location."""


def expect_choice(value: str, choices: tuple[str, ...], what: str) -> None:
    """Raise ``IRTypeError`` unless ``value`` is one of ``choices`` (an op name, a mode, a shape).

    >>> expect_choice("fma", ("add", "mul"), "binary op")
    Traceback (most recent call last):
        ...
    tilevm.ir.expr.IRTypeError: unknown binary op 'fma'; expected one of add, mul
    """
    if value not in choices:
        raise IRTypeError(f"unknown {what} '{value}'; expected one of {', '.join(choices)}")


class Syntax(enum.Enum):
    """How an expression class is written in the text form; ``tilevm.ir.text_forms`` derives the rest from the
    class's dataclass fields, each written as its annotation says (see ``FieldKind``)."""

    CALL = "call"  # opname(field, ...): block_index(0)
    OPERATOR = "operator"  # the ``op`` field names the call: exp(%x), max(%a, %b)
    INFIX = "infix"  # lhs symbol rhs for ops with a symbol, else as OPERATOR: %a + %b
    PARAMETERIZED = "parameterized"  # opname<attributes>(operands): cast<float16, "zero">(%x)
    VARIABLE = "variable"  # %name
    LITERAL = "literal"  # 3, -inf, 7:int64


class Expr:
    """Base class of scalar expressions. Every expression has a ``type``; ``result_type`` also checks the
    expression's type rule."""

    #: how the class is written in the text form
    syntax: ClassVar[Syntax] = Syntax.CALL
    #: the name of the call in the text form (CALL and PARAMETERIZED syntax)
    opname: ClassVar[str] = ""
    #: the names the ``op`` field takes (OPERATOR and INFIX syntax)
    ops: ClassVar[tuple[str, ...]] = ()

    @property
    def type(self) -> Type:
        raise NotImplementedError

    def result_type(self) -> Type:
        """The type rule: the expression's type, or ``IRTypeError`` when its operands do not fit it (the
        operands' own rules are checked by the caller, which walks the sub-expressions)."""
        return self.type


_var_ids = itertools.count()


@dataclass(frozen=True, eq=False)
class Var(Expr):
    """A named value: a kernel parameter, a loop counter, or the result of an instruction.

    ``name`` is a hint for printing; the printer makes names unique.
    """

    name: str
    var_type: Type
    uid: int = field(default_factory=lambda: next(_var_ids), repr=False)
    syntax = Syntax.VARIABLE

    @property
    def type(self) -> Type:
        return self.var_type


@dataclass(frozen=True)
class Const(Expr):
    """A compile-time scalar: an int, a float (``inf``/``nan`` allowed) or a bool, of a dtype that defaults
    to the value's Python type (int32, float32, bool)."""

    value: int | float | bool
    dtype: DType = None  # type: ignore[assignment]  (filled in by __post_init__)
    syntax = Syntax.LITERAL

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
    opname = "block_index"

    @property
    def type(self) -> ScalarType:
        return ScalarType(int32)

    def result_type(self) -> ScalarType:
        return _expect_axis(self)


@dataclass(frozen=True)
class GridSize(Expr):
    """The number of blocks of the launch along grid axis 0, 1 or 2."""

    axis: int
    opname = "grid_size"

    @property
    def type(self) -> ScalarType:
        return ScalarType(int32)

    def result_type(self) -> ScalarType:
        return _expect_axis(self)


@dataclass(frozen=True)
class UnaryExpr(Expr):
    """``op(operand)`` on a scalar, one of ``UNARY_OPS``; in Thread IR also on a vector, elementwise."""

    op: str
    operand: Expr
    syntax = Syntax.OPERATOR
    ops = UNARY_OPS

    @property
    def type(self) -> Type:
        return self.operand.type

    def result_type(self) -> ScalarType:
        expect_choice(self.op, UNARY_OPS, "unary op")
        operand = _expect_register(self.operand, f"the operand of '{self.op}'")
        check_operator(self.op, operand.dtype)
        return operand


@dataclass(frozen=True)
class BinaryExpr(Expr):
    """``lhs op rhs`` on two scalars of the same dtype; comparisons give ``bool``. In Thread IR the operands
    may be two vectors of one type, computed element by element (packed ``add.f16x2`` and the like).

    Integer ``floordiv`` and ``mod`` follow Python (floor division; the remainder has the divisor's sign);
    a zero divisor is an error in the reference executor and undefined on the GPU. Shift amounts are
    clamped as PTX does: shifting by ``nbits`` or more (or by a negative amount, read as unsigned) gives 0,
    or the sign fill for ``shr`` of a signed value. The same rules hold for the elementwise ``Binary``.
    """

    op: str
    lhs: Expr
    rhs: Expr
    syntax = Syntax.INFIX
    ops = BINARY_OPS

    @property
    def type(self) -> ScalarType | VectorType:
        return _like(self.lhs.type, binary_result_dtype(self.op, self.lhs.type.dtype))

    def result_type(self) -> ScalarType | VectorType:
        expect_choice(self.op, BINARY_OPS, "binary op")
        lhs = _expect_register(self.lhs, f"the lhs of '{self.op}'")
        rhs = _expect_register(self.rhs, f"the rhs of '{self.op}'")
        if lhs != rhs:
            raise IRTypeError(f"'{self.op}' of a {lhs} and a {rhs}; cast one of them")
        check_operator(self.op, lhs.dtype)
        return self.type


@dataclass(frozen=True)
class CastExpr(Expr):
    """A scalar converted to ``dtype`` by the ``Cast`` instruction's rules, with ``rounding`` "nearest" or
    "zero" (the DSL's ``tv.cast`` on a scalar picks the default as it does for a tile). In Thread IR the
    operand may be a vector, converted element by element to a vector of ``dtype`` of the same length."""

    operand: Expr
    dtype: DType
    rounding: str = "nearest"
    syntax = Syntax.PARAMETERIZED
    opname = "cast"

    @property
    def type(self) -> ScalarType | VectorType:
        return _like(self.operand.type, self.dtype)

    def result_type(self) -> ScalarType | VectorType:
        _expect_register(self.operand, "the operand of a cast")
        expect_choice(self.rounding, ROUNDING_MODES, "rounding")
        return self.type


def binary_result_dtype(op: str, operand_dtype: DType) -> DType:
    """The dtype of ``a op b`` where both operands have ``operand_dtype``."""
    return boolean if op in COMPARISON_OPS else operand_dtype


def check_operator(op: str, dtype: DType) -> None:
    """Raise ``IRTypeError`` when ``op`` cannot apply to values of ``dtype`` (comparisons apply to any).

    >>> check_operator("mod", float32)
    Traceback (most recent call last):
    tilevm.ir.expr.IRTypeError: 'mod' needs integer operands, got float32
    """
    reason = operator_error(op, dtype)
    if reason:
        raise IRTypeError(reason)


def operator_error(op: str, dtype: DType) -> str | None:
    """Why ``op`` cannot apply to values of ``dtype``, or None when it can."""
    if op in FLOAT_ONLY_OPS and not dtype.is_float:
        hint = "; use '//' (floordiv) on integers" if op == "div" else ""
        return f"'{op}' needs floating-point operands, got {dtype}{hint}"
    if op in INTEGER_ONLY_OPS and dtype.is_float:
        return f"'{op}' needs integer operands, got {dtype}"
    if op in ROUNDING_OPS and dtype.kind == "bool":
        return f"'{op}' needs float or integer operands, got bool"
    if op in ROUNDING_OPS and dtype.is_float and dtype.min_value > 0:
        # e8m0 has no zero, so floor(0.5) would have no value
        return f"'{op}' needs a float format with zero, got {dtype}"
    return None


def _expect_register(operand: Expr, what: str) -> ScalarType | VectorType:
    """A scalar, or a Thread IR vector (Tile IR has no vector values, so there this means a scalar)."""
    operand_type = operand.type
    if not isinstance(operand_type, ScalarType | VectorType):
        raise IRTypeError(f"{what} must be a scalar, got {operand_type}")
    return operand_type


def _like(shape_of: Type, dtype: DType) -> ScalarType | VectorType:
    """A scalar of ``dtype``, or a vector of ``dtype`` as long as ``shape_of`` when that is a vector."""
    if isinstance(shape_of, VectorType):
        return VectorType(dtype, shape_of.length)
    return ScalarType(dtype)


def _expect_axis(expression: BlockIndex | GridSize) -> ScalarType:
    if expression.axis not in (0, 1, 2):
        raise IRTypeError(f"{expression.opname}'s axis is 0, 1 or 2, got {expression.axis}")
    return expression.type
