"""The rules of a shared-memory plan, checked by the verifier once allocations carry byte offsets.

A program's shared memory is planned when its ``shared_bytes`` is set or any ``alloc_shared`` has an
``offset`` (bytes from the start of the block's dynamic shared memory). A plan keeps these rules:

- every allocation has an offset, and the program has its ``shared_bytes``;
- each offset is a multiple of 16 bytes (what one ``cp.async`` or ``ldmatrix`` row moves at once) and of
  its element's size;
- every allocation fits: ``offset + footprint_bytes() <= shared_bytes``;
- allocations live at the same time do not overlap. An allocation lives from its ``alloc_shared`` to the
  ``free_shared`` of it in the same body, or else to the end of that body (its variable is not seen after
  it, and each iteration of a loop allocates anew). A ``free_shared`` inside a nested body does not end it,
  since that body may not run, and freeing a slice does not end its allocation.

>>> from tilevm.dtypes import float16
>>> from tilevm.ir.builder import ProgramBuilder
>>> builder = ProgramBuilder("plan", num_threads=32)
>>> a = builder.emit_output(AllocShared, "a", dtype=float16, shape=(64,), offset=0)
>>> b = builder.emit_output(AllocShared, "b", dtype=float16, shape=(64,), offset=128)
>>> check_shared_plan(dataclasses.replace(builder.build(), shared_bytes=256))
>>> check_shared_plan(dataclasses.replace(builder.build(), shared_bytes=200))
Traceback (most recent call last):
    ...
tilevm.errors.CompilationError: alloc_shared: b spans bytes [128, 256), past shared_bytes 200
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator

from tilevm.errors import CompilationError
from tilevm.ir.expr import Var
from tilevm.ir.inst import Instruction
from tilevm.ir.program import Program
from tilevm.ir.rewrite import bodies
from tilevm.ir.shared_tiles import AllocShared, FreeShared

__all__ = ["MIN_SHARED_ALIGNMENT", "AllocationLifetime", "allocation_lifetimes", "check_shared_plan"]

#: the alignment of every planned allocation, in bytes: 16-byte vector accesses need it
MIN_SHARED_ALIGNMENT = 16


@dataclasses.dataclass(frozen=True)
class AllocationLifetime:
    """An allocation and the program-order positions ``[start, end)`` where it is live."""

    allocation: AllocShared
    start: int
    end: int

    @property
    def name(self) -> str:
        return self.allocation.output.name

    def byte_range(self) -> tuple[int, int]:
        offset = self.allocation.offset
        assert offset is not None  # checked before ranges are compared
        return offset, offset + self.allocation.footprint_bytes()


def check_shared_plan(program: Program) -> None:
    """Raise ``CompilationError`` at the first allocation that breaks a rule of the plan (see the module)."""
    lifetimes = sorted(
        allocation_lifetimes(program.body, itertools.count()), key=lambda lifetime: lifetime.start
    )
    planned = [lifetime for lifetime in lifetimes if lifetime.allocation.offset is not None]
    if program.shared_bytes is None and not planned:
        return
    if program.shared_bytes is None:
        _fail(planned[0], f"{planned[0].name} has a planned offset, but the program has no shared_bytes")
    if program.shared_bytes < 0:
        raise CompilationError(f"shared_bytes must be non-negative, got {program.shared_bytes}")
    for lifetime in lifetimes:
        _check_placement(lifetime, program.shared_bytes)
    for later in lifetimes:
        for earlier in lifetimes:
            if earlier.start < later.start < earlier.end:
                _check_apart(earlier, later)


def allocation_lifetimes(
    body: tuple[Instruction, ...], positions: Iterator[int]
) -> Iterator[AllocationLifetime]:
    """The lifetime of every allocation in ``body`` and its nested bodies, numbered in program order."""
    open_here: dict[int, tuple[AllocShared, int]] = {}
    for instruction in body:
        position = next(positions)
        if isinstance(instruction, AllocShared):
            open_here[instruction.output.uid] = (instruction, position)
        elif isinstance(instruction, FreeShared) and _freed_uid(instruction) in open_here:
            allocation, start = open_here.pop(instruction.tensor.uid)
            yield AllocationLifetime(allocation, start, position)
        for nested in bodies(instruction):
            yield from allocation_lifetimes(nested, positions)
    end = next(positions)
    for allocation, start in open_here.values():
        yield AllocationLifetime(allocation, start, end)


def _freed_uid(free: FreeShared) -> int | None:
    """The variable a ``free_shared`` frees, when it names one (a slice's or an allocation's)."""
    return free.tensor.uid if isinstance(free.tensor, Var) else None


def _check_placement(lifetime: AllocationLifetime, shared_bytes: int) -> None:
    offset = lifetime.allocation.offset
    if offset is None:
        _fail(lifetime, f"{lifetime.name} has no offset, but the program's shared memory is planned")
    alignment = max(MIN_SHARED_ALIGNMENT, lifetime.allocation.dtype.nbits // 8)
    if offset < 0 or offset % alignment:
        _fail(lifetime, f"offset {offset} of {lifetime.name} is not a non-negative multiple of {alignment}")
    start, end = lifetime.byte_range()
    if end > shared_bytes:
        _fail(lifetime, f"{lifetime.name} spans bytes [{start}, {end}), past shared_bytes {shared_bytes}")


def _check_apart(earlier: AllocationLifetime, later: AllocationLifetime) -> None:
    (earlier_start, earlier_end), (later_start, later_end) = earlier.byte_range(), later.byte_range()
    if earlier_start < later_end and later_start < earlier_end:
        _fail(
            later,
            f"{later.name} at bytes [{later_start}, {later_end}) overlaps {earlier.name} at bytes "
            f"[{earlier_start}, {earlier_end}), which is live here",
        )


def _fail(lifetime: AllocationLifetime, message: str) -> None:
    raise CompilationError(f"{lifetime.allocation.opname}: {message}", lifetime.allocation.loc)
