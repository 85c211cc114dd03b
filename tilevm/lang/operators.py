"""Python operators on kernel values: on Python values they are Python's; on IR scalars they build
expressions; on tiles they emit elementwise instructions.

The IR's operands of one instruction share a dtype; the DSL promotes where a user expects it, by inserting
casts: a Python number beside an IR value takes its dtype, a float scalar beside a float tile takes the
tile's dtype (``x_f16 * scale`` stays float16), and of two integer scalars of one signedness the narrower
widens (an int32 index plus an int64 offset is int64). Anything else, two tiles of different dtypes
included, is the IR's type error: cast one of them.
"""

from __future__ import annotations

import ast
import operator

from tilevm.dtypes import DType
from tilevm.errors import CompilationError
from tilevm.ir import Binary, BinaryExpr, CastExpr, Expr, IRTypeError, ScalarType, Unary, UnaryExpr
from tilevm.lang.context import current
from tilevm.lang.values import describe_value, is_ir, literal_like

__all__ = [
    "BINARY_OPERATORS",
    "COMPARE_OPERATORS",
    "binary_operation",
    "checked",
    "promoted",
    "unary_operation",
]

#: Python AST operator -> (IR op name, the Python function for compile-time values)
BINARY_OPERATORS: dict[type, tuple[str, object]] = {
    ast.Add: ("add", operator.add), ast.Sub: ("sub", operator.sub), ast.Mult: ("mul", operator.mul),
    ast.Div: ("div", operator.truediv), ast.FloorDiv: ("floordiv", operator.floordiv),
    ast.Mod: ("mod", operator.mod), ast.BitAnd: ("and", operator.and_), ast.BitOr: ("or", operator.or_),
    ast.BitXor: ("xor", operator.xor), ast.LShift: ("shl", operator.lshift),
    ast.RShift: ("shr", operator.rshift), ast.Pow: ("pow", operator.pow),
}  # fmt: skip
COMPARE_OPERATORS: dict[type, tuple[str, object]] = {
    ast.Eq: ("eq", operator.eq), ast.NotEq: ("ne", operator.ne), ast.Lt: ("lt", operator.lt),
    ast.LtE: ("le", operator.le), ast.Gt: ("gt", operator.gt), ast.GtE: ("ge", operator.ge),
}  # fmt: skip
UNARY_OPERATORS: dict[type, tuple[str, object]] = {
    ast.USub: ("neg", operator.neg), ast.Invert: ("not", operator.invert),
    ast.Not: ("logical_not", operator.not_), ast.UAdd: ("pos", operator.pos),
}  # fmt: skip


def binary_operation(op: str, lhs: object, rhs: object) -> object:
    """``lhs op rhs`` where at least one side is an IR value (the caller folds Python-only operands)."""
    anchor = lhs if is_ir(lhs) else rhs
    if not is_ir(anchor):
        raise CompilationError(f"'{op}' needs an IR operand here, got {describe_value(lhs)}")
    lhs, rhs = promoted(literal_like(lhs, anchor), literal_like(rhs, anchor))
    if op == "pow":
        raise CompilationError("'**' is not supported on kernel values; multiply, or use tv.exp2 and tv.log2")
    if isinstance(lhs.type, ScalarType) and isinstance(rhs.type, ScalarType):
        return _scalar_binary(op, lhs, rhs)
    context = current(op)
    return context.builder.emit_output(Binary, context.name_hint, op=op, lhs=lhs, rhs=rhs)


def promoted(lhs: Expr, rhs: Expr) -> tuple[Expr, Expr]:
    """``lhs`` and ``rhs`` with a scalar cast where the DSL promotes (see the module's docstring)."""
    lhs_dtype, rhs_dtype = lhs.type.dtype, rhs.type.dtype
    lhs_scalar, rhs_scalar = isinstance(lhs.type, ScalarType), isinstance(rhs.type, ScalarType)
    if lhs_scalar and rhs_scalar and lhs_dtype.is_integer and lhs_dtype.kind == rhs_dtype.kind:
        wider = max(lhs_dtype, rhs_dtype, key=lambda dtype: dtype.nbits)
        return _cast_to(lhs, wider), _cast_to(rhs, wider)
    if lhs_scalar != rhs_scalar and lhs_dtype.is_float and rhs_dtype.is_float:
        tile_dtype = rhs_dtype if lhs_scalar else lhs_dtype
        return _cast_to(lhs, tile_dtype), _cast_to(rhs, tile_dtype)
    return lhs, rhs


def _cast_to(value: Expr, dtype: DType) -> Expr:
    return value if value.type.dtype == dtype else CastExpr(value, dtype)


def _scalar_binary(op: str, lhs: Expr, rhs: Expr) -> Expr:
    return checked(BinaryExpr(op, lhs, rhs))


def checked(expression: Expr) -> Expr:
    """``expression`` once its class's type rule holds (the rule is defined in ``tilevm.ir.expr``)."""
    try:
        expression.result_type()
    except IRTypeError as error:
        raise CompilationError(str(error)) from None
    return expression


def unary_operation(op: str, operand: Expr) -> Expr:
    if op == "pos":
        return operand
    if op == "logical_not":  # Python's `not`: on ints it would mean `== 0`, so it takes bools only
        if operand.type.dtype.kind != "bool":
            raise CompilationError(f"'not' needs a bool, got {describe_value(operand)}; compare it first")
        op = "not"
    if isinstance(operand.type, ScalarType):
        return checked(UnaryExpr(op, operand))
    context = current(op)
    return context.builder.emit_output(Unary, context.name_hint, op=op, operand=operand)
