"""``remove_dead_code``: instructions whose work nobody observes are removed, until none is left.

Before: any verified program. After: the same program without
- instructions with no side effect whose outputs are never read (views, allocations, shared loads, compute,
  layout conversions, ``let``, ``declare``);
- assignments (``set``, ``assign``) to variables that are never read;
- ``for`` loops and ``if`` statements whose bodies became empty.
A value is read when a kept instruction reads it, or an instruction that computes a value that is read: so
a counter that only feeds its own increments goes, and so does a whole chain of unused values at once.
Global loads, stores, atomics, copies and their commits and waits, syncs, frees and ``while`` loops
(which may not terminate) always stay. A removed instruction that would have failed when run
(an integer division by zero) no longer fails, as on the GPU, where that is undefined.

>>> from tilevm.ir import parse
>>> print(remove_dead_code(parse('''kernel k(%n: int32) num_threads=32 {
...   %x: int32 = declare(init=%n + 1)
...   %y: int32 = declare(init=%x * 2)
...   for %i: int32 in range(0, %n, 1) {
...     set(variable=%x, value=%i)
...   }
... }''')))
kernel k(%n: int32) num_threads=32 {
}
"""

from __future__ import annotations

import enum
from collections.abc import Iterator

from tilevm.ir import (
    AllocRegister,
    AllocShared,
    Arange,
    AssignScalar,
    AssignTensor,
    AtomicGlobal,
    AtomicScalar,
    Binary,
    Cast,
    ConvertLayout,
    CopyAsync,
    CopyAsyncCommit,
    CopyAsyncWait,
    DeclareScalar,
    Dot,
    DotWait,
    For,
    FreeShared,
    GlobalView,
    If,
    Instruction,
    LetScalar,
    LoadGlobal,
    LoadScalar,
    LoadShared,
    Permute,
    PermuteShared,
    Program,
    Reduce,
    SharedDot,
    SliceShared,
    StoreGlobal,
    StoreShared,
    Sync,
    Unary,
    Var,
    View,
    Where,
    While,
)
from tilevm.ir.rewrite import (
    FieldRole,
    bodies,
    defined_variables,
    map_instructions,
    node_form,
    walk_expressions,
)

__all__ = ["EFFECTS", "Effect", "remove_dead_code"]


class Effect(enum.Enum):
    """What an instruction does besides defining its outputs, as far as removing it is concerned."""

    NONE = "none"  # removable when none of its outputs is read
    WRITES_VARIABLE = "writes variable"  # removable when the variable it writes is never read
    CONTAINER = "container"  # removable when its bodies are empty
    KEPT = "kept"  # memory, synchronization, loops that may not end: never removed


#: the effect of every instruction class
EFFECTS: dict[type[Instruction], Effect] = {
    GlobalView: Effect.NONE,
    AllocShared: Effect.NONE,
    AllocRegister: Effect.NONE,
    SliceShared: Effect.NONE,
    PermuteShared: Effect.NONE,
    Arange: Effect.NONE,
    Permute: Effect.NONE,
    LoadShared: Effect.NONE,
    Unary: Effect.NONE,
    Binary: Effect.NONE,
    Where: Effect.NONE,
    Reduce: Effect.NONE,
    Dot: Effect.NONE,
    SharedDot: Effect.NONE,
    Cast: Effect.NONE,
    View: Effect.NONE,
    ConvertLayout: Effect.NONE,
    LetScalar: Effect.NONE,
    DeclareScalar: Effect.NONE,
    AssignScalar: Effect.WRITES_VARIABLE,
    AssignTensor: Effect.WRITES_VARIABLE,
    For: Effect.CONTAINER,
    If: Effect.CONTAINER,
    LoadGlobal: Effect.KEPT,
    LoadScalar: Effect.KEPT,  # an index outside the tensor is an error that removing it would hide
    StoreGlobal: Effect.KEPT,
    AtomicGlobal: Effect.KEPT,
    AtomicScalar: Effect.KEPT,
    StoreShared: Effect.KEPT,
    CopyAsync: Effect.KEPT,
    CopyAsyncCommit: Effect.KEPT,
    CopyAsyncWait: Effect.KEPT,
    DotWait: Effect.KEPT,
    Sync: Effect.KEPT,
    FreeShared: Effect.KEPT,
    While: Effect.KEPT,
}

#: the field that names the variable an instruction of effect WRITES_VARIABLE writes (it is not a read)
WRITTEN_FIELDS: dict[type[Instruction], str] = {AssignScalar: "variable", AssignTensor: "destination"}


def remove_dead_code(program: Program) -> Program:
    """``program`` without its dead instructions (see the module doc)."""
    live = _live_variables(program)
    pruned = map_instructions(program, lambda instruction: () if _is_dead(instruction, live) else instruction)
    return program if pruned.body is program.body else pruned


def _live_variables(program: Program) -> set[int]:
    """The ids of the variables whose values reach an instruction that is kept, found by marking from the
    kept instructions back through what they read, until nothing new is marked (loops need a second
    sweep; a value that only feeds itself, like an unread counter, is never marked)."""
    live: set[int] = set()
    while True:
        count = len(live)
        _mark(program.body, live)
        if len(live) == count:
            return live


def _mark(body: tuple[Instruction, ...], live: set[int]) -> bool:
    """Mark what the live instructions of ``body`` read, last to first; whether any of them is live."""
    any_live = False
    for instruction in reversed(body):
        nested_live = [_mark(nested, live) for nested in bodies(instruction)]  # every body, no short cut
        if _is_live(instruction, live, any(nested_live)):
            any_live = True
            live.update(_reads(instruction))
    return any_live


def _is_live(instruction: Instruction, live: set[int], nested_live: bool) -> bool:
    effect = _effect(instruction)
    if effect is Effect.NONE:
        return any(variable.uid in live for variable in defined_variables(instruction))
    if effect is Effect.WRITES_VARIABLE:
        return getattr(instruction, WRITTEN_FIELDS[type(instruction)]).uid in live
    if effect is Effect.CONTAINER:
        return nested_live
    return True


def _is_dead(instruction: Instruction, live: set[int]) -> bool:
    """Whether to remove ``instruction``, whose bodies (if any) are already pruned."""
    if _effect(instruction) is Effect.CONTAINER:
        return not any(bodies(instruction))
    return not _is_live(instruction, live, nested_live=True)


def _effect(instruction: Instruction) -> Effect:
    effect = EFFECTS.get(type(instruction))
    if effect is None:
        raise TypeError(f"{type(instruction).__name__} has no entry in tilevm.passes.dead_code.EFFECTS")
    return effect


def _reads(instruction: Instruction) -> Iterator[int]:
    """The ids of the variables ``instruction`` reads (the variable that ``set`` or ``assign`` writes is not
    read)."""
    written = WRITTEN_FIELDS.get(type(instruction))
    for name in node_form(type(instruction)).names(FieldRole.OPERAND):
        value = getattr(instruction, name)
        if name != written and value is not None:
            yield from (
                expression.uid for expression in walk_expressions(value) if isinstance(expression, Var)
            )
