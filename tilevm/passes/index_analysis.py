"""Index analysis: what is known of every integer scalar and every tile access's addresses, as Triton's axis
analysis, from what the launch specialized on. It answers vectorization's question: "can this access move
16 bytes per thread?".

An analysis, not a pass: ``analyze_indices(program)`` is a pure function of the program, and
``annotate_indices(program)`` prints the program with what it found as ``# ...`` lines above each
instruction, so that FileCheck tests read like the IR they expect.

What it starts from: a parameter's ``divisibility`` (a pointer's byte alignment, an integer's multiple), unit
strides compiled in as the constant 1, ``let`` bindings (immutable: a variable is its one expression), loop
variables (a multiple of what divides both start and step), and nothing for ``declare``d, loaded and block
index values. Shared allocations start at a multiple of ``MIN_SHARED_ALIGNMENT`` bytes (their planned offset,
once planned: the planner keeps that alignment); slices and permuted views follow their parent's placement.

>>> from tilevm.ir import parse
>>> program = parse('''kernel k(%p: ptr<float16> divisibility=16, %n: int32) num_threads=32 {
...   %x: global<float16, [%n], strides=[1]> = global_view(pointer=%p, shape=[%n], strides=[1])
...   %start: int32 = let(value=(block_index(0) * 64) + 8)
...   %tile: register<float16, [64]> = load_global(tensor=%x, offsets=[%start], shape=[64], dims=[0])
... }''')
>>> access = analyze_indices(program).accesses[program.body[2]][0]
>>> access.start_alignment_bytes, access.dims[0].contiguity, access.vector_bits()  # (2 * 8) bytes
(16, 64, 128)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tilevm.ir import (
    AllocShared,
    AtomicGlobal,
    AtomicScalar,
    CopyAsync,
    DeclareScalar,
    Expr,
    For,
    GlobalView,
    Instruction,
    LetScalar,
    LoadGlobal,
    LoadScalar,
    LoadShared,
    PermuteShared,
    Program,
    SliceShared,
    StoreGlobal,
    StoreShared,
    Var,
    print_program,
)
from tilevm.ir.expr import Const
from tilevm.ir.rewrite import walk_instructions
from tilevm.ir.types import PointerType
from tilevm.ir.verify_shared import MIN_SHARED_ALIGNMENT
from tilevm.layout import SharedLayout
from tilevm.layout.shared import permute_shared
from tilevm.passes.index_divisibility import (
    DIVISIBILITY_CAP,
    expression_divisibility,
    is_integer_scalar,
    power_of_two_part,
)
from tilevm.passes.index_sign import is_nonnegative

__all__ = ["AccessInfo", "DimensionInfo", "IndexAnalysis", "analyze_indices", "annotate_indices"]

#: the widest access one thread makes: 16 bytes
MAX_VECTOR_BITS = 128


@dataclass(frozen=True)
class DimensionInfo:
    """What is known along one tile dimension (of ``extent`` elements) of an access.

    ``contiguity``: the window splits into runs of this many elements (starting at multiples of it) whose
    addresses are consecutive; ``constancy``: into runs of this many at the same address; ``step_bits``: a
    power of two dividing the address step (in bits) from an element to the next; ``remaining``: a power
    of two dividing the number of elements from the window's start to the tensor's end (the cap for shared
    tiles, which are never out of bounds), so that a vector that divides it is wholly in or wholly out.
    """

    extent: int
    contiguity: int
    constancy: int
    step_bits: int
    remaining: int


@dataclass(frozen=True)
class AccessInfo:
    """What is known of the addresses of one tile access: the operand named ``operand`` of an instruction,
    in ``memory`` ("global" or "shared"), per tile dimension in ``dims``.

    ``start_bits`` is a power of two dividing the address (in bits) of the window's first element: the
    pointer's or allocation's alignment, times what divides the offset in elements, times the element bits.
    """

    operand: str
    memory: str
    element_bits: int
    start_bits: int
    dims: tuple[DimensionInfo, ...]

    @property
    def start_alignment_bytes(self) -> int:
        """The start's alignment in bytes; 0 when the start may fall inside a byte (sub-byte elements)."""
        return self.start_bits // 8

    def vector_bits(self, limit: int = MAX_VECTOR_BITS, dim: int = -1) -> int:
        """The widest access (in bits, at most ``limit``) that one thread can make over consecutive elements
        of tile dimension ``dim`` (the last by default), at every chunk of the window: the chunk is
        contiguous and aligned to its own size wherever it starts (the start and every step along the other
        dimensions keep the alignment). One element when nothing wider is known, or when the element bits
        are not a power of two. The layout (which elements a thread holds) and the bounds (``remaining``)
        are the caller's.
        """
        element = self.element_bits
        if element != power_of_two_part(element):
            return element
        dim %= len(self.dims)
        others = [info.step_bits for other, info in enumerate(self.dims) if other != dim and info.extent > 1]
        alignment = min([self.start_bits, *others, power_of_two_part(self.dims[dim].contiguity) * element])
        width = min(alignment, limit)
        return max(width, element)


