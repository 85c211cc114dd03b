"""Thread IR's warpgroup instructions (``tilevm.ir.thread.warpgroup``), sm_90a only (``wgmma`` feature):

- ``wgmma``: inline ``wgmma.mma_async.sync.aligned.m64n<n>k16.f32.<t>.<t> {d...}, a-desc, b-desc, 1, 1, 1,
  0, 0;`` (LLVM 22 has no intrinsic for it): n / 2 ``=f`` outputs tied to the c inputs (``0``, ``1``, ...),
  the descriptors as ``l``; it has side effects and clobbers memory, since it reads shared memory that the
  constraints do not name.
- ``wgmma_fence``, ``wgmma_commit_group``, ``wgmma_wait_group``: ``llvm.nvvm.wgmma.fence.sync.aligned``,
  ``...commit_group.sync.aligned``, ``...wait_group.sync.aligned(i64 immarg)``. The wait's accumulators then
  pass through an empty volatile inline asm whose outputs are tied to them (CUTLASS's
  ``warpgroup_fence_operand``): the registers read after the wait are its results, so LLVM cannot schedule
  a read of an accumulator above the wait.
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
from tilevm.ir.expr import Var
from tilevm.ir.thread import FenceProxyAsync, Wgmma, WgmmaCommitGroup, WgmmaFence, WgmmaWaitGroup

__all__ = ["HANDLERS", "wgmma_assembly"]

_F32 = ir.FloatType()
_VOID = ir.VoidType()


def wgmma_assembly(n: int, ptx_type: str) -> tuple[str, str]:
    """The inline PTX of ``wgmma.mma_async`` m64n``n``k16 on ``ptx_type`` operands and its constraints.

    >>> text, constraints = wgmma_assembly(8, "bf16")
    >>> text
    'wgmma.mma_async.sync.aligned.m64n8k16.f32.bf16.bf16 {$0, $1, $2, $3}, $8, $9, 1, 1, 1, 0, 0;'
    >>> constraints
    '=f,=f,=f,=f,0,1,2,3,l,l,~{memory}'
    """
    count = n // 2
    registers = ", ".join(f"${index}" for index in range(count))
    # scale-d 1 (accumulate), imm-scale-a and imm-scale-b 1, imm-trans-a and imm-trans-b 0 (K-major)
    text = (
        f"wgmma.mma_async.sync.aligned.m64n{n}k16.f32.{ptx_type}.{ptx_type} {{{registers}}}, "
        f"${2 * count}, ${2 * count + 1}, 1, 1, 1, 0, 0;"
    )
    tied = [str(index) for index in range(count)]
    return text, ",".join(["=f"] * count + tied + ["l", "l", "~{memory}"])


def _bind_all(context: FunctionContext, outputs: Sequence[Var], result: ir.Value) -> None:
    for index, output in enumerate(outputs):
        context.bind(output, context.builder.extract_value(result, index))


def _wgmma(context: FunctionContext, instruction: Wgmma) -> None:
    context.require("wgmma")
    text, constraints = wgmma_assembly(instruction.n, "f16" if instruction.dtype == float16 else "bf16")
    arguments = [context.value(value) for value in (*instruction.c, instruction.a, instruction.b)]
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
