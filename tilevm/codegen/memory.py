"""Memory instructions: loads and stores, ``cp.async`` and its groups, the block barrier, the fence,
atomics, ``ldmatrix`` and ``trap``.

A load or store moves the bytes as the integer type of its width (``i8``, ``i16``, ``i32``, ``<2 x i32>``,
``<4 x i32>``, aligned to the width: one ``ld.v4.b32`` for 16 bytes) and bitcasts them to or from the
register type. Sub-byte vectors such as ``<8 x i4>`` are never loaded as such: LLVM's memory layout of
vectors of non-byte elements is not Thread IR's, while its bitcast puts element 0 in the lowest bits, as
Thread IR does.

Predicated instructions branch around the access (PTX predicates it again after if-conversion); a load or
an atomic that does not run gives zero, as Thread IR says.
"""

from __future__ import annotations

from collections.abc import Callable

from tilevm.codegen.context import FunctionContext, InstructionHandler
from tilevm.codegen.llvm_types import ir, llvm_type
from tilevm.dtypes import boolean
from tilevm.ir.expr import Const, Expr
from tilevm.ir.thread import (
    Atomic,
    Barrier,
    CopyAsyncCommitGroup,
    CopyAsyncGroup,
    CopyAsyncWaitGroup,
    Fence,
    Ldmatrix,
    Load,
    Store,
    Trap,
)
from tilevm.ir.thread.values import Select, register_bits
from tilevm.ir.types import ScalarType

__all__ = ["HANDLERS", "access_type"]

_I32 = ir.IntType(32)
_I64 = ir.IntType(64)


