"""The DSL's math functions: reductions (sum, max, min), the unary functions Python has no operator for
(exp, sqrt, ...), and elementwise maximum and minimum.

Each one builds IR through the kernel being compiled; called outside a kernel, it raises. Arguments may be
Python numbers (converted to constants) or IR values.
"""

from __future__ import annotations

from tilevm.dtypes import DType
from tilevm.errors import CompilationError
from tilevm.ir import Expr, Reduce, ScalarType, TileType, Unary, UnaryExpr
from tilevm.ir.accumulators import reduce_dtype
from tilevm.ir.expr import UNARY_OPS
from tilevm.lang.builtin_arguments import dtype_argument, emit_output, is_int, tile_or_global
from tilevm.lang.context import current
from tilevm.lang.operators import UNARY_OPERATORS, binary_operation, checked
from tilevm.lang.values import describe_value, is_ir

__all__ = [
    "abs",
    "ceil",
    "cos",
    "exp",
    "exp2",
    "floor",
    "log",
    "log2",
    "max",
    "maximum",
    "min",
    "minimum",
    "round",
    "rsqrt",
    "sin",
    "sqrt",
    "sum",
    "tanh",
    "trunc",
]


def _reduction(op: str):
    def reduce(value: Expr, dim: int, keepdim: bool = False, dtype: DType | None = None) -> Expr:
        value = tile_or_global(value, op, (TileType,))
        if not is_int(dim):
            raise CompilationError(f"{op}'s dim must be a compile-time int, got {describe_value(dim)}")
        dtype = reduce_dtype(op, value.type.dtype) if dtype is None else dtype_argument(dtype, op)
        return emit_output(op, Reduce, operand=value, op=op, dtype=dtype, dim=dim, keepdim=keepdim)

    reduce.__name__ = reduce.__qualname__ = op
    default = "the operand's dtype"
    if op == "sum":
        default = "int32 for integers (uint32 unsigned, 64 bits kept), float32 for floats"
    reduce.__doc__ = (
        f"The {op} of a register tile over ``dim``, computed in and returned as ``dtype`` (by default "
        f"{default}; see ``tilevm.ir.Reduce``)."
    )
    return reduce


sum, max, min = _reduction("sum"), _reduction("max"), _reduction("min")


def _unary(op: str):
    def unary(value: Expr) -> Expr:
        if is_ir(value) and isinstance(value.type, ScalarType):
            current(op)
            return checked(UnaryExpr(op, value))
        return emit_output(op, Unary, op=op, operand=value)

    unary.__name__ = unary.__qualname__ = op
    unary.__doc__ = f"Elementwise {op} of a register tile or a scalar."
    return unary


# One builtin for each of the IR's unary ops that Python spells with no operator (it has -x and ~x); a new op
# in UNARY_OPS fails this unpacking until it is named here.
abs, exp, exp2, log, log2, sqrt, rsqrt, sin, cos, tanh, floor, ceil, round, trunc = (
    _unary(op) for op in UNARY_OPS if op not in {ir_op for ir_op, _ in UNARY_OPERATORS.values()}
)


def _elementwise_max_min(op: str):
    def combine(lhs: object, rhs: object) -> Expr:
        return binary_operation(op, lhs, rhs)

    combine.__name__ = combine.__qualname__ = "maximum" if op == "max" else "minimum"
    combine.__doc__ = f"Elementwise {op} of two tiles or scalars (NaN is ignored, as by PTX)."
    return combine


maximum, minimum = _elementwise_max_min("max"), _elementwise_max_min("min")