@dataclass(frozen=True)
class IndexAnalysis:
    """The result of ``analyze_indices``: ``divisibility`` of every integer scalar variable, and the
    ``accesses`` of every instruction that reads or writes a tile of memory (``copy_async`` has two: its
    global source, then its shared destination)."""

    divisibility: Mapping[Var, int]
    accesses: Mapping[Instruction, tuple[AccessInfo, ...]]
    nonnegative: frozenset[Var] = frozenset()

    def of(self, expression: Expr) -> int:
        """The divisibility of an integer scalar expression of the program."""
        return expression_divisibility(expression, self.divisibility)

    def is_nonnegative(self, expression: Expr) -> bool:
        """Whether an integer scalar expression of the program is never negative (``index_sign``)."""
        return is_nonnegative(expression, self.nonnegative)


@dataclass(frozen=True)
class _Global:
    pointer_bits: int
    shape: tuple[Expr, ...]
    strides: tuple[Expr, ...]


@dataclass(frozen=True)
class _Shared:
    """A shared tile's placement: its layout, what divides its runtime base (elements), and its allocation's
    alignment (bits)."""

    layout: SharedLayout
    base: int
    allocation_bits: int


def analyze_indices(program: Program) -> IndexAnalysis:
    """The index analysis of ``program`` (see the module doc)."""
    return _Analyzer(program).run()


