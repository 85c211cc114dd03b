"""Handlers of scalar variables and structured control flow (see ``tilevm.ir.stmt``).

``for`` evaluates start, stop and step once, on entry, and runs Python's ``range`` over them (a negative
step counts down; a zero step is an error); the loop variable holds the carrier of its dtype. ``while``
evaluates its condition before every iteration, and is an error when it would start an iteration past its
limit (``limits``); ``if`` runs one of its bodies.

>>> sorted(cls.__name__ for cls in HANDLERS)
['AssignScalar', 'DeclareScalar', 'For', 'If', 'LetScalar', 'While']
"""

from __future__ import annotations

from collections.abc import Callable

from tilevm.ir import AssignScalar, DeclareScalar, For, If, Instruction, LetScalar, While
from tilevm.ir.semantics import to_carrier
from tilevm.runtime.reference.errors import ExecutionError
from tilevm.runtime.reference.limits import WHILE_LIMIT_VARIABLE
from tilevm.runtime.reference.scalars import evaluate, evaluate_int
from tilevm.runtime.reference.state import BlockState

__all__ = ["HANDLERS"]


def _for(instruction: For, state: BlockState) -> None:
    start = evaluate_int(instruction.start, state, "the loop's start")
    stop = evaluate_int(instruction.stop, state, "the loop's stop")
    step = evaluate_int(instruction.step, state, "the loop's step")
    if step == 0:
        raise ExecutionError(f"for loop over {instruction.variable.name} with a step of 0")
    dtype = instruction.variable.type.dtype
    for counter in range(start, stop, step):
        state.bind(instruction.variable, to_carrier(counter, dtype))
        state.run_body(instruction.body)


def _while(instruction: While, state: BlockState) -> None:
    iterations = 0
    while bool(evaluate(instruction.condition, state)):
        if iterations == state.while_limit:
            raise ExecutionError(
                f"while loop still running after {iterations} iterations, the limit (a hang?); "
                f"execute's while_limit or {WHILE_LIMIT_VARIABLE} sets it"
            )
        state.run_body(instruction.body)
        iterations += 1


def _if(instruction: If, state: BlockState) -> None:
    taken = bool(evaluate(instruction.condition, state))
    state.run_body(instruction.then_body if taken else instruction.else_body)


HANDLERS: dict[type[Instruction], Callable[..., None]] = {
    LetScalar: lambda instruction, state: state.bind(instruction.output, evaluate(instruction.value, state)),
    DeclareScalar: lambda instruction, state: state.bind(
        instruction.output, evaluate(instruction.init, state)
    ),
    AssignScalar: lambda instruction, state: state.bind(
        instruction.variable, evaluate(instruction.value, state)
    ),
    For: _for,
    While: _while,
    If: _if,
}