def access_type(width: int) -> ir.Type:
    """The LLVM type one access of ``width`` bytes moves: an integer, or a vector of ``i32`` past 4 bytes."""
    if width <= 4:
        return ir.IntType(8 * width)
    return ir.VectorType(_I32, width // 4)


def _predicated(
    context: FunctionContext,
    predicate: Expr | None,
    emit: Callable[[], ir.Value | None],
    zero: ir.Value | None,
) -> ir.Value | None:
    """``emit()`` where ``predicate`` holds (always when it is None); its value, or ``zero`` where it did not
    run."""
    if predicate is None:
        return emit()
    builder = context.builder
    condition = context.value(predicate)
    skipped_from = builder.block
    taken, merge = context.new_block("predicated"), context.new_block("predicated_end")
    builder.cbranch(condition, taken, merge)
    builder.position_at_end(taken)
    value = emit()
    taken_end = builder.block
    builder.branch(merge)
    builder.position_at_end(merge)
    if zero is None:
        return None
    result = builder.phi(zero.type)
    result.add_incoming(value, taken_end)
    result.add_incoming(zero, skipped_from)
    return result


def _load(context: FunctionContext, instruction: Load) -> None:
    pointer = context.value(instruction.pointer)
    register = llvm_type(instruction.output.type)
    width = instruction.width

    def emit() -> ir.Value:
        bits = context.builder.load(pointer, typ=access_type(width), align=width)
        return context.builder.bitcast(bits, register)

    value = _predicated(context, instruction.predicate, emit, ir.Constant(register, None))
    context.bind(instruction.output, value)


def _store(context: FunctionContext, instruction: Store) -> None:
    pointer = context.value(instruction.pointer)
    value = context.value(instruction.value)
    width = register_bits(instruction.value.type) // 8

    def emit() -> None:
        bits = context.builder.bitcast(value, access_type(width))
        context.builder.store(bits, pointer, align=width)

    _predicated(context, instruction.predicate, emit, None)


def _copy_async(context: FunctionContext, instruction: CopyAsyncGroup) -> None:
    destination = context.value(instruction.destination)
    source = context.value(instruction.source)
    cache = "cg" if instruction.cache == "global" else "ca"
    name = f"llvm.nvvm.cp.async.{cache}.shared.global.{instruction.size}"
    size = instruction.source_size
    if isinstance(size, Const) and size.value == instruction.size:  # reads every byte: no zero fill
        context.call(name, ir.VoidType(), [destination, source])
        return
    if _all_or_nothing(size, instruction.size):
        _copy_unless(context, cache, instruction.size, destination, source, context.value(size.condition))
        return
    context.call(f"{name}.s", ir.VoidType(), [destination, source, _int32(context, context.value(size))])


def _all_or_nothing(size: Expr, whole: int) -> bool:
    """Whether ``size`` is ``select(condition, whole, 0)``: the chunk is read whole or not at all."""
    return (
        isinstance(size, Select)
        and isinstance(size.if_true, Const)
        and isinstance(size.if_false, Const)
        and (size.if_true.value, size.if_false.value) == (whole, 0)
        and size.condition.type == ScalarType(boolean)
    )


def _copy_unless(
    context: FunctionContext, cache: str, size: int, destination: ir.Value, source: ir.Value, read: ir.Value
) -> None:
    """``cp.async`` with its ignore-src predicate (``!read``: zeros where the chunk is not read). With the
    byte count of the intrinsic's zero fill instead, ptxas turns a ``selp`` of 16 or 0 back into that
    predicate: two instructions a copy more (the prefill kernel issues ten copies a thread an iteration)."""
    text = (
        "{ .reg .pred ignore; not.pred ignore, $2; "
        f"cp.async.{cache}.shared.global [$0], [$1], {size}, ignore; }}"
    )
    # shared addresses are 32-bit (the intrinsics' ``[%r]``), global ones 64-bit
    addresses = [context.builder.ptrtoint(destination, _I32), context.builder.ptrtoint(source, _I64)]
    context.inline_ptx(ir.VoidType(), text, "r,l,b,~{memory}", [*addresses, read], side_effect=True)


def _int32(context: FunctionContext, value: ir.Value) -> ir.Value:
    """A non-negative integer (a byte count) as the ``i32`` that intrinsics take."""
    if value.type.width < 32:
        return context.builder.zext(value, _I32)
    if value.type.width > 32:
        return context.builder.trunc(value, _I32)
    return value


def _commit_group(context: FunctionContext, _: CopyAsyncCommitGroup) -> None:
    context.call("llvm.nvvm.cp.async.commit.group", ir.VoidType(), [])


def _wait_group(context: FunctionContext, instruction: CopyAsyncWaitGroup) -> None:
    context.call("llvm.nvvm.cp.async.wait.group", ir.VoidType(), [_I32(instruction.pending)])


def _barrier(context: FunctionContext, instruction: Barrier) -> None:
    context.call("llvm.nvvm.barrier.cta.sync.aligned.all", ir.VoidType(), [_I32(instruction.barrier_id)])


def _fence(context: FunctionContext, _: Fence) -> None:
    # LLVM's "device" scope is PTX's .gpu: this is fence.acq_rel.gpu
    context.builder.fence("acq_rel", "device")


#: Thread IR's atomic ops as ``atomicrmw`` operations: (integer signed, integer unsigned, float)
_ATOMIC_OPERATIONS = {
    "add": ("add", "add", "fadd"),
    "max": ("max", "umax", "fmax"),
    "min": ("min", "umin", "fmin"),
    "and": ("and", "and", None),
    "or": ("or", "or", None),
    "xor": ("xor", "xor", None),
    "exchange": ("xchg", "xchg", "xchg"),
}


def _atomic(context: FunctionContext, instruction: Atomic) -> None:
    pointer = context.value(instruction.pointer)
    value = context.value(instruction.value)
    dtype = instruction.value.type.dtype
    column = 2 if dtype.is_float else (0 if dtype.is_signed else 1)
    operation = _ATOMIC_OPERATIONS[instruction.op][column]
    # An exchange moves bits: done on the integer of the width, which every width supports.
    bits_type = ir.IntType(dtype.nbits) if operation == "xchg" else value.type

    def emit() -> ir.Value:
        operand = context.builder.bitcast(value, bits_type)
        old = context.builder.atomic_rmw(operation, pointer, operand, "monotonic")
        old.align = dtype.nbits // 8
        return context.builder.bitcast(old, value.type)

    old = _predicated(context, instruction.predicate, emit, ir.Constant(value.type, None))
    context.bind(instruction.output, old)


def _ldmatrix(context: FunctionContext, instruction: Ldmatrix) -> None:
    pointer = context.value(instruction.pointer)
    count = instruction.count
    transpose = ".trans" if instruction.transpose else ""
    name = f"llvm.nvvm.ldmatrix.sync.aligned.m8n8.x{count}{transpose}.b16"
    result_type = _I32 if count == 1 else ir.LiteralStructType([_I32] * count)
    result = context.call(name, result_type, [pointer])
    fragment = llvm_type(instruction.outputs[0].type)
    for index, output in enumerate(instruction.outputs):
        word = result if count == 1 else context.builder.extract_value(result, index)
        context.bind(output, context.builder.bitcast(word, fragment))


def _trap(context: FunctionContext, instruction: Trap) -> None:
    builder = context.builder
    condition = context.value(instruction.condition)
    trapped, continued = context.new_block("trap"), context.new_block("no_trap")
    builder.cbranch(condition, trapped, continued)
    builder.position_at_end(trapped)
    context.call("llvm.trap", ir.VoidType(), [])
    builder.unreachable()
    builder.position_at_end(continued)


HANDLERS: dict[type, InstructionHandler] = {
    Load: _load,
    Store: _store,
    CopyAsyncGroup: _copy_async,
    CopyAsyncCommitGroup: _commit_group,
    CopyAsyncWaitGroup: _wait_group,
    Barrier: _barrier,
    Fence: _fence,
    Atomic: _atomic,
    Ldmatrix: _ldmatrix,
    Trap: _trap,
}
