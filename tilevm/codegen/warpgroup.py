"""Thread IR's warpgroup instructions (``tilevm.ir.thread.warpgroup``), sm_90a only (``wgmma`` feature):

- ``wgmma``: inline ``wgmma.mma_async.sync.aligned.m64n<n>k16.f32.<t>.<t> {d...}, a-desc, b-desc, 1, 1, 1,
  0, 0;`` (LLVM 22 has no intrinsic for it): n / 2 ``=f`` outputs tied to the c inputs (``0``, ``1``, ...),
  the descriptors as ``l``; it has side effects and clobbers memory, since it reads shared memory that the
  constraints do not name. With A in registers, ``... {d...}, {a0, a1, a2, a3}, b-desc, 1, 1, 1, 0;`` (the
  ISA's register form has no ``imm-trans-a``): the four ``<2 x half>`` or ``<2 x bfloat>`` registers go as
  their 32 bits, ``r``, as ``mma``'s bfloat16 fragments do.
- ``wgmma_fence``, ``wgmma_commit_group``, ``wgmma_wait_group``: ``llvm.nvvm.wgmma.fence.sync.aligned``,
  ``...commit_group.sync.aligned``, ``...wait_group.sync.aligned(i64 immarg)``. The wait's accumulators then
  pass through an empty volatile inline asm whose outputs are tied to them (CUTLASS's
  ``warpgroup_fence_operand``): the registers read after the wait are its results, so LLVM cannot schedule
  a read of an accumulator above the wait. Its held registers are the inputs of another empty volatile asm
  after the wait (``h``, ``r`` or ``l`` on their bits), as CUTLASS fences the A fragments: LLVM keeps them
  live and unchanged until then. The asm is empty in the PTX, so it binds LLVM only; ptxas sees the wgmma
  and its wait themselves.
- ``fence_proxy_async``: ``llvm.nvvm.fence.proxy.async.shared_cta`` (``fence.proxy.async.shared::cta``,
  sm_90).

>>> sorted(cls.__name__ for cls in HANDLERS)
['FenceProxyAsync', 'Wgmma', 'WgmmaCommitGroup', 'WgmmaFence', 'WgmmaWaitGroup']
"""

from __future__ import annotations

from collections.abc import Sequence

from tilevm.codegen.context import FunctionContext
from tilevm.codegen.llvm_types import ir
from tilevm.dtypes import float16
from tilevm.ir.expr import Expr, Var
from tilevm.ir.thread import FenceProxyAsync, Wgmma, WgmmaCommitGroup, WgmmaFence, WgmmaWaitGroup
from tilevm.ir.thread.values import register_bits
from tilevm.ir.thread.warpgroup import A_REGISTERS

__all__ = ["HANDLERS", "wgmma_assembly"]

_F32 = ir.FloatType()
_VOID = ir.VoidType()


def wgmma_assembly(n: int, ptx_type: str, a_in_registers: bool = False) -> tuple[str, str]:
    """The inline PTX of ``wgmma.mma_async`` m64n``n``k16 on ``ptx_type`` operands and its constraints: the
    operands are the n / 2 accumulators (C), then A (a descriptor, or ``A_REGISTERS`` registers), then B's
    descriptor.

    >>> text, constraints = wgmma_assembly(8, "bf16")
    >>> text
    'wgmma.mma_async.sync.aligned.m64n8k16.f32.bf16.bf16 {$0, $1, $2, $3}, $8, $9, 1, 1, 1, 0, 0;'
    >>> constraints
    '=f,=f,=f,=f,0,1,2,3,l,l,~{memory}'
    >>> text, constraints = wgmma_assembly(8, "f16", a_in_registers=True)
    >>> text
    'wgmma.mma_async.sync.aligned.m64n8k16.f32.f16.f16 {$0, $1, $2, $3}, {$8, $9, $10, $11}, $12, 1, 1, 1, 0;'
    >>> constraints
    '=f,=f,=f,=f,0,1,2,3,r,r,r,r,l,~{memory}'
    """
    count = n // 2
    registers = ", ".join(f"${index}" for index in range(count))
    after_c = 2 * count  # the operand number of the first input after C (outputs and C count alike)
    if a_in_registers:
        a = "{" + ", ".join(f"${after_c + index}" for index in range(A_REGISTERS)) + "}"
        a_constraints, b = ["r"] * A_REGISTERS, f"${after_c + A_REGISTERS}"
        # scale-d 1 (accumulate), imm-scale-a and imm-scale-b 1, imm-trans-b 0 (K-major); no imm-trans-a
        immediates = "1, 1, 1, 0"
    else:
        a, a_constraints, b = f"${after_c}", ["l"], f"${after_c + 1}"
        # scale-d 1, imm-scale-a and imm-scale-b 1, imm-trans-a and imm-trans-b 0 (both K-major)
        immediates = "1, 1, 1, 0, 0"
    text = (
        f"wgmma.mma_async.sync.aligned.m64n{n}k16.f32.{ptx_type}.{ptx_type} {{{registers}}}, "
        f"{a}, {b}, {immediates};"
    )
    tied = [str(index) for index in range(count)]
    return text, ",".join(["=f"] * count + tied + a_constraints + ["l", "~{memory}"])


