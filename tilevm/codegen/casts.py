"""``cast<dtype, rounding>(x)`` between machine dtypes as LLVM instructions, with the rules of
``tilevm.ir.semantics.cast`` (``tilevm.ir.elementwise.Cast``'s docstring), on scalars and element by element
on vectors. Lowering widens storage dtypes before any cast reaches code generation.

- to bool: ``x != 0`` (NaN gives true); from bool: 0 or 1.
- integer to integer: wraps (truncation, or extension by the *source's* signedness).
- float to integer: rounded by the rounding mode ("nearest": ``llvm.roundeven`` first; "zero": truncation),
  then saturated to the range with NaN giving 0: exactly ``llvm.fptosi.sat`` / ``llvm.fptoui.sat``.
- to a float, "nearest": one rounding of the exact value. LLVM's ``sitofp i32 -> bfloat`` rounds twice
  (to float32, then to bfloat16; on sm_80 and on x86), and folds a detour through float64 back into it, so
  32-bit integers reach bfloat16 through a float32 that keeps the rounding decision (``_sticky_float32``).
  64-bit integers go through float64 for every target, as the semantics define (rounding twice beyond 2^53).
- to a float, "zero": PTX's ``cvt.rz`` (NVVM's ``i2f.rz``, ``d2f.rz``, ``f2bf16.rz``, ``ff2f16x2.rz``;
  inline ``cvt.rz.f16.f32`` where NVVM has none): first to float32 toward zero, then to the 16-bit target
  toward zero; truncations compose, so this is the one truncation of the value. Two float32 elements of a
  vector narrow in one ``cvt.rz.f16x2.f32``.

>>> from tilevm.codegen.casts import EXPRESSIONS
>>> sorted(cls.__name__ for cls in EXPRESSIONS)
['CastExpr']
"""

from __future__ import annotations

from tilevm.codegen.arithmetic import each_element, intrinsic_suffix, like, overloaded, splat
from tilevm.codegen.context import FunctionContext
from tilevm.codegen.expressions import poison
from tilevm.codegen.llvm_types import BFloatType, ir, llvm_dtype
from tilevm.dtypes import DType, bfloat16, float16, float32
from tilevm.ir.expr import CastExpr
from tilevm.passes.lower.widening import is_machine

__all__ = ["EXPRESSIONS", "convert"]

_F32, _F64, _I16, _I32 = ir.FloatType(), ir.DoubleType(), ir.IntType(16), ir.IntType(32)


def convert(
    context: FunctionContext, value: ir.Value, source: DType, target: DType, rounding: str
) -> ir.Value:
    """``value`` (a scalar or vector of ``source``) cast to ``target`` with ``rounding``."""
    builder = context.builder
    if source == target:
        return value
    if target.kind == "bool":
        if source.is_float:
            return builder.fcmp_unordered("!=", value, splat(value.type, 0.0))
        return builder.icmp_unsigned("!=", value, splat(value.type, 0))
    result_type = like(value.type, llvm_dtype(target))
    if source.kind == "bool":
        return builder.uitofp(value, result_type) if target.is_float else builder.zext(value, result_type)
    if source.is_float and target.is_integer:
        if source.nbits == 16:
            # exact, and the conversions below are then float32's (x86's legalization of a saturating
            # conversion from bfloat gives 0 for values beyond the range)
            value = builder.fpext(value, like(value.type, _F32))
        if rounding == "nearest":
            value = overloaded(context, "roundeven", value)
        saturating = "fptosi.sat" if target.is_signed else "fptoui.sat"
        return context.call(
            f"llvm.{saturating}.{intrinsic_suffix(result_type)}.{intrinsic_suffix(value.type)}",
            result_type,
            [value],
        )
    if source.is_integer and target.is_integer:
        return _resize(builder, value, source, target, result_type)
    if rounding == "zero":
        return _toward_zero(context, value, source, target)
    return _nearest(context, value, source, target)


def _resize(
    builder: ir.IRBuilder, value: ir.Value, source: DType, target: DType, result_type: ir.Type
) -> ir.Value:
    if target.nbits == source.nbits:
        return value
    if target.nbits < source.nbits:
        return builder.trunc(value, result_type)
    return (builder.sext if source.is_signed else builder.zext)(value, result_type)


def _from_integer(builder: ir.IRBuilder, value: ir.Value, source: DType, result_type: ir.Type) -> ir.Value:
    return (builder.sitofp if source.is_signed else builder.uitofp)(value, result_type)


def _nearest(context: FunctionContext, value: ir.Value, source: DType, target: DType) -> ir.Value:
    """Round to nearest even: once, except 64-bit integers, which round to float64 first."""
    builder, result_type = context.builder, like(value.type, llvm_dtype(target))
    if source.is_integer:
        if source.nbits == 32 and target == bfloat16:
            value = _sticky_float32(context, value, source)
        elif source.nbits == 64:
            value = _from_integer(builder, value, source, like(value.type, _F64))
        else:
            return _from_integer(builder, value, source, result_type)
    elif source.nbits == target.nbits:  # float16 <-> bfloat16: exactly to float32, then one rounding
        value = builder.fpext(value, like(value.type, _F32))
    if value.type == result_type:
        return value
    widening = _bits(value.type) < _bits(result_type)
    return (builder.fpext if widening else builder.fptrunc)(value, result_type)


