"""A Thread IR ``Program`` as an LLVM module holding one kernel.

The kernel is ``define ptx_kernel void @<name>(...)`` (without the ``ptx_kernel`` calling convention LLVM
silently emits a device ``.func``), with ``"nvvm.maxntid"="<num_threads>"`` (PTX ``.maxntid``) and, when the
program caps them, ``"nvvm.maxnreg"="<max_registers>"`` (PTX ``.maxnreg``). Pointer
parameters are ``ptr addrspace(1) noundef align A``, ``A`` the largest power of two that the parameter's
divisibility promises (at least its element's size); they are never ``noalias``, since the tensors of a
launch may overlap. A scalar parameter is its LLVM type, except that bool and integers narrower than a byte
travel as ``i8`` (the narrowest PTX parameter) and are truncated on entry.

The block's shared memory is one ``external addrspace(3)`` array of unknown size, ``@<name>_shared``
(PTX ``.extern .shared .align 16 .b8 <name>_shared[]``): the launch gives its size as the dynamic shared
memory, ``program.shared_bytes``, which the lowering already extends by its own scratch area. In a program
with ``wgmma`` it is aligned to 1024 bytes: the swizzle patterns that wgmma reads repeat every 1024 bytes of
the shared address space at most and must start on their boundaries, so offsets that the lowering aligns
within the dynamic shared memory are aligned addresses too (the SIMT interpreter places it at address 0).
"""

from __future__ import annotations

from tilevm.codegen.context import ExpressionHandler, FunctionContext, InstructionHandler
from tilevm.codegen.llvm_types import ir, llvm_type
from tilevm.codegen.targets import CodegenError, Target
from tilevm.ir.program import Param, Program
from tilevm.ir.rewrite import walk_instructions
from tilevm.ir.thread import Wgmma
from tilevm.ir.types import AddressSpace, PointerType, ScalarType

__all__ = ["TRIPLE", "build_module", "parameter_kind"]

TRIPLE = "nvptx64-nvidia-cuda"
#: the alignment of the dynamic shared memory, the widest access (a 16-byte vector, cp.async, ldmatrix row)
SHARED_ALIGNMENT = 16
#: its alignment where wgmma reads it: the 128-byte swizzle's pattern, 8 rows of 128 bytes (PTX ISA, "Matrix
#: Descriptor Format": a base offset of 0 wants patterns on 1024-byte boundaries)
WGMMA_SHARED_ALIGNMENT = 1024
_FLOAT_KINDS = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64"}


class _KernelAttributes(ir.FunctionAttributes):
    """Function attributes that also take LLVM's string attributes (``"nvvm.maxntid"="128"``), which
    llvmlite's whitelist refuses."""

    def add(self, name: str) -> None:
        if name.startswith('"'):
            set.add(self, name)
        else:
            super().add(name)


def parameter_kind(param: Param) -> str:
    """How the launch passes ``param``: "pointer", "f16", "bf16", "f32", "f64", or "i8" to "i64" (an
    integer or bool of that many bits, narrower ones as "i8")."""
    value_type = param.variable.type
    if isinstance(value_type, PointerType):
        if value_type.space is not AddressSpace.GLOBAL:
            raise CodegenError(
                f"parameter '{param.variable.name}': a kernel's pointers point to global memory"
            )
        return "pointer"
    dtype = value_type.dtype
    if dtype.name in _FLOAT_KINDS:
        return _FLOAT_KINDS[dtype.name]
    if dtype.is_float:
        raise CodegenError(
            f"parameter '{param.variable.name}': a {dtype} scalar cannot be a kernel parameter"
        )
    return f"i{max(8, dtype.nbits)}"


def _parameter_type(param: Param) -> ir.Type:
    kind = parameter_kind(param)
    return llvm_type(param.variable.type) if kind[0] != "i" else ir.IntType(int(kind[1:]))


def _pointer_alignment(param: Param) -> int:
    """The alignment the launch guarantees: the largest power of two dividing the divisibility, and at
    least the element's size (every tensor's data is aligned to its elements)."""
    divisibility = param.divisibility & -param.divisibility
    element_bytes = max(1, param.variable.type.dtype.nbits // 8)
    return max(divisibility, element_bytes & -element_bytes)


def build_module(
    program: Program,
    target: Target,
    instructions: dict[type, InstructionHandler],
    expressions: dict[type, ExpressionHandler],
) -> ir.Module:
    """The LLVM module of ``program`` for ``target`` (unoptimised; LLVM's worker gives it the target's data
    layout)."""
    module = ir.Module(name=program.name)
    module.triple = TRIPLE
    signature = ir.FunctionType(ir.VoidType(), [_parameter_type(param) for param in program.params])
    function = ir.Function(module, signature, name=program.name)
    function.calling_convention = "ptx_kernel"
    bounds = [f'"nvvm.maxntid"="{program.num_threads}"']
    if program.max_registers is not None:
        bounds.append(f'"nvvm.maxnreg"="{program.max_registers}"')
    function.attributes = _KernelAttributes(bounds)
    shared = ir.GlobalVariable(module, ir.ArrayType(ir.IntType(8), 0), f"{program.name}_shared", addrspace=3)
    shared.linkage = "external"
    uses_wgmma = any(isinstance(instruction, Wgmma) for instruction in walk_instructions(program.body))
    shared.align = WGMMA_SHARED_ALIGNMENT if uses_wgmma else SHARED_ALIGNMENT
    shared.type = ir.PointerType(addrspace=3)  # llvmlite types a global with a typed pointer otherwise
    context = FunctionContext(module, function, target, shared, instructions, expressions)
    for param, argument in zip(program.params, function.args, strict=True):
        _bind_parameter(context, param, argument)
    context.body(program.body)
    context.finish()
    return module


def _bind_parameter(context: FunctionContext, param: Param, argument: ir.Argument) -> None:
    argument.name = param.variable.name
    value_type = param.variable.type
    if isinstance(value_type, PointerType):
        argument.attributes.add("noundef")
        argument.attributes.align = _pointer_alignment(param)
        context.bind(param.variable, argument)
        return
    register = llvm_type(ScalarType(value_type.dtype))
    value = argument if argument.type == register else context.builder.trunc(argument, register)
    context.bind(param.variable, value)