class _Analyzer:
    def __init__(self, program: Program) -> None:
        self.program = program
        self.divisibility: dict[Var, int] = {}
        self.nonnegative: set[Var] = set()
        self.pointers: dict[Var, int] = {}
        self.globals: dict[Var, _Global] = {}
        self.shared: dict[Var, _Shared] = {}
        self.accesses: dict[Instruction, tuple[AccessInfo, ...]] = {}

    def run(self) -> IndexAnalysis:
        for param in self.program.params:
            variable = param.variable
            if isinstance(variable.type, PointerType):
                self.pointers[variable] = power_of_two_part(param.divisibility) * 8
            elif is_integer_scalar(variable):
                self.divisibility[variable] = min(
                    power_of_two_part(param.divisibility), 1 << variable.type.dtype.nbits
                )
        for instruction in walk_instructions(self.program.body):
            handler = _HANDLERS.get(type(instruction))
            if handler is not None:
                handler(self, instruction)
        return IndexAnalysis(self.divisibility, self.accesses, frozenset(self.nonnegative))

    def of(self, expression: Expr) -> int:
        return expression_divisibility(expression, self.divisibility)

    # scalars

    def let(self, instruction: LetScalar) -> None:
        if is_integer_scalar(instruction.output):
            self.divisibility[instruction.output] = self.of(instruction.value)
            if is_nonnegative(instruction.value, self.nonnegative):
                self.nonnegative.add(instruction.output)

    def unknown(self, instruction: DeclareScalar | LoadScalar | AtomicScalar) -> None:
        if is_integer_scalar(instruction.output):
            self.divisibility[instruction.output] = 1

    def loop(self, instruction: For) -> None:
        self.divisibility[instruction.variable] = min(self.of(instruction.start), self.of(instruction.step))
        # from a start of 0 or more, a step of 0 or more never makes the variable negative
        if all(is_nonnegative(bound, self.nonnegative) for bound in (instruction.start, instruction.step)):
            self.nonnegative.add(instruction.variable)

    # views

    def global_view(self, instruction: GlobalView) -> None:
        pointer = instruction.pointer
        bits = self.pointers.get(pointer, 8) if isinstance(pointer, Var) else 8
        self.globals[instruction.output] = _Global(bits, instruction.shape, instruction.strides)
        # a view's sizes are what the launch found (never negative)
        self.nonnegative.update(size for size in instruction.shape if isinstance(size, Var))

    def alloc_shared(self, instruction: AllocShared) -> None:
        offset = instruction.offset
        alignment = MIN_SHARED_ALIGNMENT if offset is None else power_of_two_part(offset)
        self.shared[instruction.output] = _Shared(instruction.placement(), DIVISIBILITY_CAP, alignment * 8)

    def slice_shared(self, instruction: SliceShared) -> None:
        parent = self.shared[instruction.tensor]
        base = parent.base
        for offset, stride in zip(instruction.offsets, parent.layout.strides):
            if not isinstance(offset, Const) and stride != 0:
                base = min(base, self.of(offset) * power_of_two_part(stride))
        layout = instruction.slice_layout(parent.layout)
        self.shared[instruction.output] = _Shared(layout, base, parent.allocation_bits)

    def permute(self, instruction: PermuteShared) -> None:
        parent = self.shared[instruction.tensor]
        layout = permute_shared(parent.layout, instruction.dims)
        self.shared[instruction.output] = _Shared(layout, parent.base, parent.allocation_bits)

    # accesses

    def global_window(self, operand: str, tensor: Var, offsets: tuple[Expr, ...], dims: tuple[int, ...],
                      shape: tuple[int, ...]) -> AccessInfo:  # fmt: skip
        view = self.globals[tensor]
        element = tensor.type.dtype.nbits
        offset = min([DIVISIBILITY_CAP, *(self.of(o) * self.of(s) for o, s in zip(offsets, view.strides))])
        start = min(view.pointer_bits, offset * power_of_two_part(element))
        infos = []
        for dim, extent in zip(dims, shape):
            stride = view.strides[dim]
            remaining = min(self.of(view.shape[dim]), self.of(offsets[dim]))
            infos.append(
                DimensionInfo(
                    extent=extent,
                    contiguity=extent if _is_constant(stride, 1) else 1,
                    constancy=extent if _is_constant(stride, 0) else 1,
                    step_bits=min(DIVISIBILITY_CAP, self.of(stride) * power_of_two_part(element)),
                    remaining=remaining,
                )
            )
        return AccessInfo(operand, "global", element, min(start, DIVISIBILITY_CAP), tuple(infos))

    def shared_tile(self, operand: str, tensor: Var) -> AccessInfo:
        placement = self.shared[tensor]
        layout, element = placement.layout, tensor.type.dtype.nbits
        swizzle = layout.swizzling
        # A swizzle keeps the low ``base`` bits of an offset: runs and alignments up to 2^base survive it.
        kept = DIVISIBILITY_CAP if swizzle is None or swizzle.bits == 0 else 1 << swizzle.base
        linear_start = min(placement.base, power_of_two_part(layout.origin), kept)
        start = min(placement.allocation_bits, linear_start * power_of_two_part(element), DIVISIBILITY_CAP)
        steps = [min(power_of_two_part(stride), kept) for stride in layout.strides]
        infos = []
        for dim, (extent, stride) in enumerate(zip(layout.shape, layout.strides)):
            # a run along ``dim`` stays contiguous through the swizzle when it sits inside one kept block
            others = [
                steps[other] for other in range(layout.rank) if other != dim and layout.shape[other] > 1
            ]
            run_limit = DIVISIBILITY_CAP if kept == DIVISIBILITY_CAP else min([kept, linear_start, *others])
            infos.append(
                DimensionInfo(
                    extent=extent,
                    contiguity=min(extent, run_limit) if stride == 1 else 1,
                    constancy=extent if stride == 0 else 1,
                    step_bits=min(DIVISIBILITY_CAP, steps[dim] * power_of_two_part(element)),
                    remaining=DIVISIBILITY_CAP,
                )
            )
        return AccessInfo(operand, "shared", element, start, tuple(infos))

    def load_global(self, instruction: LoadGlobal) -> None:
        window = self.global_window(
            "tensor", instruction.tensor, instruction.offsets, instruction.dims, instruction.shape
        )
        self.accesses[instruction] = (window,)

    def write_global(self, instruction: StoreGlobal | AtomicGlobal) -> None:
        shape = instruction.value.type.shape
        window = self.global_window(
            "tensor", instruction.tensor, instruction.offsets, instruction.dims, shape
        )
        self.accesses[instruction] = (window,)

    def copy_async(self, instruction: CopyAsync) -> None:
        shape = instruction.destination.type.shape
        source = self.global_window(
            "source", instruction.source, instruction.offsets, instruction.dims, shape
        )
        self.accesses[instruction] = (source, self.shared_tile("destination", instruction.destination))

    def shared_access(self, instruction: LoadShared | StoreShared) -> None:
        self.accesses[instruction] = (self.shared_tile("tensor", instruction.tensor),)


