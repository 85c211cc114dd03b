"""Runs code generation's expression handlers on this CPU: LLVM compiles the same LLVM IR for the host, so
what the handlers compute (arithmetic, casts, vector moves) is checked here against ``tilevm.ir.semantics``,
and on the GPU only what the NVPTX back end adds (intrinsics, inline PTX) is left to check.

``compile_host({name: (expr, inputs)})`` builds one LLVM function per expression, ``void name(ptr in0, ...,
ptr out, i64 n)``, which loops over ``n`` elements: it loads each input Var's value (a scalar or a vector),
evaluates the expression through ``FunctionContext.value``, and stores the result. Memory holds codes: each
element as an unsigned integer of whole bytes (``code_storage_dtype``), bitcast or truncated to the register's
LLVM type. One module, optimised at O3 and JIT-compiled once for all its functions.

x86 has no instruction for some conversions LLVM emits calls for (float and double to bfloat, double to
half); the module defines them, with the rounding of the IEEE standard (``_LIBCALLS``).
"""

from __future__ import annotations

import ctypes
import os

os.environ["LLVMLITE_ENABLE_IR_LAYER_TYPED_POINTERS"] = "0"

import llvmlite.binding as llvm
import numpy as np

from tilevm.codegen import arithmetic, casts, expressions
from tilevm.codegen.context import FunctionContext
from tilevm.codegen.llvm_types import ir, llvm_type
from tilevm.codegen.targets import TARGETS
from tilevm.dtypes import DType, code_storage_dtype
from tilevm.ir.expr import Expr, Var
from tilevm.ir.semantics import to_carrier as semantic_carrier
from tilevm.ir.types import ScalarType, VectorType
from tilevm.runtime.cpu.registers import from_carrier, holder, to_carrier

__all__ = [
    "ModuleContext",
    "element_address",
    "from_memory",
    "memory_type",
    "to_memory",
    "HostFunction",
    "codes_of",
    "compile_host",
    "from_codes",
    "same_codes",
    "sample_codes",
    "special_codes",
]

HANDLERS = {**expressions.EXPRESSIONS, **arithmetic.EXPRESSIONS, **casts.EXPRESSIONS}

# f32 -> bf16 rounds to nearest even (adding 0x7FFF plus the kept low bit carries exactly when the dropped
# half is above the midpoint, or at it with an odd kept bit); NaN gives the canonical 0x7FC0. f64 -> 16 bits:
# rounding to odd in float32 first (truncate, then set the low bit when inexact) keeps the one rounding.
_LIBCALLS = """
define bfloat @__truncsfbf2(float %x) {
  %bits = bitcast float %x to i32
  %kept = lshr i32 %bits, 16
  %odd = and i32 %kept, 1
  %bias = add i32 %odd, 32767
  %sum = add i32 %bits, %bias
  %high = lshr i32 %sum, 16
  %nan = fcmp uno float %x, 0.0
  %code = select i1 %nan, i32 32704, i32 %high
  %short = trunc i32 %code to i16
  %result = bitcast i16 %short to bfloat
  ret bfloat %result
}
declare double @llvm.fabs.f64(double)
define internal float @round_to_odd(double %x) {
  %nearest = fptrunc double %x to float
  %back = fpext float %nearest to double
  %magnitude = call double @llvm.fabs.f64(double %x)
  %rounded = call double @llvm.fabs.f64(double %back)
  %away = fcmp ogt double %rounded, %magnitude
  %bits = bitcast float %nearest to i32
  %toward = sub i32 %bits, 1
  %truncated = select i1 %away, i32 %toward, i32 %bits
  %inexact = fcmp one double %back, %x
  %sticky = zext i1 %inexact to i32
  %odd = or i32 %truncated, %sticky
  %result = bitcast i32 %odd to float
  ret float %result
}
define bfloat @__truncdfbf2(double %x) {
  %odd = call float @round_to_odd(double %x)
  %result = call bfloat @__truncsfbf2(float %odd)
  ret bfloat %result
}
define half @__truncdfhf2(double %x) {
  %odd = call float @round_to_odd(double %x)
  %result = fptrunc float %odd to half
  ret half %result
}
"""


def codes_of(carrier: np.ndarray, dtype: DType) -> np.ndarray:
    """The codes (bits) of ``tilevm.ir.semantics`` carrier values of ``dtype``."""
    return np.ascontiguousarray(from_carrier(np.asarray(carrier), dtype)).view(code_storage_dtype(dtype))


def from_codes(codes: np.ndarray, dtype: DType) -> np.ndarray:
    """The semantics' carrier values of codes of ``dtype``."""
    return to_carrier(np.ascontiguousarray(codes).view(holder(dtype)), dtype)


