"""The state of one lowering from Tile IR to Thread IR, and the helpers every instruction's lowering uses.

A handler lowers one Tile IR instruction: it reads the Thread IR values its operands became
(``Lowering.tile``, ``Lowering.shared_tile``, ``Lowering.global_tensor``), emits Thread IR instructions
(``emit``, ``define``, ``let``) and binds its output (``bind``, ``bind_shared``, ``bind_global``).

How Tile IR values become Thread IR values:

- a **register tile** with layout ``L`` becomes one register per thread holding the thread's ``L.local_size``
  elements in local-index order: a ``vector<dtype, n>``, or a scalar when ``n`` is 1 (``register_type``);
  sub-byte elements are packed, element 0 in the lowest bits, so a ``view`` that keeps each thread's bits
  is a ``bitcast``;
- a **shared tile** becomes a :class:`SharedTile`: its dtype, its shared layout and the byte offset of its
  origin in the block's shared memory (a scalar expression: slices at runtime offsets move it);
- a **global view** becomes a :class:`GlobalTensor`: its pointer, sizes and strides (scalar expressions);
- **scalars** stay what they are: Tile IR's scalar expressions are Thread IR's, evaluated by every thread.

Instructions emitted while a Tile IR instruction is lowered carry its source location, so an error found in
Thread IR (a race, a barrier in divergent code) is reported at the user's line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from tilevm.dtypes import DType, int32
from tilevm.errors import CompilationError, SourceLocation
from tilevm.ir import (
    AllocShared,
    AssignTensor,
    Instruction,
    PermuteShared,
    Program,
    SharedDot,
    SliceShared,
    StoreShared,
    TileType,
)
from tilevm.ir.expr import Const, Expr, Var
from tilevm.ir.rewrite import walk_instructions
from tilevm.ir.stmt import AssignScalar, Body, DeclareScalar, LetScalar
from tilevm.ir.thread import Gather, ThreadIndex
from tilevm.ir.types import ScalarType, Type, VectorType
from tilevm.layout import RegisterLayout, SharedLayout
from tilevm.passes.index_analysis import IndexAnalysis, analyze_indices
from tilevm.passes.lower.coordinates import thread_coordinates
from tilevm.passes.options import WGMMA_TARGETS

__all__ = [
    "GlobalTensor",
    "Handler",
    "Lowering",
    "LoweringError",
    "SharedTile",
    "register_type",
    "splat",
    "tile_layout",
    "vector_length",
]

#: lowers one Tile IR instruction into the lowering's current body
Handler = Callable[["Lowering", Instruction], None]

#: the alignment of the scratch area that lowering takes for itself (reductions, layout conversions)
SCRATCH_ALIGNMENT = 16


class LoweringError(CompilationError):
    """A Tile IR instruction that this lowering cannot turn into Thread IR (reported at its source line)."""


@dataclass(frozen=True)
class SharedTile:
    """A shared tile in Thread IR: element ``c`` is at byte ``base + layout(c) * dtype.nbits / 8`` of the
    block's shared memory (sub-byte elements packed, ``layout`` counting elements from the tile's origin)."""

    dtype: DType
    layout: SharedLayout
    base: Expr


@dataclass(frozen=True)
class GlobalTensor:
    """A global view in Thread IR: element ``c`` is at byte ``sum(c[d] * strides[d]) * dtype.nbits / 8`` from
    ``pointer``; ``shape`` bounds the coordinates (elements outside are masked off, never touched)."""

    pointer: Expr
    dtype: DType
    shape: tuple[Expr, ...]
    strides: tuple[Expr, ...]


def register_type(dtype: DType, length: int) -> ScalarType | VectorType:
    """The type of a thread's ``length`` elements of ``dtype``: a scalar for one, else a vector."""
    return ScalarType(dtype) if length == 1 else VectorType(dtype, length)


def vector_length(value_type: Type) -> int:
    """The number of elements a register of ``value_type`` holds (1 for a scalar)."""
    return value_type.length if isinstance(value_type, VectorType) else 1


def splat(value: Expr, length: int) -> Expr:
    """``value`` (a scalar) repeated ``length`` times; the scalar itself when ``length`` is 1."""
    return value if length == 1 else Gather((value,), (0,) * length)


