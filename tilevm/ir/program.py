"""A Tile IR program: one kernel, its parameters, the block size and the body one block runs."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING

from tilevm.ir.equality import programs_equal
from tilevm.ir.expr import Var
from tilevm.ir.stmt import Body
from tilevm.ir.types import PointerType, ScalarType

if TYPE_CHECKING:
    from tilevm.ir.instruction_set import InstructionSet

__all__ = ["MAX_REGISTERS", "MIN_REGISTERS", "Param", "Program", "check_max_registers", "instruction_set_of"]


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
    allocations are planned. ``max_registers`` is the user's: the most registers a thread may take (PTX
    ``.maxnreg``), None for the compiler's choice. Every field but the name, parameters and body is
    written in the text form's header as ``name=value``, so a new fact is a new field here.
    """

    name: str
    params: tuple[Param, ...]
    num_threads: int
    body: Body
    _: KW_ONLY
    target: str | None = None
    shared_bytes: int | None = None
    max_registers: int | None = None

    def __post_init__(self) -> None:
        check_max_registers(self.max_registers)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Program) and programs_equal(self, other)

    def __hash__(self) -> int:
        return hash((self.name, len(self.params), self.num_threads, len(self.body)))

    def __str__(self) -> str:
        """The text form, in the instruction set the program is written in (``instruction_set_of``)."""
        from tilevm.ir.printer import print_program  # the printer imports this module

        return print_program(self, instruction_set_of(self))


#: the registers a thread may have on every GPU tilevm targets (sm_80 and later), and the fewest ptxas
#: accepts from ``.maxnreg`` (for sm_90 it raises a smaller cap to 24, with a warning)
MAX_REGISTERS, MIN_REGISTERS = 255, 24


def check_max_registers(max_registers: int | None) -> None:
    """Raise a ``ValueError`` unless ``max_registers`` is None or a whole number of registers a thread can
    have (``MIN_REGISTERS`` to ``MAX_REGISTERS``)."""
    if max_registers is None:
        return
    if isinstance(max_registers, bool) or not isinstance(max_registers, int):
        raise ValueError(f"max_registers must be an int or None, got {max_registers!r}")
    if not MIN_REGISTERS <= max_registers <= MAX_REGISTERS:
        raise ValueError(
            f"max_registers must be between {MIN_REGISTERS} and {MAX_REGISTERS} (a thread's registers), "
            f"got {max_registers}"
        )


def instruction_set_of(program: Program) -> InstructionSet:
    r"""Thread IR if ``program`` uses an instruction or expression that Tile IR does not have, else Tile IR
    (a program of only the statements and scalar expressions both share reads the same in either).

    >>> from tilevm.ir import parse
    >>> from tilevm.ir.thread import THREAD_IR
    >>> text = 'kernel k() num_threads=32 {\n  %i: int32 = let(value=thread_index())\n}'
    >>> instruction_set_of(parse(text, THREAD_IR)).name, str(parse(text, THREAD_IR)) == text
    ('thread', True)
    """
    # these modules import this one
    from tilevm.ir.instruction_set import TILE_IR
    from tilevm.ir.rewrite import walk_expressions, walk_instructions
    from tilevm.ir.thread import THREAD_IR

    tile_classes = {*TILE_IR.instructions, *TILE_IR.expressions}
    used = {type(node) for node in walk_instructions(program.body)}
    used.update(type(node) for node in walk_expressions(program))
    return TILE_IR if used <= tile_classes else THREAD_IR