def same_codes(
    actual: np.ndarray, expected: np.ndarray, dtype: DType, signed_zero: bool = True
) -> np.ndarray:
    """Where ``actual`` and ``expected`` (codes of ``dtype``) differ: any NaN matches any NaN (payloads are
    the hardware's), and with ``signed_zero`` false, 0.0 matches -0.0."""
    equal = actual == expected
    if dtype.is_float:
        got, want = from_codes(actual, dtype), from_codes(expected, dtype)
        equal |= np.isnan(got) & np.isnan(want)
        if not signed_zero:
            equal |= (got == 0) & (want == 0)
    return ~equal


def memory_type(value_type: ScalarType | VectorType) -> ir.Type:
    element = ir.IntType(8 * np.dtype(code_storage_dtype(value_type.dtype)).itemsize)
    return ir.VectorType(element, value_type.length) if isinstance(value_type, VectorType) else element


def from_memory(builder: ir.IRBuilder, value: ir.Value, value_type: ScalarType | VectorType) -> ir.Value:
    register = llvm_type(value_type)
    element = register.element if isinstance(register, ir.VectorType) else register
    if not isinstance(element, ir.IntType):
        return builder.bitcast(value, register)
    return value if value.type == register else builder.trunc(value, register)


def to_memory(builder: ir.IRBuilder, value: ir.Value, value_type: ScalarType | VectorType) -> ir.Value:
    memory = memory_type(value_type)
    if value.type == memory:
        return value
    element = value.type.element if isinstance(value.type, ir.VectorType) else value.type
    return builder.zext(value, memory) if isinstance(element, ir.IntType) else builder.bitcast(value, memory)


def element_address(builder: ir.IRBuilder, base: ir.Value, index: ir.Value, memory: ir.Type) -> ir.Value:
    """Element ``index`` of an array of ``memory`` values, packed as numpy packs them (LLVM pads a vector
    of 14 bytes to 16 in an array of vectors, not in an array of arrays)."""
    if isinstance(memory, ir.VectorType):
        memory = ir.ArrayType(memory.element, memory.count)
    return builder.gep(base, [index], source_etype=memory)


class ModuleContext(FunctionContext):
    """A function context that shares its intrinsic declarations with the other functions of its module
    (code generation makes one kernel a module; the host module holds many functions)."""

    def intrinsic(self, name: str, return_type: ir.Type, argument_types: list[ir.Type]) -> ir.Function:
        declared = self.module.globals.get(name)
        return declared if declared is not None else super().intrinsic(name, return_type, argument_types)


def _define(module: ir.Module, name: str, expr: Expr, inputs: tuple[Var, ...]) -> None:
    pointer = ir.PointerType()
    signature = ir.FunctionType(ir.VoidType(), [pointer] * (len(inputs) + 1) + [ir.IntType(64)])
    function = ir.Function(module, signature, name=name)
    context = ModuleContext(module, function, TARGETS["sm_90"], None, {}, HANDLERS)
    builder = context.builder
    loop, done = function.append_basic_block("loop"), function.append_basic_block("done")
    start = builder.block
    builder.branch(loop)
    builder.position_at_end(loop)
    index = builder.phi(ir.IntType(64))
    index.add_incoming(ir.Constant(ir.IntType(64), 0), start)
    for variable, argument in zip(inputs, function.args):
        memory = memory_type(variable.type)
        loaded = builder.load(element_address(builder, argument, index, memory), typ=memory, align=1)
        context.bind(variable, from_memory(builder, loaded, variable.type))
    result = context.value(expr)
    memory = memory_type(expr.type)
    address = element_address(builder, function.args[len(inputs)], index, memory)
    builder.store(to_memory(builder, result, expr.type), address, align=1)
    following = builder.add(index, ir.Constant(ir.IntType(64), 1))
    index.add_incoming(following, builder.block)
    builder.cbranch(builder.icmp_unsigned("<", following, function.args[-1]), loop, done)
    builder.position_at_end(done)
    context.finish()


class HostFunction:
    """One compiled expression: call it on arrays of codes (``[n]`` for a scalar input, ``[n, length]`` for
    a vector), one per input Var; it returns the result's codes."""

    def __init__(self, address: int, inputs: tuple[Var, ...], result: ScalarType | VectorType, keep: object):
        arguments = [ctypes.c_void_p] * (len(inputs) + 1) + [ctypes.c_int64]
        self._function = ctypes.CFUNCTYPE(None, *arguments)(address)
        self._inputs, self._result, self._keep = inputs, result, keep

    def __call__(self, *arrays: np.ndarray, count: int | None = None) -> np.ndarray:
        """The results for ``arrays``, or ``count`` results of an expression without inputs."""
        count = len(arrays[0]) if arrays else count
        converted = []
        for array, variable in zip(arrays, self._inputs, strict=True):
            array = np.ascontiguousarray(array, dtype=code_storage_dtype(variable.type.dtype))
            assert len(array) == count and array.shape[1:] == _shape(variable.type)
            converted.append(array)
        # poisoned, so that an element the loop skips cannot pass for a result
        output = np.full((count, *_shape(self._result)), 0xA5, dtype=code_storage_dtype(self._result.dtype))
        self._function(*(array.ctypes.data for array in converted), output.ctypes.data, count)
        return output


