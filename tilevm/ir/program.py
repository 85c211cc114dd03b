"""A Tile IR program: one kernel, its parameters, the block size and the body one block runs."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

from tilevm.ir.equality import programs_equal
from tilevm.ir.expr import Var
from tilevm.ir.stmt import Body
from tilevm.ir.types import PointerType, ScalarType

__all__ = ["Param", "Program"]


@dataclass(frozen=True)
class Param:
    """A kernel parameter: a pointer or a scalar, with what the launch guarantees about it.

    ``divisibility`` is a promise checked at launch: a pointer's address (in bytes) or an integer's value is
    a multiple of it. Kernels are specialized on it, so that passes can vectorize.
    """

    variable: Var
    divisibility: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.variable.type, (PointerType, ScalarType)):
            raise TypeError(f"a parameter is a pointer or a scalar, not {self.variable.type}")


@dataclass(frozen=True)
class Program:
    """A kernel: every block of the grid runs ``body`` with ``num_threads`` threads.

    The grid is given at launch; ``BlockIndex`` and ``GridSize`` expressions read it. Two programs compare
    equal when they are the same up to the renaming of variables (see ``tilevm.ir.equality``).

    The keyword fields are facts about the target, set by passes: ``target`` names the GPU architecture the
    program is compiled for (``"sm_90"``), ``shared_bytes`` is the shared memory one block needs once
    allocations are planned. Every field but the name, parameters and body is written in the text form's
    header as ``name=value``, so a new fact is a new field here.
    """

    name: str
    params: tuple[Param, ...]
    num_threads: int
    body: Body
    _: KW_ONLY
    target: str | None = None
    shared_bytes: int | None = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Program) and programs_equal(self, other)

    def __hash__(self) -> int:
        return hash((self.name, len(self.params), self.num_threads, len(self.body)))

    def __str__(self) -> str:
        from tilevm.ir.printer import print_program  # the printer imports this module

        return print_program(self)
