"""Thread IR translated once into Python closures: a ``Step`` per instruction, an ``Evaluator`` per
expression, each looked up in the tables of ``control``, ``memory``, ``atomics``, ``collectives``,
``warpgroup``, ``bit_ops`` and ``expressions``; registers live in numbered slots of the batch.

A body runs its steps in order; an ``ExecutionError`` raised by a step (or an integer division by zero) is
reported at that instruction's source location, the user's line that the lowering carried to it.

>>> from tilevm.ir.thread import THREAD_IR
>>> all(cls in INSTRUCTIONS for cls in THREAD_IR.instructions)
True
>>> all(cls in EXPRESSIONS for cls in THREAD_IR.expressions)
True
"""

from __future__ import annotations

from collections.abc import Callable

from tilevm.ir import Expr, Instruction, Program, Var
from tilevm.ir.semantics import IntegerDivisionByZero
from tilevm.ir.stmt import Body
from tilevm.runtime.cpu import atomics, bit_ops, collectives, control, memory, warpgroup
from tilevm.runtime.cpu.control import Step
from tilevm.runtime.cpu.expressions import EXPRESSIONS, Evaluator
from tilevm.runtime.cpu.state import Batch
from tilevm.runtime.reference.errors import ExecutionError

__all__ = ["INSTRUCTIONS", "Compiled", "Compiler"]

INSTRUCTIONS: dict[type, Callable[..., Step]] = {
    **control.STATEMENTS,
    **memory.MEMORY,
    **atomics.ATOMICS,
    **collectives.COLLECTIVES,
    **warpgroup.WARPGROUP,
    **bit_ops.BIT_OPS,
}


class Compiler:
    """Assigns register slots to variables and compiles bodies and expressions."""

    def __init__(self) -> None:
        self.slots: dict[int, int] = {}

    def slot(self, variable: Var) -> int:
        return self.slots.setdefault(variable.uid, len(self.slots))

    def expression(self, expr: Expr) -> Evaluator:
        return EXPRESSIONS[type(expr)](self, expr)

    def optional(self, expr: Expr | None) -> Evaluator | None:
        return None if expr is None else self.expression(expr)

    def instruction(self, instruction: Instruction) -> Step:
        compile_step = INSTRUCTIONS.get(type(instruction))
        if compile_step is None:
            raise ExecutionError(
                f"the SIMT interpreter runs Thread IR; it has no meaning for {type(instruction).__name__}",
                instruction.loc,
            )
        return compile_step(self, instruction)

    def body(self, body: Body) -> Step:
        steps = tuple(self.instruction(instruction) for instruction in body)
        locations = tuple(instruction.loc for instruction in body)

        def run(batch: Batch) -> None:
            index = 0
            try:
                for index, step in enumerate(steps):  # noqa: B007 (the index locates an error)
                    step(batch)
            except ExecutionError as error:
                raise error.at(locations[index]) from None
            except IntegerDivisionByZero as error:
                raise ExecutionError(str(error), locations[index]) from None

        return run


class Compiled:
    """A program's closures: the body, and the slots of its parameters."""

    def __init__(self, program: Program) -> None:
        compiler = Compiler()
        self.param_slots = tuple(compiler.slot(param.variable) for param in program.params)
        self.run = compiler.body(program.body)
        self.slots = len(compiler.slots)