def _is_constant(expression: Expr, value: int) -> bool:
    return isinstance(expression, Const) and expression.value == value


#: what each instruction class tells the analysis; the others tell it nothing
_HANDLERS = {
    LetScalar: _Analyzer.let,
    DeclareScalar: _Analyzer.unknown,
    LoadScalar: _Analyzer.unknown,
    AtomicScalar: _Analyzer.unknown,
    For: _Analyzer.loop,
    GlobalView: _Analyzer.global_view,
    AllocShared: _Analyzer.alloc_shared,
    SliceShared: _Analyzer.slice_shared,
    PermuteShared: _Analyzer.permute,
    LoadGlobal: _Analyzer.load_global,
    StoreGlobal: _Analyzer.write_global,
    AtomicGlobal: _Analyzer.write_global,
    CopyAsync: _Analyzer.copy_async,
    LoadShared: _Analyzer.shared_access,
    StoreShared: _Analyzer.shared_access,
}


def annotate_indices(program: Program) -> str:
    """``program``'s text with the index analysis as a ``# ...`` line above each instruction it knows
    something of: a ``let``'s or a loop variable's divisibility, an access's facts (see the module doc)."""
    analysis = analyze_indices(program)
    comments: dict[Instruction, str] = {}
    for instruction in walk_instructions(program.body):
        defined = (
            instruction.variable if isinstance(instruction, For) else getattr(instruction, "output", None)
        )
        if defined in analysis.divisibility:
            comments[instruction] = f"divisibility {analysis.divisibility[defined]}"
        if instruction in analysis.accesses:
            comments[instruction] = "; ".join(
                _access_text(access) for access in analysis.accesses[instruction]
            )
    return print_program(program, comments=comments)


def _bits_text(bits: int) -> str:
    if bits == 8:
        return "1 byte"
    return f"{bits // 8} bytes" if bits % 8 == 0 else f"{bits} bits"


def _remaining_text(remaining: int) -> str:
    return "any" if remaining == DIVISIBILITY_CAP else str(remaining)  # shared tiles are never out of bounds


def _access_text(access: AccessInfo) -> str:
    def listing(values: list) -> str:
        return f"[{', '.join(map(str, values))}]"

    return (
        f"{access.operand}: {access.memory}, start aligned to {_bits_text(access.start_bits)}, "
        f"contiguity {listing([info.contiguity for info in access.dims])}, "
        f"constancy {listing([info.constancy for info in access.dims])}, "
        f"steps {listing([_bits_text(info.step_bits) for info in access.dims])}, "
        f"remaining {listing([_remaining_text(info.remaining) for info in access.dims])}, "
        f"vector {_bits_text(access.vector_bits())}"
    )
