"""Thread IR's unary and binary operators as LLVM instructions, on scalars and element by element on vectors,
computing exactly what ``tilevm.ir.semantics`` defines for the machine dtypes.

- Floats: ``add``, ``sub``, ``mul``, ``div``, ``sqrt`` are IEEE operations rounded to nearest even (no
  fast-math flags: ``div.rn``, ``sqrt.rn``, no contraction into fma). On float16 and bfloat16 LLVM computes
  div and sqrt in float32 and rounds the result, which is the correctly rounded result: float32's 24 bits
  are at least 2p + 2 for p = 11 and 8, where double rounding is innocuous (``tilevm.passes.lower.widening``).
  On sm_80, bfloat16 add, sub and mul have no instruction; LLVM emits ``fma.rn.bf16`` (``a * 1.0 + b``,
  ``a * b + -0.0``), one rounding of the exact result. Vectors of two halves stay packed (``add.rn.f16x2``).
- ``max``/``min`` ignore NaN (``llvm.maxnum``, PTX ``max.f32``); comparisons are ordered (false with NaN)
  except ``ne``, which is unordered (true with NaN).
- ``floor``, ``ceil``, ``round`` (half to even), ``trunc``: LLVM's rounding intrinsics (``cvt.rmi`` ...).
- ``exp``, ``exp2``, ``log``, ``log2``, ``sin``, ``cos``, ``tanh``, ``rsqrt``: PTX's approximate
  instructions on float32 (``ex2.approx.f32`` of ``x * log2(e)`` for exp, ``lg2.approx.f32`` times ln 2 for
  log, ``sin.approx.f32``, ``tanh.approx.f32``, ``rsqrt.approx.f32``), in the forms that keep subnormals (the
  ``.ftz`` forms flush subnormal inputs and results to zero: ``lg2`` of 1e-40 would be -inf). float16 and
  bfloat16 operands are computed in float32 and rounded. There is no libdevice.
- Integers wrap (add, sub, mul, neg, abs); ``floordiv`` and ``mod`` floor as Python does (the remainder has
  the divisor's sign), and ``MIN // -1`` wraps to MIN; a zero divisor is undefined. A shift amount is read as
  unsigned: amounts of ``nbits`` or more give 0, or the sign fill for ``shr`` of a signed value (PTX's
  clamping; LLVM's shifts are poison there, so the amount is clamped and checked).
- bool: arithmetic on 0 and 1, then ``!= 0`` (``add`` is or, ``mul`` and); ``not`` is logical.

>>> from tilevm.codegen.arithmetic import EXPRESSIONS
>>> sorted(cls.__name__ for cls in EXPRESSIONS)
['BinaryExpr', 'UnaryExpr']
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from tilevm.codegen.context import FunctionContext
from tilevm.codegen.expressions import poison
from tilevm.codegen.llvm_types import BFloatType, ir
from tilevm.dtypes import DType
from tilevm.ir.expr import COMPARISON_OPS, BinaryExpr, UnaryExpr

__all__ = ["EXPRESSIONS", "each_element", "intrinsic_suffix", "like", "overloaded", "splat"]

_F32 = ir.FloatType()
_I32 = ir.IntType(32)


def intrinsic_suffix(value_type: ir.Type) -> str:
    """The type suffix of an overloaded LLVM intrinsic: ``f16``, ``bf16``, ``i32``, ``v2f16`` ..."""
    if isinstance(value_type, ir.VectorType):
        return f"v{value_type.count}{intrinsic_suffix(value_type.element)}"
    if isinstance(value_type, ir.IntType):
        return f"i{value_type.width}"
    return {ir.HalfType: "f16", BFloatType: "bf16", ir.FloatType: "f32", ir.DoubleType: "f64"}[
        type(value_type)
    ]


def overloaded(context: FunctionContext, name: str, *arguments: ir.Value) -> ir.Value:
    """``llvm.<name>.<type>`` on ``arguments``, returning their (first one's) type: ``llvm.fabs.v2f16``."""
    value_type = arguments[0].type
    return context.call(f"llvm.{name}.{intrinsic_suffix(value_type)}", value_type, arguments)


def splat(value_type: ir.Type, value: int | float) -> ir.Constant:
    """The constant ``value`` of a scalar type, or in every element of a vector type."""
    if isinstance(value_type, ir.VectorType):
        return ir.Constant(value_type, [ir.Constant(value_type.element, value)] * value_type.count)
    return ir.Constant(value_type, value)


def each_element(
    context: FunctionContext,
    value: ir.Value,
    result_element: ir.Type,
    function: Callable[[ir.Value], ir.Value],
) -> ir.Value:
    """``function`` on a scalar, or on each element of a vector (for instructions that exist only on
    scalars: PTX's approximate functions, conversions toward zero)."""
    if not isinstance(value.type, ir.VectorType):
        return function(value)
    builder = context.builder
    result = poison(ir.VectorType(result_element, value.type.count))
    for index in range(value.type.count):
        position = ir.Constant(_I32, index)
        result = builder.insert_element(result, function(builder.extract_element(value, position)), position)
    return result


def like(value_type: ir.Type, element: ir.Type) -> ir.Type:
    """``element``, as a vector as long as ``value_type`` when that is a vector."""
    if isinstance(value_type, ir.VectorType):
        return ir.VectorType(element, value_type.count)
    return element


# -- unary ---------------------------------------------------------------------------------------------------
#: log2(e) and ln(2) rounded to float32, the factors of exp and log around ex2 and lg2
_LOG2_E = float(np.float32(math.log2(math.e)))
_LN_2 = float(np.float32(math.log(2.0)))


def _nvvm(name: str) -> Callable[[FunctionContext, ir.Value], ir.Value]:
    return lambda context, value: context.call(f"llvm.nvvm.{name}", _F32, [value])


_APPROXIMATE: dict[str, Callable[[FunctionContext, ir.Value], ir.Value]] = {
    "exp2": _nvvm("ex2.approx.f"),
    "exp": lambda context, value: _nvvm("ex2.approx.f")(
        context, context.builder.fmul(value, ir.Constant(_F32, _LOG2_E))
    ),
    "log2": _nvvm("lg2.approx.f"),
    "log": lambda context, value: context.builder.fmul(
        _nvvm("lg2.approx.f")(context, value), ir.Constant(_F32, _LN_2)
    ),
    "sin": _nvvm("sin.approx.f"),
    "cos": _nvvm("cos.approx.f"),
    "tanh": _nvvm("tanh.approx.f32"),
    "rsqrt": _nvvm("rsqrt.approx.f"),
}
#: exact float operators: LLVM intrinsics (overloaded on the type, vectors included)
_FLOAT_INTRINSICS = {
    "abs": "fabs",
    "sqrt": "sqrt",
    "floor": "floor",
    "ceil": "ceil",
    "round": "roundeven",
    "trunc": "trunc",
}


def _approximate(context: FunctionContext, op: str, value: ir.Value) -> ir.Value:
    """``op`` through PTX's float32 approximate instruction, element by element; narrower floats are
    extended first and the result rounded back."""
    builder, function = context.builder, _APPROXIMATE[op]
    element = value.type.element if isinstance(value.type, ir.VectorType) else value.type
    if element == _F32:
        return each_element(context, value, _F32, lambda scalar: function(context, scalar))
    wide = builder.fpext(value, like(value.type, _F32))
    result = each_element(context, wide, _F32, lambda scalar: function(context, scalar))
    return builder.fptrunc(result, value.type)


def _float_unary(context: FunctionContext, op: str, value: ir.Value) -> ir.Value:
    if op == "neg":
        return context.builder.fneg(value)
    if op in _APPROXIMATE:
        return _approximate(context, op, value)
    return overloaded(context, _FLOAT_INTRINSICS[op], value)


def _integer_unary(context: FunctionContext, op: str, value: ir.Value, dtype: DType) -> ir.Value:
    builder = context.builder
    if op == "not":  # bitwise on integers, logical on bool: both are xor with all ones
        return builder.xor(value, splat(value.type, -1))
    if dtype.kind == "bool" or op not in ("neg", "abs") or (op == "abs" and not dtype.is_signed):
        return value  # rounding is the identity on integers, as neg and abs are on bool
    if op == "neg":
        return builder.sub(splat(value.type, 0), value)
    # abs of the minimum wraps to itself (the flag says: not poison)
    return overloaded(context, "abs", value, ir.Constant(ir.IntType(1), 0))


def _unary(context: FunctionContext, expr: UnaryExpr) -> ir.Value:
    value = context.value(expr.operand)
    dtype = expr.operand.type.dtype
    if dtype.is_float:
        return _float_unary(context, expr.op, value)
    return _integer_unary(context, expr.op, value, dtype)


# -- binary --------------------------------------------------------------------------------------------------
Binary = Callable[[FunctionContext, ir.Value, ir.Value], ir.Value]

_SYMBOLS = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}

