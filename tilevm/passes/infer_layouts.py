"""``infer_layouts``: every register tile without a layout gets one, keeping every instruction's layout rule.

Before: any verified program. After: the same program, computing the same values, with a register layout on
every register tile; pinned layouts (given in the kernel) are kept. One walk in program order decides each
tile's layout when it is defined:

- a global load's tile gets :func:`vectorized_layout`: each thread holds 16 contiguous bytes of the dim whose
  stride is 1 (the last when no stride is known), threads spread over the rest, so that the load moves 16
  bytes a thread; so does any other tile made from memory or nothing (shared loads, allocations, iotas)
  unless a dot reads it, which makes it in the layout the dot wants (a loop's accumulator is then never
  converted);
- an elementwise result takes the layout of its full-shape operand holding the most bits (so that the
  largest tile is never moved), and the other operands are converted to what the broadcast rule
  (:func:`tilevm.layout.broadcast_layout`) then demands;
- casts, reductions and permutes derive their result from the operand's layout; a view keeps the operand's
  layout when :func:`tilevm.layout.view_layout` allows, and converts it first otherwise;
- a dot from shared memory gives its accumulator the warpgroups' layout
  (:func:`tilevm.layout.warpgroup.warpgroup_accumulator`), and a fresh tile that it reads (a loop's
  accumulator) is made in it whatever the chooser prefers: converting a running dot's result in the loop
  would read it before its wait;
- a dot takes the largest mma atom for its operand type whose fragments tile its shapes (the scalar atom
  where none does), spread over warps along its batch dims first (:meth:`LayoutChooser.quotient`), keeps
  the layouts its tiles already have where they fit that atom, and converts the others.

Where an operand's layout breaks the rule of the instruction reading it, a ``convert_layout`` is inserted in
front of that instruction; a pinned result layout the rule does not give is reached by one after it. The
choices are made by a :class:`LayoutChooser`; a subclass may choose differently (the tests choose at random
to show that layouts never change what a program computes).

>>> from tilevm.ir import parse
>>> program = infer_layouts(parse('''kernel k(%x: ptr<float16>) num_threads=128 {
...   %v: global<float16, [64, 64], strides=[64, 1]> = global_view(
...       pointer=%x, shape=[64, 64], strides=[64, 1])
...   %t: register<float16, [64, 64]> = load_global(tensor=%v, offsets=[0, 0], shape=[64, 64], dims=[0, 1])
...   store_global(tensor=%v, value=%t, offsets=[0, 0], dims=[0, 1])
... }'''))
>>> print(program.body[1].output.type)
register<float16, [64, 64], local(4, 1).spatial(16, 8).local(1, 8)>
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Sequence

from tilevm import ir
from tilevm.errors import SourceLocation
from tilevm.ir import (
    AllocRegister,
    Arange,
    AssignTensor,
    Binary,
    Cast,
    Const,
    ConvertLayout,
    Dot,
    Instruction,
    LoadGlobal,
    LoadShared,
    Permute,
    Program,
    Reduce,
    SharedDot,
    StoreGlobal,
    TileType,
    Unary,
    Var,
    View,
    Where,
)
from tilevm.ir.rewrite import walk_instructions
from tilevm.layout import (
    MmaFragments,
    RegisterLayout,
    broadcast_layout,
    dot_atom,
    local,
    mma_fragments,
    replicated,
    spatial,
    view_layout,
)
from tilevm.layout.mma import DTYPE_NAMES, MMA_OPERANDS
from tilevm.layout.warpgroup import warpgroup_accumulator, warpgroup_operand_a

__all__ = ["RULES", "LayoutChooser", "assign_layouts", "infer_layouts", "vectorized_layout"]

#: the bits a thread moves in one global access at best (a 16-byte vector load or store)
VECTOR_BITS = 128

#: the elementwise instructions' tile operands
_ELEMENTWISE_OPERANDS = ("operand", "lhs", "rhs", "condition", "on_true", "on_false")


def vectorized_layout(
    shape: Sequence[int], nbits: int, num_threads: int, contiguous_dim: int = -1
) -> RegisterLayout:
    """A layout of ``shape`` over exactly ``num_threads`` threads in which each thread holds up to 16 bytes
    (``VECTOR_BITS``) contiguous along ``contiguous_dim``, threads spread over the rest innermost first, a
    tile too large for the threads repeated locally and threads left over by a small tile replicating it.

    >>> vectorized_layout((64, 64), 16, 128)
    local(4, 1).spatial(16, 8).local(1, 8)
    >>> vectorized_layout((4, 32), 4, 128)
    replicated(32).spatial(4, 1).local(1, 32)
    >>> vectorized_layout((64, 8), 16, 32, contiguous_dim=0)
    local(1, 2).column_spatial(8, 4).local(8, 1)
    """
    if not shape:
        return replicated(num_threads)
    contiguous_dim %= len(shape)
    if contiguous_dim != len(shape) - 1:
        # laid out with the contiguous dim last, then permuted back
        order = [dim for dim in range(len(shape)) if dim != contiguous_dim] + [contiguous_dim]
        moved = vectorized_layout([shape[dim] for dim in order], nbits, num_threads)
        return moved.permute([order.index(dim) for dim in range(len(shape))])
    vector = _vector_length(shape[-1], nbits)
    rest = [*shape[:-1], shape[-1] // vector]
    threads, left = [1] * len(shape), num_threads
    for dim in reversed(range(len(shape))):
        threads[dim] = math.gcd(rest[dim], left)
        left //= threads[dim]
    repeats = [extent // count for extent, count in zip(rest, threads)]
    layout = local(*repeats) * spatial(*threads) * local(*[1] * (len(shape) - 1), vector)
    return replicated(left) * layout if left > 1 else layout


def _vector_length(extent: int, nbits: int) -> int:
    """How many elements of a dim of ``extent`` one thread holds in a vectorized layout: at most 16 bytes,
    and for widths that do not divide a byte (3, 5, 6, 7 bits) a multiple of 8 elements where the extent
    allows, so that a thread's elements fill whole bytes (no byte shared with another thread's store).

    >>> _vector_length(64, 16), _vector_length(64, 3), _vector_length(12, 3)
    (8, 32, 6)
    """
    if nbits < 8 and 8 % nbits:
        whole_bytes = [count for count in range(8, VECTOR_BITS // nbits + 1, 8) if extent % count == 0]
        if whole_bytes:
            return whole_bytes[-1]
    return math.gcd(extent, max(1, VECTOR_BITS // nbits))


class LayoutChooser:
    """The choices the layout rules leave open, made to keep global accesses wide and conversions few."""

    def __init__(self, num_threads: int) -> None:
        self.num_threads = num_threads

    def fresh(self, tile: TileType, demanded: RegisterLayout | None = None) -> RegisterLayout:
        """The layout of a tile made from memory or nothing: the layout a dot ``demanded`` of it where one
        does (so that neither a dot's accumulator nor its operands loaded from shared memory are converted on
        every iteration), else :func:`vectorized_layout`."""
        return demanded or vectorized_layout(tile.shape, tile.dtype.nbits, self.num_threads)

    def global_access(self, tile: TileType, contiguous_dim: int) -> RegisterLayout:
        """The layout of a tile loaded from global memory, contiguous there along ``contiguous_dim``."""
        return vectorized_layout(tile.shape, tile.dtype.nbits, self.num_threads, contiguous_dim)

    def elementwise(self, result: TileType, operands: Sequence[TileType]) -> RegisterLayout:
        """The layout of an elementwise result: that of its full-shape operand with the most bits."""
        full = [operand for operand in operands if operand.shape == result.shape]
        if not full:
            return self.fresh(result)
        return max(full, key=lambda operand: operand.dtype.nbits).layout

    def dot_atom(self, fitting: Sequence[MmaFragments]) -> MmaFragments | None:
        """The mma atom of a dot among those that tile its shapes (None: the scalar atom)."""
        return max(fitting, key=lambda atom: atom.c.local_size * atom.a.local_size, default=None)

    def quotient(self, shape: tuple[int, ...], num_groups: int) -> RegisterLayout:
        """The layout of a dot's atoms, of ``shape`` (its batch dims, then rows and columns of atoms), over
        ``num_groups`` thread groups (warps for mma): groups go to the batch dims first, outermost first, so
        that a batch of k slices (one per warp) is split between warps and no data moves between them; the
        groups left spread over the atoms as :func:`vectorized_layout` spreads threads."""
        *batch, rows, columns = shape
        threads, left = [], num_groups
        for extent in batch:
            threads.append(math.gcd(extent, left))
            left //= threads[-1]
        repeats = [extent // count for extent, count in zip(batch, threads)]
        inner = vectorized_layout((rows, columns), VECTOR_BITS, left)
        return local(*repeats, 1, 1) * spatial(*threads, 1, 1) * inner

    def view_candidates(self, operand: TileType) -> list[RegisterLayout]:
        """Operand layouts to try for a view, in order of preference, before replicating the whole tile."""
        return [operand.layout, self.fresh(operand)]


def infer_layouts(program: Program) -> Program:
    """``program`` with a layout on every register tile, chosen by :class:`LayoutChooser`."""
    return assign_layouts(program, LayoutChooser(program.num_threads))


def assign_layouts(program: Program, chooser: LayoutChooser) -> Program:
    """``program`` with a layout on every register tile, following each instruction's layout rule, with the
    open choices made by ``chooser``."""
    assigner = _Assigner(program.num_threads, chooser)
    # The layouts each dot wants are known from shapes and types alone: chosen first, they are what the
    # tiles feeding a dot are made in.
    for instruction in walk_instructions(program.body):
        if isinstance(instruction, Dot):
            layouts = assigner.dot_layouts[instruction.output.uid] = _dot_layouts(assigner, instruction)
            for key, layout in layouts.items():
                assigner.demanded.setdefault(getattr(instruction, key).uid, layout)
        elif isinstance(instruction, SharedDot):
            # not a preference: a loop carrying a running dot's result must never convert it (that reads it)
            assigner.required[instruction.accumulator.uid] = _shared_dot_layout(assigner, instruction)
            if instruction.a_in_registers:  # made in the tensor cores' fragments where it can be
                assigner.demanded.setdefault(instruction.a.uid, _shared_dot_a_layout(assigner, instruction))
    return dataclasses.replace(program, body=assigner.body(program.body))


class _Assigner:
    def __init__(self, num_threads: int, chooser: LayoutChooser) -> None:
        self.num_threads = num_threads
        self.chooser = chooser
        self.renamed: dict[int, Var] = {}
        self.dot_layouts: dict[int, dict[str, RegisterLayout]] = {}
        self.demanded: dict[int, RegisterLayout] = {}
        #: the layouts that fresh tiles must be made in whatever the chooser prefers (a dot from shared
        #: memory's accumulator)
        self.required: dict[int, RegisterLayout] = {}
        self.emitted: list[Instruction] = []
        self.location: SourceLocation | None = None

    def body(self, body: tuple[Instruction, ...]) -> tuple[Instruction, ...]:
        outer, self.emitted = self.emitted, []
        for instruction in body:
            substituted = self.substitute(instruction)
            # conversions made for an instruction carry its source line
            self.location = instruction.loc
            RULES[type(instruction)](self, substituted)
        emitted, self.emitted = self.emitted, outer
        return tuple(emitted)

    def substitute(self, instruction: Instruction) -> Instruction:
        """The instruction reading the laid-out tiles, with its nested bodies laid out."""
        changes = {}
        for item in dataclasses.fields(instruction):
            value = getattr(instruction, item.name)
            if isinstance(value, Var) and value.uid in self.renamed:
                changes[item.name] = self.renamed[value.uid]
            elif isinstance(value, tuple) and value and isinstance(value[0], Instruction):
                changes[item.name] = self.body(value)
        return dataclasses.replace(instruction, **changes)

    def convert(self, value: object, layout: RegisterLayout) -> object:
        """``value`` in ``layout``: itself when it has it (or is a scalar), else through a convert_layout."""
        if not isinstance(value, Var) or not isinstance(value.type, TileType) or value.type.layout == layout:
            return value
        converted = Var(value.name, value.type.with_layout(layout))
        self.emitted.append(ConvertLayout(output=converted, operand=value, loc=self.location))
        return converted

    def define(self, instruction: Instruction, layout: RegisterLayout, field: str = "output") -> None:
        """Emit ``instruction`` with its output in ``layout``; a pinned output layout is reached through a
        convert_layout after it."""
        output: Var = getattr(instruction, field)
        pinned = output.type.layout
        laid_out = Var(output.name, output.type.with_layout(layout))
        self.emitted.append(dataclasses.replace(instruction, **{field: laid_out}))
        if pinned is not None and pinned != layout:
            laid_out = self.convert(laid_out, pinned)
        self.renamed[output.uid] = laid_out

    def chosen(self, output: Var) -> RegisterLayout:
        """The output's pinned layout, or the one required of it, or the chooser's for a fresh tile."""
        if output.type.layout is not None:
            return output.type.layout
        required = self.required.get(output.uid)
        return required or self.chooser.fresh(output.type, self.demanded.get(output.uid))


def _keep(assigner: _Assigner, instruction: Instruction) -> None:
    assigner.emitted.append(instruction)


def _fresh(assigner: _Assigner, instruction: Instruction) -> None:
    assigner.define(instruction, assigner.chosen(instruction.output))


def _load_global(assigner: _Assigner, instruction: LoadGlobal) -> None:
    # A global load is an anchor of its own: wide accesses, and a convert to what a dot demands after it.
    output = instruction.output
    chosen = assigner.chooser.global_access(output.type, _contiguous_dim(instruction))
    assigner.define(instruction, output.type.layout or chosen)


def _store_global(assigner: _Assigner, instruction: StoreGlobal) -> None:
    # Sub-byte elements are stored in whole bytes a thread: a thread writing part of a byte would race with
    # the thread writing the rest of it, so a tile whose threads hold parts of bytes is converted first.
    value = instruction.value
    tile = value.type
    if isinstance(tile, TileType) and not _whole_bytes(
        tile.layout, tile.dtype.nbits, _contiguous_dim(instruction)
    ):
        dim = _contiguous_dim(instruction)
        layout = assigner.chooser.global_access(tile, dim)
        if not _whole_bytes(layout, tile.dtype.nbits, dim):
            layout = vectorized_layout(tile.shape, tile.dtype.nbits, assigner.num_threads, dim)
        value = assigner.convert(value, layout)
    assigner.emitted.append(dataclasses.replace(instruction, value=value))


def _contiguous_dim(instruction: LoadGlobal | StoreGlobal) -> int:
    """The tile dim whose global stride is known to be 1; the last when none is (a runtime stride)."""
    strides = instruction.tensor.type.strides
    contiguous = [dim for dim, source in enumerate(instruction.dims) if strides[source] == Const(1)]
    return contiguous[0] if contiguous else -1


def _whole_bytes(layout: RegisterLayout, nbits: int, dim: int) -> bool:
    """Whether every thread of ``layout`` holds its elements along ``dim`` in runs that fill whole bytes."""
    if nbits >= 8:
        return True
    dim %= layout.rank
    run = 1
    while run * nbits % 8 and layout.shape[dim] % (run * 2) == 0:
        run *= 2
    if run * nbits % 8:
        return False
    unit = local(*(run if axis == dim else 1 for axis in range(layout.rank)))
    return layout.divide(unit) is not None


def _elementwise(assigner: _Assigner, instruction: Instruction) -> None:
    operands = {
        name: value
        for name in _ELEMENTWISE_OPERANDS
        if isinstance(value := getattr(instruction, name, None), Var) and isinstance(value.type, TileType)
    }
    output = instruction.output
    result = output.type.layout or assigner.chooser.elementwise(
        output.type, [value.type for value in operands.values()]
    )
    changes = {
        name: assigner.convert(value, broadcast_layout(result, value.type.shape))
        for name, value in operands.items()
    }
    assigner.define(dataclasses.replace(instruction, **changes), result)


def _reduce(assigner: _Assigner, instruction: Reduce) -> None:
    keepdim = instruction.keepdim or instruction.operand.type.rank == 1
    assigner.define(instruction, instruction.operand.type.layout.reduce(instruction.dim, keepdim=keepdim))


def _cast(assigner: _Assigner, instruction: Cast) -> None:
    assigner.define(instruction, instruction.operand.type.layout)


def _permute(assigner: _Assigner, instruction: Permute) -> None:
    assigner.define(instruction, instruction.operand.type.layout.permute(instruction.dims))


def _assign(assigner: _Assigner, instruction: AssignTensor) -> None:
    value = assigner.convert(instruction.value, instruction.destination.type.layout)
    assigner.emitted.append(dataclasses.replace(instruction, value=value))


def _view(assigner: _Assigner, instruction: View) -> None:
    operand = instruction.operand
    bits = operand.type.dtype.nbits, instruction.dtype.nbits
    candidates = assigner.chooser.view_candidates(operand.type)
    # every thread holding the whole tile keeps its bits under any view
    candidates.append(replicated(assigner.num_threads) * local(*operand.type.shape))
    candidate, result = next(
        (candidate, result)
        for candidate in candidates
        if (result := view_layout(candidate, *bits, instruction.shape)) is not None
    )
    operand = assigner.convert(operand, candidate)
    assigner.define(dataclasses.replace(instruction, operand=operand), result)


def _dot(assigner: _Assigner, instruction: Dot) -> None:
    layouts = _kept_dot_layouts(instruction, assigner.dot_layouts[instruction.output.uid])
    changes = {key: assigner.convert(getattr(instruction, key), layout) for key, layout in layouts.items()}
    assigner.define(dataclasses.replace(instruction, **changes), layouts["accumulator"])


def _shared_dot(assigner: _Assigner, instruction: SharedDot) -> None:
    layout = _shared_dot_layout(assigner, instruction)
    changes = {"accumulator": assigner.convert(instruction.accumulator, layout)}
    if instruction.a_in_registers:
        changes["a"] = assigner.convert(instruction.a, _shared_dot_a_layout(assigner, instruction))
    assigner.define(dataclasses.replace(instruction, **changes), layout)


def _shared_dot_layout(assigner: _Assigner, instruction: SharedDot) -> RegisterLayout:
    """The accumulator's layout: the warpgroups' (``tilevm.layout.warpgroup``), whatever the target, so that
    the lowering for any target reads the same tiles (``mma.sync`` fragments where there is no ``wgmma``)."""
    m, n = instruction.accumulator.type.shape
    return warpgroup_accumulator(m, n, assigner.num_threads // 32)


def _shared_dot_a_layout(assigner: _Assigner, instruction: SharedDot) -> RegisterLayout:
    """The layout of an A in registers: the warpgroups' A fragments (wgmma's, and mma.sync's elsewhere)."""
    m, n = instruction.accumulator.type.shape
    return warpgroup_operand_a(m, n, instruction.a.type.shape[1], assigner.num_threads // 32)


def _kept_dot_layouts(instruction: Dot, chosen: dict[str, RegisterLayout]) -> dict[str, RegisterLayout]:
    """The layouts the dot reads its tiles in: the chosen ones, with as many as possible (the accumulator
    first) replaced by the layout the tile already has where the three still fit the chosen atom, so that
    tiles laid out upstream (a pinned load, a view) to fit are not converted."""
    dtype = instruction.a.type.dtype
    atom = dot_atom(chosen["a"], chosen["b"], chosen["accumulator"], dtype)
    actual = {key: getattr(instruction, key).type.layout for key in chosen}
    keys = [key for key in ("accumulator", "a", "b") if actual[key] not in (None, chosen[key])]
    for count in range(len(keys), 0, -1):
        for kept in itertools.combinations(keys, count):
            layouts = {**chosen, **{key: actual[key] for key in kept}}
            if dot_atom(layouts["a"], layouts["b"], layouts["accumulator"], dtype) == atom:
                return layouts
    return chosen


def _dot_layouts(assigner: _Assigner, instruction: Dot) -> dict[str, RegisterLayout]:
    """The layouts of the dot's ``a``, ``b`` and ``accumulator``: an atom's fragments over thread groups,
    laid out by the chooser's quotient over the batch dims and the atoms' rows and columns."""
    *batch, m, k = instruction.a.type.shape
    n = instruction.b.type.shape[-1]
    name = DTYPE_NAMES.get(str(instruction.a.type.dtype), str(instruction.a.type.dtype))
    atoms = [mma_fragments(shape, name) for shape, types in MMA_OPERANDS.items() if name in types]
    fitting = [a for a in atoms if m % a.c.shape[0] == 0 and n % a.c.shape[1] == 0 and k % a.a.shape[1] == 0]
    atom = assigner.chooser.dot_atom(fitting)
    atom_m, atom_n, atom_k = (1, 1, 1) if atom is None else (*atom.c.shape, atom.a.shape[1])
    groups = assigner.num_threads // (1 if atom is None else 32)
    quotient = assigner.chooser.quotient((*batch, m // atom_m, n // atom_n), groups)
    ones = (1,) * len(batch)
    layouts = {
        "a": quotient.reduce(-1) * local(*ones, 1, k // atom_k),
        "b": local(*ones, k // atom_k, 1) * quotient.reduce(-2),
        "accumulator": quotient,
    }
    if atom is not None:
        fragments = {"a": atom.a, "b": atom.b, "accumulator": atom.c}
        layouts = {key: layout * fragments[key] for key, layout in layouts.items()}
    return layouts


#: how each instruction class gets its layouts
RULES: dict[type[Instruction], Callable[..., None]] = {
    **{kind: _keep for kind in ir.INSTRUCTION_CLASSES},
    AllocRegister: _fresh,
    LoadGlobal: _load_global,
    StoreGlobal: _store_global,
    LoadShared: _fresh,
    Arange: _fresh,
    ConvertLayout: _fresh,
    Unary: _elementwise,
    Binary: _elementwise,
    Where: _elementwise,
    Reduce: _reduce,
    Cast: _cast,
    Permute: _permute,
    View: _view,
    Dot: _dot,
    SharedDot: _shared_dot,
    AssignTensor: _assign,
}
