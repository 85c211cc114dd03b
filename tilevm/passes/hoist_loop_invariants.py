"""``hoist_loop_invariants``: the pure register-tile instructions of a ``for`` body that compute the same
value in every iteration move before the loop, so that they run once.

Layout inference puts the conversion of a tile loaded before a loop (the ``q`` tile of attention, an
operand kept in registers) where the loop uses it: inside, with its trip through shared memory and its
barriers run every iteration. LLVM cannot move that out (it stores to shared memory and synchronises), so
this pass does, on Tile IR.

Before: a program with layouts (after ``infer_layouts``). After: the same program in which an instruction
at the top level of a ``for`` body moves to just before the loop when it is of a kind in ``HOISTED`` (no
effect but its output; not a ``//`` or ``%``, which can fail), the loop assigns its output nowhere, and
every variable it reads is defined before the loop and assigned nowhere in it, or is the output of an
instruction moved out before it. Inner loops go first, so that an instruction can leave several nested
loops. A moved instruction also runs when the loop runs no iteration, which costs time but changes no
result; branch bodies keep their instructions (they run on a condition).

>>> from tilevm.ir import parse
>>> print(hoist_loop_invariants(parse('''kernel k(%x: ptr<int8>, %n: int32) num_threads=2 {
...   %v: global<int8, [4], strides=[1]> = global_view(pointer=%x, shape=[4], strides=[1])
...   %a: register<int8, [4], spatial(2).local(2)> = load_global(tensor=%v, offsets=[0], shape=[4], dims=[0])
...   for %i: int32 in range(0, %n, 1) {
...     %b: register<int8, [4], local(2).spatial(2)> = convert_layout(operand=%a)
...     store_global(tensor=%v, value=%b, offsets=[0], dims=[0])
...   }
... }''')))
kernel k(%x: ptr<int8>, %n: int32) num_threads=2 {
  %v: global<int8, [4], strides=[1]> = global_view(pointer=%x, shape=[4], strides=[1])
  %a: register<int8, [4], spatial(2).local(2)> = load_global(tensor=%v, offsets=[0], shape=[4], dims=[0])
  %b: register<int8, [4], local(2).spatial(2)> = convert_layout(operand=%a)
  for %i: int32 in range(0, %n, 1) {
    store_global(tensor=%v, value=%b, offsets=[0], dims=[0])
  }
}
"""

from __future__ import annotations

import dataclasses

from tilevm.ir import (
    AssignScalar,
    AssignTensor,
    Binary,
    Cast,
    ConvertLayout,
    For,
    Instruction,
    Permute,
    Program,
    Reduce,
    Unary,
    Var,
    View,
    Where,
)
from tilevm.ir.rewrite import defined_variables, map_instructions, walk_expressions, walk_instructions

__all__ = ["HOISTED", "hoist_loop_invariants"]

#: the instructions that may move out of a loop: they read register tiles and define one, with no other effect
HOISTED: tuple[type[Instruction], ...] = (ConvertLayout, View, Permute, Cast, Unary, Binary, Where, Reduce)


def hoist_loop_invariants(program: Program) -> Program:
    """``program`` with its loops' invariant instructions moved before them (see the module doc)."""
    hoisted = map_instructions(program, _split_loop)
    return program if hoisted.body is program.body else hoisted


def _split_loop(instruction: Instruction) -> Instruction | tuple[Instruction, ...]:
    """A ``for`` loop (its bodies already handled) as its invariant instructions, then the loop without
    them; any other instruction as it is."""
    if not isinstance(instruction, For):
        return instruction
    assigned = _assigned(instruction.body)
    inside = _defined_inside(instruction.body) | {instruction.variable.uid} | assigned
    moved: list[Instruction] = []
    kept: list[Instruction] = []
    for statement in instruction.body:
        outputs = {variable.uid for variable in defined_variables(statement)}
        # an output that the loop changes in place (``t = a * 2`` then ``t = t + 1`` in an inner loop)
        # must be computed afresh every iteration
        if _hoistable(statement) and not (_reads(statement) & inside) and not (outputs & assigned):
            moved.append(statement)
            inside -= outputs
        else:
            kept.append(statement)
    if not moved:
        return instruction
    return (*moved, dataclasses.replace(instruction, body=tuple(kept)))


def _hoistable(instruction: Instruction) -> bool:
    """Of a kind that may move: in ``HOISTED``, and not a division that can fail (an integer ``//`` or
    ``%`` by zero is an error in the executors, which a loop of no iteration must not raise)."""
    if isinstance(instruction, Binary) and instruction.op in ("floordiv", "mod"):
        return False
    return isinstance(instruction, HOISTED)


def _reads(instruction: Instruction) -> set[int]:
    return {expression.uid for expression in walk_expressions(instruction) if isinstance(expression, Var)}


def _defined_inside(body: tuple[Instruction, ...]) -> set[int]:
    """The variables that ``body`` defines, in nested bodies too."""
    return {
        variable.uid for statement in walk_instructions(body) for variable in defined_variables(statement)
    }


def _assigned(body: tuple[Instruction, ...]) -> set[int]:
    """The variables that ``body`` changes in place (``set``, ``assign``), in nested bodies too."""
    written = set()
    for statement in walk_instructions(body):
        if isinstance(statement, AssignScalar):
            written.add(statement.variable.uid)
        elif isinstance(statement, AssignTensor):
            written.add(statement.destination.uid)
    return written