_FLOAT_BINARY: dict[str, Binary] = {
    "add": lambda context, lhs, rhs: context.builder.fadd(lhs, rhs),
    "sub": lambda context, lhs, rhs: context.builder.fsub(lhs, rhs),
    "mul": lambda context, lhs, rhs: context.builder.fmul(lhs, rhs),
    "div": lambda context, lhs, rhs: context.builder.fdiv(lhs, rhs),
    "max": lambda context, lhs, rhs: overloaded(context, "maxnum", lhs, rhs),
    "min": lambda context, lhs, rhs: overloaded(context, "minnum", lhs, rhs),
}

#: bool operators on i1: the 0/1 result of the integer operator, tested ``!= 0`` (a zero divisor is
#: undefined, so the divisor is 1: ``a // 1`` is a, ``a % 1`` is 0; a 1-bit value shifted by 1 or more is 0)
_BOOL_BINARY: dict[str, Binary] = {
    "add": lambda context, lhs, rhs: context.builder.or_(lhs, rhs),
    "sub": lambda context, lhs, rhs: context.builder.xor(lhs, rhs),
    "mul": lambda context, lhs, rhs: context.builder.and_(lhs, rhs),
    "max": lambda context, lhs, rhs: context.builder.or_(lhs, rhs),
    "min": lambda context, lhs, rhs: context.builder.and_(lhs, rhs),
    "and": lambda context, lhs, rhs: context.builder.and_(lhs, rhs),
    "or": lambda context, lhs, rhs: context.builder.or_(lhs, rhs),
    "xor": lambda context, lhs, rhs: context.builder.xor(lhs, rhs),
    "floordiv": lambda context, lhs, rhs: lhs,
    "mod": lambda context, lhs, rhs: splat(lhs.type, 0),
    "shl": lambda context, lhs, rhs: context.builder.and_(lhs, context.builder.not_(rhs)),
    "shr": lambda context, lhs, rhs: context.builder.and_(lhs, context.builder.not_(rhs)),
}


