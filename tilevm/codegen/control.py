"""Structured control flow and variables: ``let``, ``declare``, ``set``, ``for``, ``while`` and ``if`` as LLVM
basic blocks.

Every body is generated in blocks of its own and ends with a branch to the block after it; a ``declare``d
variable lives in an entry-block ``alloca`` (``FunctionContext.declare``) that ``mem2reg`` turns into phis,
so only the loop counter of ``for`` needs a phi of its own here.

A ``for`` loop runs as Python's ``range``: ``start``, ``stop`` and ``step`` are evaluated once, before the
loop, and the counter goes up while below ``stop`` (a positive step) or down while above it (a negative one;
a step that is not a constant picks the comparison at run time). ``unroll`` becomes
``llvm.loop.unroll.count`` metadata on the loop's back edge, which LLVM's unroller honours.
"""

from __future__ import annotations

from tilevm.codegen.context import FunctionContext, InstructionHandler
from tilevm.codegen.llvm_types import ir
from tilevm.ir.expr import Const, Expr
from tilevm.ir.stmt import AssignScalar, DeclareScalar, For, If, LetScalar, While

__all__ = ["HANDLERS"]


def _let(context: FunctionContext, instruction: LetScalar) -> None:
    context.bind(instruction.output, context.value(instruction.value))


def _declare(context: FunctionContext, instruction: DeclareScalar) -> None:
    context.declare(instruction.output, context.value(instruction.init))


def _set(context: FunctionContext, instruction: AssignScalar) -> None:
    context.assign(instruction.variable, context.value(instruction.value))


def _for(context: FunctionContext, loop: For) -> None:
    builder = context.builder
    start, stop, step = (context.value(bound) for bound in (loop.start, loop.stop, loop.step))
    signed = loop.variable.type.dtype.is_signed
    preheader = builder.block
    header, body, exit_block = (context.new_block(name) for name in ("for", "for_body", "for_end"))
    builder.branch(header)

    builder.position_at_end(header)
    counter = builder.phi(start.type, name=loop.variable.name)
    counter.add_incoming(start, preheader)
    builder.cbranch(_in_range(builder, loop.step, counter, stop, step, signed), body, exit_block)

    builder.position_at_end(body)
    context.bind(loop.variable, counter)
    context.body(loop.body)
    # The counter stays in range, so the step past its last value cannot wrap as long as stop + step fits
    # the type; saying so (nsw/nuw) lets LLVM compute trip counts and unroll.
    following = builder.add(counter, step, flags=["nsw"] if signed else ["nuw"])
    counter.add_incoming(following, builder.block)
    back_edge = builder.branch(header)
    if loop.unroll is not None:
        back_edge.set_metadata("llvm.loop", _unroll_metadata(context.module, loop.unroll))
    builder.position_at_end(exit_block)


def _in_range(
    builder: ir.IRBuilder, step_expr: Expr, counter: ir.Value, stop: ir.Value, step: ir.Value, signed: bool
) -> ir.Value:
    """Whether the counter has not reached ``stop`` yet, in the direction of ``step``."""
    compare = builder.icmp_signed if signed else builder.icmp_unsigned
    if isinstance(step_expr, Const) or not signed:
        ascending = not (isinstance(step_expr, Const) and step_expr.value < 0)
        return compare("<" if ascending else ">", counter, stop)
    ascending = builder.icmp_signed(">", step, ir.Constant(step.type, 0))
    return builder.select(ascending, compare("<", counter, stop), compare(">", counter, stop))


def _unroll_metadata(module: ir.Module, count: int) -> ir.MDValue:
    """A new loop id ``!{!self, !{!"llvm.loop.unroll.count", i32 count}}``: a loop id names itself as its
    first operand, and each loop has its own (``add_metadata`` would hand two loops the same node)."""
    option = module.add_metadata([ir.MetaDataString(module, "llvm.loop.unroll.count"), ir.IntType(32)(count)])
    loop_id = ir.MDValue(module, [option], name=str(len(module.metadata)))
    loop_id.operands = (loop_id, option)
    return loop_id


def _while(context: FunctionContext, loop: While) -> None:
    builder = context.builder
    header, body, exit_block = (context.new_block(name) for name in ("while", "while_body", "while_end"))
    builder.branch(header)
    builder.position_at_end(header)
    builder.cbranch(context.value(loop.condition), body, exit_block)
    builder.position_at_end(body)
    context.body(loop.body)
    builder.branch(header)
    builder.position_at_end(exit_block)


def _if(context: FunctionContext, branch: If) -> None:
    builder = context.builder
    condition = context.value(branch.condition)
    then_block = context.new_block("then")
    else_block = context.new_block("else") if branch.else_body else None
    merge = context.new_block("endif")
    builder.cbranch(condition, then_block, else_block or merge)
    for block, body in ((then_block, branch.then_body), (else_block, branch.else_body)):
        if block is not None:
            builder.position_at_end(block)
            context.body(body)
            builder.branch(merge)
    builder.position_at_end(merge)


HANDLERS: dict[type, InstructionHandler] = {
    LetScalar: _let,
    DeclareScalar: _declare,
    AssignScalar: _set,
    For: _for,
    While: _while,
    If: _if,
}