def _bind_all(context: FunctionContext, outputs: Sequence[Var], result: ir.Value) -> None:
    for index, output in enumerate(outputs):
        context.bind(output, context.builder.extract_value(result, index))


def _bits(context: FunctionContext, expr: Expr) -> ir.Value:
    """A register as an integer of its width, what inline PTX's ``h``, ``r`` and ``l`` take (an f16x2 goes
    as its 32 bits)."""
    value = context.value(expr)
    integer = ir.IntType(register_bits(expr.type))
    return value if value.type == integer else context.builder.bitcast(value, integer)


def _wgmma(context: FunctionContext, instruction: Wgmma) -> None:
    context.require("wgmma")
    registers = instruction.a_in_registers
    ptx_type = "f16" if instruction.dtype == float16 else "bf16"
    text, constraints = wgmma_assembly(instruction.n, ptx_type, a_in_registers=registers)
    a = instruction.a if registers else (instruction.a,)
    # the descriptors are uint64 already, the A registers f16x2 or bf16x2 as their 32 bits
    arguments = [context.value(value) for value in instruction.c]
    arguments += [_bits(context, value) for value in (*a, instruction.b)]
    result_type = ir.LiteralStructType([_F32] * len(instruction.outputs))
    result = context.inline_ptx(result_type, text, constraints, arguments, side_effect=True)
    _bind_all(context, instruction.outputs, result)


def _fence(context: FunctionContext, _: WgmmaFence) -> None:
    context.require("wgmma")
    context.call("llvm.nvvm.wgmma.fence.sync.aligned", _VOID, [])


def _commit_group(context: FunctionContext, _: WgmmaCommitGroup) -> None:
    context.require("wgmma")
    context.call("llvm.nvvm.wgmma.commit_group.sync.aligned", _VOID, [])


def _wait_group(context: FunctionContext, instruction: WgmmaWaitGroup) -> None:
    context.require("wgmma")
    pending = ir.Constant(ir.IntType(64), instruction.pending)
    context.call("llvm.nvvm.wgmma.wait_group.sync.aligned", _VOID, [pending])
    _keep_alive(context, instruction.held)
    count = len(instruction.accumulators)
    if not count:
        return
    constraints = ",".join(["=f"] * count + [str(index) for index in range(count)] + ["~{memory}"])
    arguments = [context.value(value) for value in instruction.accumulators]
    # LLVM's inline asm returns one output as itself, several as a struct
    result_type = _F32 if count == 1 else ir.LiteralStructType([_F32] * count)
    fenced = context.inline_ptx(result_type, "", constraints, arguments, side_effect=True)
    if count == 1:
        context.bind(instruction.outputs[0], fenced)
    else:
        _bind_all(context, instruction.outputs, fenced)


#: the inline PTX constraint of a register of each width
_CONSTRAINTS = {16: "h", 32: "r", 64: "l"}


def _keep_alive(context: FunctionContext, held: Sequence[Expr]) -> None:
    """Use ``held`` in an empty volatile asm here, after the wait: their registers are not reused before."""
    if not held:
        return
    constraints = ",".join([_CONSTRAINTS[register_bits(value.type)] for value in held] + ["~{memory}"])
    arguments = [_bits(context, value) for value in held]
    context.inline_ptx(_VOID, "", constraints, arguments, side_effect=True)


def _fence_proxy_async(context: FunctionContext, _: FenceProxyAsync) -> None:
    context.require("async_proxy_fence")
    context.call("llvm.nvvm.fence.proxy.async.shared_cta", _VOID, [])


HANDLERS = {
    Wgmma: _wgmma,
    WgmmaFence: _fence,
    WgmmaCommitGroup: _commit_group,
    WgmmaWaitGroup: _wait_group,
    FenceProxyAsync: _fence_proxy_async,
}