def _integer_binary(
    context: FunctionContext, op: str, lhs: ir.Value, rhs: ir.Value, dtype: DType
) -> ir.Value:
    builder = context.builder
    simple = {
        "add": builder.add,
        "sub": builder.sub,
        "mul": builder.mul,
        "and": builder.and_,
        "or": builder.or_,
        "xor": builder.xor,
    }
    if op in simple:
        return simple[op](lhs, rhs)
    if op in ("max", "min"):
        return overloaded(context, ("s" if dtype.is_signed else "u") + op, lhs, rhs)
    if op in ("shl", "shr"):
        return _shift(context, op, lhs, rhs, dtype)
    if dtype.is_signed:
        return _floor_division(context, op, lhs, rhs)
    return (builder.udiv if op == "floordiv" else builder.urem)(lhs, rhs)


def _floor_division(context: FunctionContext, op: str, lhs: ir.Value, rhs: ir.Value) -> ir.Value:
    """Python's ``//`` or ``%`` of signed integers from LLVM's truncating ``sdiv``/``srem``: where the
    remainder is nonzero and its sign differs from the divisor's, the quotient is one less and the remainder
    gains the divisor. ``MIN / -1`` overflows, which is undefined in LLVM, so a divisor of -1 divides by 1
    and the quotient is negated (wrapping, as the semantics do)."""
    builder, value_type = context.builder, lhs.type
    power = _power_of_two(rhs)
    if power is not None:
        # by 2^k, Python's floor division is an arithmetic shift and its modulo the k low bits (LLVM
        # does not find these through the general form below: 8 instructions for x // 8)
        if op == "mod":
            return builder.and_(lhs, ir.Constant(value_type, (1 << power) - 1))
        return builder.ashr(lhs, ir.Constant(value_type, power))
    minus_one = builder.icmp_signed("==", rhs, splat(value_type, -1))
    divisor = builder.select(minus_one, splat(value_type, 1), rhs)
    remainder = builder.srem(lhs, divisor)
    zero = splat(value_type, 0)
    signs_differ = builder.icmp_signed("<", builder.xor(remainder, rhs), zero)
    adjust = builder.and_(builder.icmp_signed("!=", remainder, zero), signs_differ)
    if op == "mod":
        return builder.select(adjust, builder.add(remainder, rhs), remainder)
    quotient = builder.sub(builder.sdiv(lhs, divisor), builder.zext(adjust, value_type))
    return builder.select(minus_one, builder.sub(zero, lhs), quotient)