def _sticky_float32(context: FunctionContext, value: ir.Value, source: DType) -> ir.Value:
    """A 32-bit integer as a float32 that rounds to bfloat16 as the integer does. Magnitudes below 2^24 are
    exact in float32. Above, bfloat16's rounding bit is 2^16 or higher, so the magnitude's 8 low bits only
    matter as a sticky bit: OR-ed into bit 8, they leave 24 significant bits, which float32 holds exactly."""
    builder, value_type = context.builder, value.type
    magnitude = (
        overloaded(context, "abs", value, ir.Constant(ir.IntType(1), 0)) if source.is_signed else value
    )
    low = builder.and_(magnitude, splat(value_type, 0xFF))
    sticky = builder.select(
        builder.icmp_unsigned("!=", low, splat(value_type, 0)), splat(value_type, 0x100), splat(value_type, 0)
    )
    folded = builder.and_(builder.or_(magnitude, sticky), splat(value_type, ~0xFF))
    large = builder.icmp_unsigned(">=", magnitude, splat(value_type, 1 << 24))
    # |MIN| is 2^31, which the unsigned conversion reads right
    wide = builder.uitofp(builder.select(large, folded, magnitude), like(value.type, _F32))
    if not source.is_signed:
        return wide
    negative = builder.icmp_signed("<", value, splat(value_type, 0))
    return builder.select(negative, builder.fneg(wide), wide)


def _bits(value_type: ir.Type) -> int:
    element = value_type.element if isinstance(value_type, ir.VectorType) else value_type
    return {ir.HalfType: 16, BFloatType: 16, ir.FloatType: 32, ir.DoubleType: 64}[type(element)]


def _toward_zero(context: FunctionContext, value: ir.Value, source: DType, target: DType) -> ir.Value:
    """Round toward zero: to float32 toward zero (exactly, from what float32 holds), then to 16 bits."""
    builder = context.builder
    if source.is_float and source.nbits < target.nbits:
        return builder.fpext(value, like(value.type, llvm_dtype(target)))  # exact
    if source == float32:
        wide = value
    elif source.is_float:
        wide = builder.fpext(value, like(value.type, _F32))  # float16 <-> bfloat16
    elif source.nbits <= 16:
        wide = _from_integer(builder, value, source, like(value.type, _F32))  # exact
    elif source.nbits == 32:
        name = "llvm.nvvm.i2f.rz" if source.is_signed else "llvm.nvvm.ui2f.rz"
        wide = each_element(context, value, _F32, lambda scalar: context.call(name, _F32, [scalar]))
    else:  # 64 bits: to float64 to nearest, as the semantics do, then toward zero
        double = _from_integer(builder, value, source, like(value.type, _F64))
        wide = each_element(
            context, double, _F32, lambda scalar: context.call("llvm.nvvm.d2f.rz", _F32, [scalar])
        )
    if target == float32:
        return wide
    return _narrow_toward_zero(context, wide, target)


def _narrow_toward_zero(context: FunctionContext, value: ir.Value, target: DType) -> ir.Value:
    """float32 to float16 or bfloat16 toward zero; vector elements in pairs (``cvt.rz.f16x2.f32``)."""
    builder, element = context.builder, llvm_dtype(target)
    if not isinstance(value.type, ir.VectorType):
        return _narrow_one_toward_zero(context, value, target)
    count = value.type.count
    result = poison(ir.VectorType(element, count))
    pair_type = ir.VectorType(element, 2)
    pair_name = "llvm.nvvm.ff2f16x2.rz" if target == float16 else "llvm.nvvm.ff2bf16x2.rz"
    for start in range(0, count, 2):
        low = builder.extract_element(value, ir.Constant(_I32, start))
        if start + 1 == count:
            narrowed = _narrow_one_toward_zero(context, low, target)
            result = builder.insert_element(result, narrowed, ir.Constant(_I32, start))
            continue
        high = builder.extract_element(value, ir.Constant(_I32, start + 1))
        pair = context.call(pair_name, pair_type, [high, low])  # PTX's first source is the upper half
        for offset in range(2):
            part = builder.extract_element(pair, ir.Constant(_I32, offset))
            result = builder.insert_element(result, part, ir.Constant(_I32, start + offset))
    return result


def _narrow_one_toward_zero(context: FunctionContext, value: ir.Value, target: DType) -> ir.Value:
    if target == bfloat16:
        return context.call("llvm.nvvm.f2bf16.rz", llvm_dtype(bfloat16), [value])
    # NVVM has no float-to-half intrinsic toward zero
    bits = context.inline_ptx(_I16, "cvt.rz.f16.f32 $0, $1;", "=h,f", [value])
    return context.builder.bitcast(bits, llvm_dtype(float16))


def _cast(context: FunctionContext, expr: CastExpr) -> ir.Value:
    source, target = expr.operand.type.dtype, expr.dtype
    for dtype in (source, target):
        if not is_machine(dtype):
            raise context.error(
                f"code generation casts between machine dtypes only; a cast from {source} to {target} "
                "must be lowered first (tilevm.passes.lower.casts)"
            )
    return convert(context, context.value(expr.operand), source, target, expr.rounding)


EXPRESSIONS = {CastExpr: _cast}
