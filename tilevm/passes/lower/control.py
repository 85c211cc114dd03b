"""Lowering of the instructions that keep their shape in Thread IR: scalar statements, control flow,
register tiles that a loop or branch overwrites, and global views.

Tile IR's control flow is the same in every thread of a block (its conditions are scalars), so each thread
runs the same loops and branches; a register tile that a loop overwrites (``alloc_register`` then ``assign``)
becomes a mutable register (``declare`` then ``set``).
"""

from __future__ import annotations

import dataclasses

from tilevm.ir import (
    AllocRegister,
    AssignScalar,
    AssignTensor,
    DeclareScalar,
    For,
    GlobalView,
    If,
    LetScalar,
    While,
)
from tilevm.ir.expr import Const
from tilevm.ir.stmt import Body
from tilevm.passes.lower.lowering import GlobalTensor, Handler, Lowering, splat, tile_layout

__all__ = ["HANDLERS"]


def _unchanged(lowering: Lowering, statement: LetScalar | DeclareScalar | AssignScalar) -> None:
    lowering.emit(statement)


def _for(lowering: Lowering, loop: For) -> None:
    lowering.emit(dataclasses.replace(loop, body=_loop_body(lowering, loop.body)))


def _while(lowering: Lowering, loop: While) -> None:
    lowering.emit(dataclasses.replace(loop, body=_loop_body(lowering, loop.body)))


def _loop_body(lowering: Lowering, body: Body) -> Body:
    """A loop's lowered body. Its first ``sync`` may follow stores of the iteration before, for the tensor
    cores to read (``Lowering.unfenced_stores``); after the loop, the state before it holds where it ran no
    iteration."""
    if lowering.stores_for_tensor_cores(body):
        lowering.unfenced_stores = True
    before = lowering.unfenced_stores
    lowered = lowering.lower_body(body)
    lowering.unfenced_stores = before or lowering.unfenced_stores
    return lowered


def _if(lowering: Lowering, branch: If) -> None:
    before = lowering.unfenced_stores
    then_body = lowering.lower_body(branch.then_body)
    after_then, lowering.unfenced_stores = lowering.unfenced_stores, before
    else_body = lowering.lower_body(branch.else_body)
    lowering.unfenced_stores = after_then or lowering.unfenced_stores
    lowering.emit(dataclasses.replace(branch, then_body=then_body, else_body=else_body))


def _alloc_register(lowering: Lowering, allocation: AllocRegister) -> None:
    # An allocation without init holds unspecified values; zero is as good as any and keeps runs reproducible.
    init = allocation.init if allocation.init is not None else Const(0, allocation.dtype)
    length = tile_layout(allocation.output).local_size
    lowering.bind(allocation.output, lowering.let(allocation.output.name, splat(init, length)))


def _assign_tensor(lowering: Lowering, assignment: AssignTensor) -> None:
    destination = lowering.tile(assignment.destination)
    lowering.emit(AssignScalar(variable=destination, value=lowering.tile(assignment.value)))
    if assignment.value in lowering.in_flight:  # the variable carries an asynchronous dot's result on
        lowering.in_flight.remove(assignment.value)
        lowering.in_flight.append(assignment.destination)


def _global_view(lowering: Lowering, view: GlobalView) -> None:
    tensor = GlobalTensor(view.pointer, view.output.type.dtype, view.shape, view.strides)
    lowering.bind_global(view.output, tensor)


HANDLERS: dict[type, Handler] = {
    LetScalar: _unchanged,
    DeclareScalar: _unchanged,
    AssignScalar: _unchanged,
    For: _for,
    While: _while,
    If: _if,
    AllocRegister: _alloc_register,
    AssignTensor: _assign_tensor,
    GlobalView: _global_view,
}