class Lowering:
    """One lowering of a Tile IR program: the values bound so far and the Thread IR body being built."""

    def __init__(self, program: Program, handlers: dict[type[Instruction], Handler]) -> None:
        self.program = program
        self.handlers = handlers
        self.location: SourceLocation | None = None
        self._tiles: dict[Var, Expr] = {}
        self._lets: dict[Var, Expr] = {}
        #: expressions that compute a gather in words (``packed_gather``), by identity, with that gather
        self._gathers: dict[int, tuple[Expr, Expr]] = {}
        self._assigned = {
            instruction.destination
            for instruction in walk_instructions(program.body)
            if isinstance(instruction, AssignTensor)
        }
        self._shared: dict[Var, SharedTile] = {}
        self._globals: dict[Var, GlobalTensor] = {}
        self._prologue: list[Instruction] = []
        self._bodies: list[list[Instruction]] = []
        #: per body being built (``_bodies``), the values ``let_once`` bound there
        self._bound: list[dict[Expr, Var]] = []
        self._coordinates: dict[RegisterLayout, tuple[Expr, ...]] = {}
        self._scratch_start = _aligned(program.shared_bytes or 0, SCRATCH_ALIGNMENT)
        self._scratch_bytes = 0
        self._thread: Var | None = None
        #: the register tiles holding results of asynchronous dots that no wait has completed yet
        self.in_flight: list[Var] = []
        #: the A registers that asynchronous dots read, held until the wait that completes them
        self.held: list[Expr] = []
        #: whether a store into a tile the tensor cores read may have run with no async-proxy fence since
        #: (``async_proxy_views``): the next ``sync`` fences first
        self.unfenced_stores = False

    # -- the result ------------------------------------------------------------------------------------

    def lower_program(self) -> Program:
        """The Thread IR program: the hoisted per-thread values, then the lowered body."""
        body = self.lower_body(self.program.body)
        shared_bytes = self._scratch_start + self._scratch_bytes
        return dataclasses.replace(
            self.program,
            body=(*self._prologue, *body),
            shared_bytes=shared_bytes if shared_bytes else self.program.shared_bytes,
        )

    def lower_body(self, body: Body) -> Body:
        """The Thread IR of a Tile IR body (a loop's, a branch's), in a body of its own. Results in flight
        that are defined in it are out of scope after it (a variable assigned there carries them on)."""
        outer, outer_held = list(self.in_flight), len(self.held)
        with self.collect() as lowered:
            for instruction in body:
                self.lower(instruction)
        self.in_flight = [tile for tile in self.in_flight if tile in outer or tile in self._assigned]
        # the body's own A registers are out of scope after it: ptxas keeps them until the wait
        del self.held[outer_held:]
        return tuple(lowered)

    def lower(self, instruction: Instruction) -> None:
        handler = self.handlers.get(type(instruction))
        if handler is None:
            raise LoweringError(
                f"lowering to Thread IR does not handle {type(instruction).__name__} yet", instruction.loc
            )
        outer = self.location
        self.location = instruction.loc or outer
        try:
            handler(self, instruction)
        finally:
            self.location = outer

    @contextlib.contextmanager
    def collect(self) -> Iterator[list[Instruction]]:
        """Instructions emitted inside the ``with`` go to the yielded list (a nested body) instead."""
        self._bodies.append([])
        self._bound.append({})
        try:
            yield self._bodies[-1]
        finally:
            self._bodies.pop()
            self._bound.pop()

    # -- emitting --------------------------------------------------------------------------------------

    def emit(self, instruction: Instruction) -> Instruction:
        """Append ``instruction`` to the current body, at the current source location unless it has one."""
        if instruction.loc is None and self.location is not None:
            instruction = dataclasses.replace(instruction, loc=self.location)
        self._bodies[-1].append(instruction)
        return instruction

    def define(self, cls: type[Instruction], name: str, **fields: object) -> Var:
        """Emit ``cls(output=..., **fields)`` and return its output, typed by the instruction's type rule."""
        placeholder = Var(name, ScalarType(int32))
        output_type = cls(output=placeholder, **fields).result_type()
        output = Var(name, output_type)
        self.emit(cls(output=output, **fields))
        return output

    def let(self, name: str, value: Expr) -> Expr:
        """``value`` bound to a new variable (so that it is computed once), or ``value`` itself when it is
        already a variable or a constant."""
        if isinstance(value, Var | Const):
            return value
        variable = self.define(LetScalar, name, value=value)
        meaning = self._gathers.get(id(value))
        self._lets[variable] = meaning[1] if meaning is not None and meaning[0] is value else value
        return variable

    def stands_for(self, value: Expr, gather: Expr) -> Expr:
        """Record that ``value`` computes ``gather`` (a gather's elements moved in 32-bit words): a variable
        that ``let`` binds to ``value`` reads, through ``let_value``, as the gather, so that a cast can take
        each element's field from the gather's source instead of from the moved words. ``value``."""
        self._gathers[id(value)] = (value, gather)
        return value

    def let_value(self, variable: Expr) -> Expr | None:
        """The expression that ``let`` bound to ``variable`` (the gather it stands for, when that was
        computed in words: ``stands_for``), or None when ``variable`` is anything else (a register declared
        mutable is not one: its value may change). A let's value never changes, so a lowering may read
        through it (a cast reads its elements' bits through a ``gather``)."""
        return self._lets.get(variable) if isinstance(variable, Var) else None

    def let_once(self, name: str, value: Expr) -> Expr:
        """``let(name, value)``, or the variable that an equal ``value`` was bound to before in this body or
        an enclosing one (whose definition comes first): the words of a register that several gathers read,
        say."""
        for bound in reversed(self._bound):
            if value in bound:
                return bound[value]
        variable = self.let(name, value)
        if isinstance(variable, Var):
            self._bound[-1][value] = variable
        return variable

    @property
    def thread(self) -> Var:
        """The running thread's index in its block, computed once at the program's start."""
        if self._thread is None:
            self._thread = self._hoist("tid", ThreadIndex())
        return self._thread

    def thread_coordinates(self, layout: RegisterLayout) -> tuple[Expr, ...]:
        """Per dim, the running thread's part of the coordinates of its elements in a tile of ``layout``
        (``tilevm.passes.lower.coordinates``), computed once per program at its start."""
        coordinates = self._coordinates.get(layout)
        if coordinates is None:
            coordinates = tuple(
                self._hoist(f"coord{dim}", expression)
                for dim, expression in enumerate(thread_coordinates(layout, self.thread))
            )
            self._coordinates[layout] = coordinates
        return coordinates

    @functools.cached_property
    def warpgroup_dots(self) -> bool:
        """Whether the program's dots from shared memory may run on the warpgroups (``wgmma``: the target
        has it), so that their waits are ``wgmma.wait_group``."""
        return self.program.target in WGMMA_TARGETS and any(
            isinstance(instruction, SharedDot) for instruction in walk_instructions(self.program.body)
        )

    @functools.cached_property
    def async_proxy_views(self) -> frozenset[Var]:
        """The shared views whose stores need an async-proxy fence before the next barrier: views of
        allocations that a dot from shared memory also reads, where the tensor cores read them through the
        async proxy (``warpgroup_dots``). The fence orders the thread's ordinary stores before those reads,
        and the barrier that must come before the dot orders the other threads' (PTX ISA, "Memory
        Consistency Model", "Proxies"). It goes right before the barrier (``unfenced_stores``), as late as
        it can: an H100 runs it as ``MEMBAR.ALL.CTA``, which waits for every copy the thread still has in
        flight (int4 prefill, M = 4096, 8192x8192: 953 µs with the fence right after the stores, 883 just
        before the barrier, after the wait for the running dot). Operands that only ``cp.async`` writes
        need no fence, as in CUTLASS's and Triton's wgmma pipelines."""
        if not self.warpgroup_dots:
            return frozenset()
        return _views_of_stored_dot_operands(self.program.body)

    def stores_for_tensor_cores(self, body: Body) -> bool:
        """Whether ``body`` stores into a tile the tensor cores read (``async_proxy_views``)."""
        views = self.async_proxy_views
        return bool(views) and any(
            isinstance(instruction, StoreShared) and instruction.tensor in views
            for instruction in walk_instructions(body)
        )

    @functools.cached_property
    def index_analysis(self) -> IndexAnalysis:
        """The index analysis of the Tile IR program (what divides its scalars), computed once."""
        return analyze_indices(self.program)

    def scratch(self, nbytes: int) -> int:
        """The byte offset of ``nbytes`` of shared memory that this lowering may use between two barriers of
        its own (a reduction across warps, a layout conversion): it lies above every planned allocation,
        and every use shares it, so a user brackets its writes and reads with barriers."""
        self._scratch_bytes = max(self._scratch_bytes, _aligned(nbytes, SCRATCH_ALIGNMENT))
        return self._scratch_start

    @functools.cached_property
    def indices(self) -> IndexAnalysis:
        """The index analysis of the program being lowered (made on first use): what is known of each
        memory access's alignment, contiguity and bounds, from which accesses are vectorized."""
        return analyze_indices(self.program)

    # -- values ----------------------------------------------------------------------------------------

    def tile(self, variable: Expr) -> Expr:
        """The thread's register holding its elements of the register tile ``variable``."""
        try:
            return self._tiles[variable]
        except KeyError:
            raise LoweringError(
                f"register tile {_name(variable)} has no Thread IR value", self.location
            ) from None

    def bind(self, variable: Var, value: Expr) -> None:
        """The register tile ``variable`` is ``value`` (of ``register_type(dtype, local_size)``). A tile that
        the program overwrites later (``assign``) becomes a mutable register (``declare``) holding it."""
        expected = register_type(variable.type.dtype, tile_layout(variable).local_size)
        if value.type != expected:
            raise LoweringError(
                f"register tile {variable.name} was lowered to a {value.type}, expected {expected}",
                self.location,
            )
        if variable in self._assigned:
            value = self.define(DeclareScalar, variable.name, init=value)
        self._tiles[variable] = value

    def rebind(self, variable: Var, value: Expr) -> None:
        """The register tile ``variable`` holds ``value`` from here on (a mutable one is assigned it)."""
        if variable in self._assigned:
            self.emit(AssignScalar(variable=self._tiles[variable], value=value))
        else:
            self._tiles[variable] = value

    def shared_tile(self, variable: Expr) -> SharedTile:
        try:
            return self._shared[variable]
        except KeyError:
            raise LoweringError(
                f"shared tile {_name(variable)} has no Thread IR value", self.location
            ) from None

    def bind_shared(self, variable: Var, tile: SharedTile) -> None:
        self._shared[variable] = tile

    def global_tensor(self, variable: Expr) -> GlobalTensor:
        try:
            return self._globals[variable]
        except KeyError:
            raise LoweringError(
                f"global view {_name(variable)} has no Thread IR value", self.location
            ) from None

    def bind_global(self, variable: Var, tensor: GlobalTensor) -> None:
        self._globals[variable] = tensor

    def _hoist(self, name: str, value: Expr) -> Var:
        variable = Var(name, value.result_type())
        self._prologue.append(LetScalar(output=variable, value=value))
        return variable


