"""Registers and structured control flow, run by every thread on its own values, with active masks.

``let`` and ``declare`` bind a value; ``set`` changes it in the active threads only. A condition that is the
same in every active thread (the usual case: the lowering's control flow is block-uniform) runs the body
once with the mask unchanged; otherwise the threads diverge: ``if`` runs each body with the threads that
take it, ``for`` and ``while`` run iterations until no active thread wants another, each with the threads
still in the loop. ``for`` evaluates its bounds once, on entry (a zero step is an error); ``while`` is an
error when it would start an iteration past the limit (``limits``).

>>> sorted(cls.__name__ for cls in STATEMENTS)
['AssignScalar', 'DeclareScalar', 'For', 'If', 'LetScalar', 'While']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from tilevm.ir import AssignScalar, DeclareScalar, For, If, LetScalar, While
from tilevm.ir.types import VectorType
from tilevm.runtime.cpu.registers import holder
from tilevm.runtime.cpu.state import Batch
from tilevm.runtime.reference.errors import ExecutionError

if TYPE_CHECKING:
    from tilevm.runtime.cpu.compiler import Compiler

__all__ = ["STATEMENTS", "Step"]

Step = Callable[[Batch], None]


def _bind(compiler: Compiler, instruction: LetScalar | DeclareScalar) -> Step:
    slot = compiler.slot(instruction.output)
    value = compiler.expression(instruction.value if isinstance(instruction, LetScalar) else instruction.init)

    def run(batch: Batch) -> None:
        batch.registers[slot] = value(batch)

    return run


def _assign(compiler: Compiler, instruction: AssignScalar) -> Step:
    slot, value = compiler.slot(instruction.variable), compiler.expression(instruction.value)
    value_type = instruction.variable.type
    vector = isinstance(value_type, VectorType)
    name = instruction.variable.name

    def run(batch: Batch) -> None:
        new = value(batch)
        if batch.mask is not None:
            new = _merge(batch.mask, new, batch.registers[slot], vector, name)
        batch.registers[slot] = new

    return run


def _merge(mask: np.ndarray, new: object, old: object, vector: bool, name: str) -> object:
    """``new`` in the threads of ``mask``, ``old`` elsewhere."""
    if isinstance(new, tuple):  # a global pointer: (storage, offsets)
        if new[0] is not old[0]:
            raise ExecutionError(
                f"set of pointer {name} to another tensor in some threads only: the interpreter keeps one "
                f"tensor per pointer register"
            )
        return new[0], np.where(mask, new[1], old[1])
    return np.where(mask[:, None] if vector else mask, new, old)


def _for(compiler: Compiler, instruction: For) -> Step:
    slot = compiler.slot(instruction.variable)
    bounds = tuple(compiler.expression(getattr(instruction, name)) for name in ("start", "stop", "step"))
    body = compiler.body(instruction.body)
    counter_type = holder(instruction.variable.type.dtype)
    name = instruction.variable.name

    def run(batch: Batch) -> None:
        start, stop, step = (bound(batch) for bound in bounds)
        if start.ndim == stop.ndim == step.ndim == 0:
            if step == 0:
                raise ExecutionError(f"for loop over {name} with a step of 0")
            for counter in range(int(start), int(stop), int(step)):
                batch.registers[slot] = np.asarray(counter, dtype=counter_type)
                body(batch)
            return
        _diverging_for(batch, slot, body, (start, stop, step), counter_type, name)

    return run


def _diverging_for(
    batch: Batch, slot: int, body: Step, bounds: tuple[np.ndarray, ...], counter_type: type, name: str
) -> None:
    """A ``for`` whose bounds differ between threads: each thread counts on its own."""
    start, stop, step = (np.broadcast_to(bound, (batch.size,)).astype(np.int64) for bound in bounds)
    outer = batch.mask
    inside = np.ones(batch.size, dtype=bool) if outer is None else outer
    if (step[inside] == 0).any():
        raise ExecutionError(f"for loop over {name} with a step of 0")
    counter = start
    try:
        while True:
            running = inside & np.where(step > 0, counter < stop, counter > stop)
            if not running.any():
                break
            batch.mask = _unmasked_if_all(running, outer)
            batch.registers[slot] = counter.astype(counter_type)
            body(batch)
            counter = counter + step
    finally:
        batch.mask = outer


def _while(compiler: Compiler, instruction: While) -> Step:
    condition, body = compiler.expression(instruction.condition), compiler.body(instruction.body)

    def run(batch: Batch) -> None:
        outer = batch.mask
        iterations = 0
        try:
            while True:
                running = batch.active(condition(batch))
                if running is not None and not running.any():
                    break
                batch.check_while_limit(iterations)
                batch.mask = running if running is None else _unmasked_if_all(running, outer)
                body(batch)
                iterations += 1
        finally:
            batch.mask = outer

    return run


def _if(compiler: Compiler, instruction: If) -> Step:
    condition = compiler.expression(instruction.condition)
    then_body, else_body = compiler.body(instruction.then_body), compiler.body(instruction.else_body)
    has_else = bool(instruction.else_body)

    def run(batch: Batch) -> None:
        taken = condition(batch)
        if taken.ndim == 0:
            (then_body if taken else else_body)(batch)
            return
        outer = batch.mask
        if outer is None and taken.all():
            then_body(batch)
            return
        if outer is None and not has_else and not taken.any():
            return
        inside = np.ones(batch.size, dtype=bool) if outer is None else outer
        try:
            for threads, branch in ((inside & taken, then_body), (inside & ~taken, else_body)):
                if threads.any():
                    batch.mask = _unmasked_if_all(threads, outer)
                    branch(batch)
        finally:
            batch.mask = outer

    return run


def _unmasked_if_all(threads: np.ndarray, outer: np.ndarray | None) -> np.ndarray | None:
    """The mask of a body that ``threads`` run: None (the fast paths) when they are every thread."""
    return None if outer is None and threads.all() else threads


STATEMENTS: dict[type, Callable[[Compiler, object], Step]] = {
    LetScalar: _bind,
    DeclareScalar: _bind,
    AssignScalar: _assign,
    For: _for,
    While: _while,
    If: _if,
}
