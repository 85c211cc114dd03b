"""``execute``: run a Tile IR program on CPU tensors, block after block, instruction by instruction.

Each instruction class has one handler in ``HANDLERS`` (built once from the three handler tables), called
with the instruction and the block's state. An ``ExecutionError`` raised while an instruction runs is
reported at that instruction's source location.

>>> import torch
>>> from tilevm.dtypes import float32
>>> from tilevm.ir import BinaryExpr, BlockIndex, Const, GlobalView, LoadGlobal, ProgramBuilder
>>> from tilevm.ir import StoreGlobal, Unary
>>> builder = ProgramBuilder("negate", num_threads=32)
>>> x = builder.pointer_param("x", float32)
>>> view = builder.emit_output(GlobalView, "view", pointer=x, shape=(Const(5),), strides=(Const(1),))
>>> offset = BinaryExpr("mul", BlockIndex(0), Const(4))
>>> tile = builder.emit_output(LoadGlobal, "tile", tensor=view, offsets=(offset,), shape=(4,), dims=(0,))
>>> negated = builder.emit_output(Unary, "negated", op="neg", operand=tile)
>>> _ = builder.emit(StoreGlobal(tensor=view, value=negated, offsets=(offset,), dims=(0,)))
>>> data = torch.arange(5, dtype=torch.float32)
>>> execute(builder.build(), [data], grid=(2,))
>>> data.tolist()
[-0.0, -1.0, -2.0, -3.0, -4.0]
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np

from tilevm.errors import LaunchError
from tilevm.ir import Instruction, Program
from tilevm.ir.semantics import IntegerDivisionByZero
from tilevm.ir.stmt import Body
from tilevm.runtime.reference import compute_ops, control_ops, memory_ops
from tilevm.runtime.reference.arguments import bind_argument, launch_grid
from tilevm.runtime.reference.errors import ExecutionError
from tilevm.runtime.reference.limits import check_while_limit
from tilevm.runtime.reference.shared import SharedMemory
from tilevm.runtime.reference.state import BlockState

__all__ = ["HANDLERS", "execute"]

HANDLERS: dict[type[Instruction], Callable[..., None]] = {
    **memory_ops.HANDLERS,
    **compute_ops.HANDLERS,
    **control_ops.HANDLERS,
}


def execute(
    program: Program,
    arguments: Sequence[object],
    grid: tuple[int, ...],
    seed: int = 0,
    while_limit: int | None = None,
) -> None:
    """Run ``program`` over ``grid`` (1 to 3 axes of blocks), one block after another, axis 0 fastest.

    ``arguments`` match ``program.params``: a CPU ``torch.Tensor`` for a pointer (read and written in place,
    through the pointer's dtype), a Python int, float or bool for a scalar. ``seed`` fixes the poison that
    fills tiles before they are written. ``while_limit`` bounds the iterations of each ``while`` loop
    (None: ``TILEVM_WHILE_LIMIT`` or the default, see ``limits``).

    A ``KeyboardInterrupt`` (Ctrl-C) stops the run at once and propagates unchanged. Tensors are written in
    place as blocks run, so the blocks before the interrupted one have written their outputs and that one
    part of its own; nothing else outlives the call.
    """
    if len(arguments) != len(program.params):
        raise LaunchError(f"{program.name} takes {len(program.params)} arguments, got {len(arguments)}")
    full_grid = launch_grid(grid)
    limit = check_while_limit(while_limit)
    bound = [
        (param.variable, bind_argument(param.variable.name, param.variable.type, value))
        for param, value in zip(program.params, arguments)
    ]
    rng = np.random.default_rng(seed)
    for z, y, x in itertools.product(*(range(extent) for extent in reversed(full_grid))):
        memory = SharedMemory.for_block(program.shared_bytes)
        state = BlockState(
            block_index=(x, y, z),
            grid=full_grid,
            rng=rng,
            run=run_body,
            while_limit=limit,
            shared_memory=memory,
        )
        for variable, value in bound:
            state.bind(variable, value)
        run_body(program.body, state)
        state.copies.check_finished()
        state.dots.check_finished()


def run_body(body: Body, state: BlockState) -> None:
    """Run the instructions of ``body`` in order, in ``state``."""
    for instruction in body:
        handler = HANDLERS.get(type(instruction))
        if handler is None:
            raise ExecutionError(f"the reference executor has no handler for {type(instruction).__name__}")
        try:
            handler(instruction, state)
        except ExecutionError as error:
            raise error.at(instruction.loc) from None
        except IntegerDivisionByZero as error:
            raise ExecutionError(str(error), instruction.loc) from None
