"""``lower_to_threads``: instruction selection from Tile IR (with layouts and a shared-memory plan) to the
per-thread Thread IR (``tilevm.ir.thread``) that the SIMT interpreter and code generation run.

Each Tile IR instruction class has one handler, in the module of its family; ``HANDLERS`` gathers them.
``tilevm.passes.lower.lowering`` says how each kind of Tile IR value becomes Thread IR values.
"""

from __future__ import annotations

from tilevm.ir import Instruction, Program
from tilevm.passes.lower import (
    casts,
    control,
    convert_layout,
    copy_async,
    dot,
    dot_shared,
    global_memory,
    reductions,
    registers,
    scalar_atomics,
    shared_memory,
)
from tilevm.passes.lower.lowering import Handler, Lowering, LoweringError

__all__ = ["HANDLERS", "LoweringError", "lower_to_threads"]

#: the handler of each Tile IR instruction class
HANDLERS: dict[type[Instruction], Handler] = {
    **control.HANDLERS,
    **casts.HANDLERS,
    **global_memory.HANDLERS,
    **scalar_atomics.HANDLERS,
    **registers.HANDLERS,
    **convert_layout.HANDLERS,
    **shared_memory.HANDLERS,
    **copy_async.HANDLERS,
    **dot.HANDLERS,
    **dot_shared.HANDLERS,
    **reductions.HANDLERS,
}


def lower_to_threads(program: Program) -> Program:
    """The Thread IR of ``program``, whose register tiles all have layouts and whose shared allocations
    all have offsets."""
    return Lowering(program, HANDLERS).lower_program()