def _shape(value_type: ScalarType | VectorType) -> tuple[int, ...]:
    return (value_type.length,) if isinstance(value_type, VectorType) else ()


_initialized: list[bool] = []


def compile_host(cases: dict[str, tuple[Expr, tuple[Var, ...]]]) -> dict[str, HostFunction]:
    """JIT-compile each ``name: (expr, inputs)`` for this CPU (one module, O3) and return the functions."""
    if not _initialized:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        _initialized.append(True)
    module = ir.Module(name="host")
    for name, (expr, inputs) in cases.items():
        _define(module, name, expr, inputs)
    parsed = llvm.parse_assembly(str(module) + _LIBCALLS)
    parsed.verify()
    # The IR gets O3, whose folds the handlers must survive; x86 instruction selection runs unoptimised,
    # which is ten times faster and computes the same. The harness's own loop is not vectorized or unrolled.
    # The host's CPU without its native bfloat16 conversions (AVX512-BF16, AVX-NE-CONVERT), which flush
    # bfloat16 subnormals where the reference does not (seen on the GPU machine's host)
    features = llvm.get_host_cpu_features()
    for name in ("avx512bf16", "avxneconvert", "amx-bf16"):
        if name in features:
            features[name] = False
    machine = llvm.Target.from_default_triple().create_target_machine(
        cpu=llvm.get_host_cpu_name(), features=features.flatten(), opt=0
    )
    parsed.triple = llvm.get_process_triple()
    parsed.data_layout = str(machine.target_data)
    tuning = llvm.create_pipeline_tuning_options(speed_level=3)
    tuning.loop_vectorization = tuning.slp_vectorization = tuning.loop_unrolling = False
    builder = llvm.create_pass_builder(machine, tuning)
    builder.getModulePassManager().run(parsed, builder)
    engine = llvm.create_mcjit_compiler(parsed, machine)
    engine.finalize_object()
    return {
        name: HostFunction(engine.get_function_address(name), inputs, expr.type, engine)
        for name, (expr, inputs) in cases.items()
    }


def special_codes(dtype: DType) -> np.ndarray:
    """The codes of ``dtype``'s values that operators treat specially: zeros, ones, the extremes, and for
    floats infinities, NaN, subnormals, ties of rounding."""
    storage = code_storage_dtype(dtype)
    if dtype.is_float:
        values = [
            0.0,
            -0.0,
            np.inf,
            -np.inf,
            np.nan,
            1.0,
            -1.0,
            0.5,
            -1.5,
            2.5,
            1e-40,
            -1e-45,
            3e38,
            -65504.0,
        ]
        return codes_of(semantic_carrier(np.array(values), dtype), dtype)
    values = [0, 1, -1, 2, dtype.min_value, dtype.max_value, dtype.min_value + 1, dtype.max_value - 1]
    return np.array([value & ((1 << dtype.nbits) - 1) for value in values], dtype=np.uint64).astype(storage)


def sample_codes(dtype: DType, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` codes of ``dtype``: every code in turn when there are at most ``count`` of them, else random
    bits mixed with ordinary values (rounding ties, small integers, shift amounts) and ``special_codes``."""
    storage = code_storage_dtype(dtype)
    if 1 << dtype.nbits <= count:
        return rng.permutation(np.resize(np.arange(1 << dtype.nbits, dtype=np.uint64).astype(storage), count))
    codes = rng.integers(0, 1 << dtype.nbits, count, dtype=np.uint64).astype(storage)
    third = count // 3
    if dtype.is_float:
        ordinary = rng.standard_normal(third) * np.exp2(rng.integers(-20, 20, third))
        ordinary = np.concatenate([ordinary, rng.integers(-300, 300, third) / 4.0])  # ties and integers
        ordinary = codes_of(semantic_carrier(ordinary, dtype), dtype)
    else:
        # small values of both signs (shift amounts in and out of range) as codes: an int64 wraps to uint64
        ordinary = rng.integers(-(dtype.nbits + 3), dtype.nbits + 3, 2 * third).astype(np.uint64)
        ordinary = (ordinary & np.uint64((1 << dtype.nbits) - 1)).astype(storage)
    chosen = np.concatenate([special_codes(dtype), ordinary])
    codes[: len(chosen)] = chosen
    return rng.permutation(codes)
