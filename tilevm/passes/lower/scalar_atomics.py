"""Lowering of ``atomic_scalar`` (``tilevm.ir.global_access.AtomicScalar``): one atomic for the whole block,
whose old value every thread reads. In Thread IR::

    trap(condition=not inside)                   an index outside the tensor stops the kernel
    barrier()                                    bar.sync 0
    if thread_index() == 0 {
      fence()                                    fence.acq_rel.gpu
      %old = atomic(op=..., pointer=..., value)  atom.global (relaxed, .gpu scope)
      fence()                                    fence.acq_rel.gpu
      store(pointer=shared_pointer(scratch), value=%old)
    }
    barrier()                                    bar.sync 0
    %output = load(pointer=shared_pointer(scratch))

Why this makes the atomic an acquire-release point of the whole block at GPU scope (PTX ISA, chapter
"Memory Consistency Model"):

- the first ``bar.sync`` synchronizes every thread's earlier accesses with thread 0 (barriers on the same
  barrier synchronize with each other, section "Causality Order"), so they precede thread 0's fence in
  causality order;
- ``fence.acq_rel`` then a strong write (the ``atom``: relaxed at ``.gpu`` scope, which is strong) is a
  *release pattern*, and a strong read (the ``atom``) then ``fence.acq_rel`` an *acquire pattern* (section
  "Release and Acquire Patterns"). A release pattern synchronizes with an acquire pattern whose read
  observes its write, directly or through a chain of atomic read-modify-writes (section "Observation
  Order"): the block that draws a counter's last ticket acquires what every block that drew an earlier one
  released;
- the second ``bar.sync`` orders thread 0's acquire before every thread's later accesses, and publishes the
  old value through the shared scratch word.

LLVM ignores the ordering of ``atomicrmw`` on NVPTX (it emits a relaxed ``atom``), hence the
two explicit fences. The scratch word is ``Lowering.scratch``'s, whose users each start with a barrier: the
first barrier here is that one, and the next user's first barrier keeps this one's loads before its writes.
Tile IR's control flow is on block-uniform scalars, so every thread reaches both barriers.
"""

from __future__ import annotations

from tilevm.ir import AtomicScalar
from tilevm.ir.expr import BinaryExpr, Const
from tilevm.ir.stmt import If, LetScalar
from tilevm.ir.thread import Atomic, Barrier, Fence, Load, PointerAdd, SharedPointer, Store
from tilevm.passes.lower.global_memory import checked_element
from tilevm.passes.lower.global_window import binary
from tilevm.passes.lower.lowering import Handler, Lowering

__all__ = ["HANDLERS"]


def _atomic_scalar(lowering: Lowering, instruction: AtomicScalar) -> None:
    tensor = lowering.global_tensor(instruction.tensor)
    dtype = tensor.dtype
    nbytes = dtype.nbits // 8
    address, _ = checked_element(lowering, instruction)
    pointer = lowering.let("counter", PointerAdd(tensor.pointer, binary("mul", address, Const(nbytes))))
    scratch = SharedPointer(dtype, Const(lowering.scratch(nbytes)))
    lowering.emit(Barrier())
    with lowering.collect() as first_thread:
        lowering.emit(Fence())
        old = lowering.define(Atomic, "old", op=instruction.op, pointer=pointer, value=instruction.value)
        lowering.emit(Fence())
        lowering.emit(Store(pointer=scratch, value=old))
    lowering.emit(If(condition=BinaryExpr("eq", lowering.thread, Const(0)), then_body=tuple(first_thread)))
    lowering.emit(Barrier())
    value = lowering.define(Load, "old", pointer=scratch, width=nbytes)
    lowering.emit(LetScalar(output=instruction.output, value=value))


HANDLERS: dict[type, Handler] = {AtomicScalar: _atomic_scalar}
