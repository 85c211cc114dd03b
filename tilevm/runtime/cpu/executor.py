"""``execute``: run a Thread IR program on CPU tensors, a batch of blocks at a time, every thread at once.

The program is translated once into closures (``compiler``, cached per program object). The grid's blocks
run in batches of consecutive blocks (axis 0 fastest, as the reference executor orders them), each batch as
one array of threads with a shared memory per block, every instruction for the whole batch at once. Blocks
are independent, as on the GPU: the threads of one atomic instruction act in batch order (block by block),
but a block's second atomic comes after the next block's first, an order the GPU allows too; and a block
that reads global memory another block of its batch writes (a race on the GPU) may see other values than
the reference executor, which runs blocks one after another.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Sequence

import numpy as np

from tilevm.errors import LaunchError
from tilevm.ir import PointerType, Program
from tilevm.runtime.cpu.compiler import Compiled
from tilevm.runtime.cpu.registers import from_carrier
from tilevm.runtime.cpu.state import Batch
from tilevm.runtime.reference.arguments import bind_argument, launch_grid
from tilevm.runtime.reference.limits import check_while_limit

__all__ = ["execute"]

#: threads of one batch: long enough arrays for numpy to pay off, short enough to stay in cache
BATCH_THREADS = 4096
#: shared memory of one batch
BATCH_SHARED_BYTES = 1 << 22

_COMPILED: dict[int, tuple[weakref.ref, Compiled]] = {}


def execute(
    program: Program,
    arguments: Sequence[object],
    grid: tuple[int, ...],
    seed: int = 0,
    while_limit: int | None = None,
) -> None:
    """Run the Thread IR ``program`` over ``grid`` (1 to 3 axes of blocks), as the reference executor runs
    Tile IR: ``arguments`` match ``program.params`` (a CPU ``torch.Tensor`` for a pointer, written in place
    through the pointer's dtype; a Python int, float or bool for a scalar); ``seed`` fixes the random bytes
    that shared memory holds before it is written; ``while_limit`` bounds each ``while`` loop (None:
    ``TILEVM_WHILE_LIMIT`` or the default). An ``ExecutionError`` names the instruction's source line.
    """
    if len(arguments) != len(program.params):
        raise LaunchError(f"{program.name} takes {len(program.params)} arguments, got {len(arguments)}")
    full_grid = launch_grid(grid)
    limit = check_while_limit(while_limit)
    compiled = _compiled(program)
    values = [_register(param.variable, value) for param, value in zip(program.params, arguments)]
    rng = np.random.default_rng(seed)
    blocks = [(x, y, z) for z, y, x in itertools.product(*(range(extent) for extent in reversed(full_grid)))]
    shared_bytes = program.shared_bytes or 0
    per_batch = max(1, min(BATCH_THREADS // program.num_threads, BATCH_SHARED_BYTES // max(shared_bytes, 1)))
    for start in range(0, len(blocks), per_batch):
        batch = Batch.of(
            blocks[start : start + per_batch],
            full_grid,
            program.num_threads,
            shared_bytes,
            limit,
            compiled.slots,
            rng,
        )
        for slot, value in zip(compiled.param_slots, values):
            batch.registers[slot] = value
        compiled.run(batch)
        batch.copies.check_finished(batch.describe_thread)


def _register(variable: object, value: object) -> object:
    """A parameter's register: (storage, offset 0) for a pointer, the 0-d holder value for a scalar."""
    bound = bind_argument(variable.name, variable.type, value)
    if isinstance(variable.type, PointerType):
        return bound, np.asarray(0, dtype=np.int64)
    return from_carrier(bound, variable.type.dtype)


def _compiled(program: Program) -> Compiled:
    """The program's closures, compiled at its first launch (keyed by the object, which IR never mutates)."""
    entry = _COMPILED.get(id(program))
    if entry is not None and entry[0]() is program:
        return entry[1]
    compiled = Compiled(program)
    key = id(program)
    _COMPILED[key] = (weakref.ref(program, lambda _: _COMPILED.pop(key, None)), compiled)
    return compiled