def _power_of_two(value: ir.Value) -> int | None:
    """k when ``value`` is the scalar constant 2^k (k >= 0), else None."""
    if not isinstance(value, ir.Constant) or not isinstance(value.constant, int) or value.constant <= 0:
        return None
    return value.constant.bit_length() - 1 if value.constant & (value.constant - 1) == 0 else None


def _shift(context: FunctionContext, op: str, value: ir.Value, amount: ir.Value, dtype: DType) -> ir.Value:
    """PTX's clamped shifts: the amount read as unsigned, ``nbits`` or more shifting every bit out. The
    amount is clamped before the shift: NVPTX folds ``select(amount >= 64, 0, x << amount)`` into PTX's
    own clamping ``shl.b64``, whose amount is 32 bits, so an amount of 2^32 or more would shift by its low
    bits; clamped first, it is at most 64 there (seen on an H100)."""
    builder, value_type = context.builder, value.type
    if op == "shr" and dtype.is_signed:
        # an arithmetic shift by nbits - 1 already leaves only copies of the sign bit
        clamped = overloaded(context, "umin", amount, splat(value_type, dtype.nbits - 1))
        return builder.ashr(value, clamped)
    clamped = overloaded(context, "umin", amount, splat(value_type, dtype.nbits))
    too_far = builder.icmp_unsigned("==", clamped, splat(value_type, dtype.nbits))
    shifted = builder.shl(value, clamped) if op == "shl" else builder.lshr(value, clamped)
    return builder.select(too_far, splat(value_type, 0), shifted)


def _compare(context: FunctionContext, op: str, lhs: ir.Value, rhs: ir.Value, dtype: DType) -> ir.Value:
    builder, symbol = context.builder, _SYMBOLS[op]
    if dtype.is_float:
        # ordered: false when either is NaN; ne alone is unordered, true when either is NaN
        compare = builder.fcmp_unordered if op == "ne" else builder.fcmp_ordered
        return compare(symbol, lhs, rhs)
    compare = builder.icmp_signed if dtype.is_signed else builder.icmp_unsigned
    return compare(symbol, lhs, rhs)


def _binary(context: FunctionContext, expr: BinaryExpr) -> ir.Value:
    lhs, rhs = context.value(expr.lhs), context.value(expr.rhs)
    dtype, op = expr.lhs.type.dtype, expr.op
    if op in COMPARISON_OPS:
        return _compare(context, op, lhs, rhs, dtype)
    if dtype.is_float:
        return _FLOAT_BINARY[op](context, lhs, rhs)
    if dtype.kind == "bool":
        return _BOOL_BINARY[op](context, lhs, rhs)
    return _integer_binary(context, op, lhs, rhs, dtype)


EXPRESSIONS = {UnaryExpr: _unary, BinaryExpr: _binary}