def tile_layout(variable: Expr) -> RegisterLayout:
    """The register layout of a register tile, which layout inference has set."""
    tile_type = variable.type
    if not isinstance(tile_type, TileType) or not isinstance(tile_type.layout, RegisterLayout):
        raise LoweringError(f"{_name(variable)} is not a register tile with a layout: {tile_type}", None)
    return tile_type.layout


def _name(variable: Expr) -> str:
    return variable.name if isinstance(variable, Var) else str(variable)


def _aligned(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def _views_of_stored_dot_operands(body: Body) -> frozenset[Var]:
    """The views (allocations, slices, permutations) of the shared allocations that a dot from shared
    memory reads and a ``store_shared`` writes."""
    roots: dict[Var, Var] = {}
    read, stored = set(), set()
    for instruction in walk_instructions(body):
        if isinstance(instruction, AllocShared):
            roots[instruction.output] = instruction.output
        elif isinstance(instruction, SliceShared | PermuteShared):
            roots[instruction.output] = roots[instruction.tensor]
        elif isinstance(instruction, StoreShared):
            stored.add(roots[instruction.tensor])
        elif isinstance(instruction, SharedDot):
            shared = (instruction.a, instruction.b)[instruction.a_in_registers :]
            read.update(roots[operand] for operand in shared)
    both = read & stored
    return frozenset(view for view, root in roots.items() if root in both)
