"""The state of one block while it runs: its variables, its place in the grid and its async copies.

>>> from tilevm.dtypes import int32
>>> from tilevm.ir import ScalarType, Var
>>> state = BlockState(block_index=(1, 0, 0), grid=(4, 1, 1), rng=np.random.default_rng(0), run=None)
>>> n = Var("n", ScalarType(int32))
>>> state.bind(n, np.asarray(3)); int(state.lookup(n))
3
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tilevm.ir import Var
from tilevm.ir.stmt import Body
from tilevm.runtime.reference.errors import ExecutionError
from tilevm.runtime.reference.limits import DEFAULT_WHILE_LIMIT
from tilevm.runtime.reference.shared import AsyncCopies, AsyncDots, InFlightDot, SharedMemory

__all__ = ["BlockState"]


@dataclass(eq=False)
class BlockState:
    """Values by variable (carrier arrays, shared tiles, pointers, global tensors) and the block's context.

    ``run`` executes a nested body in this state; control flow instructions call it. ``shared_memory``
    holds the block's planned shared memory, when the program has a plan, and the bytes accessed since the
    last sync (see ``shared`` and ``races``). ``while_limit`` bounds each ``while`` loop (see ``limits``).
    """

    block_index: tuple[int, int, int]
    grid: tuple[int, int, int]
    rng: np.random.Generator
    run: Callable[[Body, BlockState], None] | None
    values: dict[int, object] = field(default_factory=dict)
    copies: AsyncCopies = field(default_factory=AsyncCopies)
    dots: AsyncDots = field(default_factory=AsyncDots)
    while_limit: int = DEFAULT_WHILE_LIMIT
    shared_memory: SharedMemory = field(default_factory=lambda: SharedMemory.for_block(None))

    def bind(self, variable: Var, value: object) -> None:
        self.values[variable.uid] = value

    def lookup(self, variable: Var) -> object:
        value = self.lookup_in_flight(variable)
        if isinstance(value, InFlightDot):
            raise ExecutionError(
                f"{variable.name}, the result of {value.description}, is read before a dot_wait completes it"
            )
        return value

    def lookup_in_flight(self, variable: Var) -> object:
        """The variable's value, which may be an asynchronous dot's result in flight (``InFlightDot``): for
        the instructions that may read one (a dot from shared memory's accumulator, an assignment)."""
        try:
            return self.values[variable.uid]
        except KeyError:
            raise ExecutionError(f"variable {variable.name} is used before it is defined") from None

    def complete_dots(self, pending: int) -> None:
        """``dot_wait``: every variable holding a dot completed now holds its values."""
        done = self.dots.wait(pending)
        if done:
            for uid, value in self.values.items():
                if any(value is dot for dot in done):
                    self.values[uid] = value.values

    def run_body(self, body: Body) -> None:
        assert self.run is not None  # set by the executor for every block
        self.run(body, self)
