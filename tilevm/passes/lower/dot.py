"""Lowering of ``dot`` (``accumulator + a @ b``) by layout division: the atom that the three layouts fit
(``tilevm.layout.dot_atom``) is computed once per triple of atoms a thread group holds.

The layouts are ``a = Qa * Fa``, ``b = Qb * Fb``, ``accumulator = Qc * Fc`` with ``F`` the atom's fragments
(one element per thread for the "fma" atom, the ``mma.sync`` fragments of a warp otherwise). A thread's
local index ``i`` of a tile is ``iQ * F.local_size + iF``, so the elements of atom ``iQ`` are a contiguous
slice of its register, in the fragment's order, which for mma is the order of the instruction's registers.
The quotients say which atoms a group computes: its accumulator atom ``iQ`` (batch index ``B``, rows
``m``, columns ``n`` of atoms, a local coordinate of ``Qc``) needs, for every ``k``, the a atom at
``(B, m, k)`` and the b atom at ``(B, k, n)`` of ``Qa`` and ``Qb`` (``atom_pairs``), which the same group
holds because ``dot_atom`` checked that the quotients agree. A batched dot is so one atom chain per batch
index and atom; batch indices over warps (the split of k between warps) move no data.

- **mma**: for each ``k`` and each accumulator atom, one ``mma`` whose fragment registers are gathered from
  the operands' registers (``vector<float16, 2>``, ``vector<int8, 4>``, ``vector<int4, 8>``); the outputs
  are gathered back into the accumulator's local order. Float8 atoms where the target's tensor cores take
  no float8 (sm_80) are two float16 mma on the same elements, widened (``mma_steps``). The chain
  accumulates in the instruction's float32 or int32; an accumulator of another dtype that float32 or int32
  holds is converted in and out (integers wrap back, exactly, as Tile IR's do; a float16 or bfloat16
  accumulator is rounded once per dot), and one that they do not hold (int64, uint64, uint32) gets the sum
  of the products added at the end.
- **fma**: per ``k``, the thread's a and b elements for its accumulator elements are gathered into two
  vectors and ``accumulator + a * b`` is computed elementwise, in float32, or in int32 (int64 where a dtype
  has 64 bits), the operands converted exactly first; the result is converted to the accumulator's
  dtype once.

Where results differ from the reference executor (which sums the exact products in float64 and rounds once):
float dots round at every step, in ``k`` order for fma and in the tensor core's unspecified order within an
mma, so float results agree exactly only where every partial sum is exact (small-integer-valued inputs);
integer dots agree bit for bit (wrapping sums are exact in any order), except an mma into a 64-bit
accumulator whose partial sums over one dot overflow int32 (more than 2^31 / 255^2, about 33000 terms).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from tilevm.dtypes import DType, float16, float32, int32, int64
from tilevm.ir import Dot
from tilevm.ir.accumulators import holds_every_value
from tilevm.ir.expr import BinaryExpr, Const, Expr, Var
from tilevm.ir.thread import Gather, Mma
from tilevm.layout import SCALAR_ATOM, MmaFragments, RegisterLayout, dot_atom, mma_fragments
from tilevm.passes.lower.casts import convert
from tilevm.passes.lower.coordinates import local_coordinates
from tilevm.passes.lower.lowering import Handler, Lowering, LoweringError, tile_layout
from tilevm.passes.lower.registers import gather
from tilevm.passes.options import FLOAT8_TARGETS

__all__ = ["HANDLERS", "FragmentRegisters", "MmaSteps", "atom_pairs", "mma_steps"]


#: per accumulator atom (a local index of the accumulator's quotient), per k, the a and b atoms it reads
AtomPairs = tuple[tuple[tuple[int, int], ...], ...]


@lru_cache(maxsize=1024)
def atom_pairs(
    a: RegisterLayout, b: RegisterLayout, accumulator: RegisterLayout, fragments: MmaFragments
) -> AtomPairs:
    """For each atom of ``accumulator / fragments.c`` a thread holds (its local index there), and each ``k``
    of the atoms, the local indices in ``a / fragments.a`` and ``b / fragments.b`` of the atoms it reads:
    for the accumulator atom at ``(*batch, m, n)``, those at ``(*batch, m, k)`` and ``(*batch, k, n)``.

    >>> from tilevm.layout import spatial, local
    >>> c = spatial(4, 8).local(2, 1)
    >>> atom_pairs(c.reduce(1) * local(1, 3), local(3, 1) * c.reduce(0), c, SCALAR_ATOM)
    (((0, 0), (1, 1), (2, 2)), ((3, 0), (4, 1), (5, 2)))
    >>> batched = local(2, 1, 1) * c  # two batch indices in each thread's locals, b's after its k
    >>> a, b = batched.reduce(2) * local(1, 1, 2), local(1, 2, 1) * batched.reduce(1)
    >>> atom_pairs(a, b, batched, SCALAR_ATOM)
    (((0, 0), (1, 2)), ((2, 0), (3, 2)), ((4, 1), (5, 3)), ((6, 1), (7, 3)))
    """
    quotient_a, quotient_b = a / fragments.a, b / fragments.b
    a_atoms = _by_coordinate(quotient_a)
    b_atoms = _by_coordinate(quotient_b)
    depth = quotient_a.shape[-1]
    pairs = []
    for *batch, m, n in local_coordinates(accumulator / fragments.c).tolist():
        pairs.append(tuple((a_atoms[(*batch, m, k)], b_atoms[(*batch, k, n)]) for k in range(depth)))
    return tuple(pairs)


def _by_coordinate(quotient: RegisterLayout) -> dict[tuple[int, ...], int]:
    """The local index of each local coordinate of ``quotient``. Local coordinates suffice: ``dot_atom``
    checked that the operand's quotient reduced over k is the accumulator's reduced over n (or m), so the
    thread parts of their batch indices and rows (or columns) are the same, and k lies in the local part."""
    return {tuple(coordinate): index for index, coordinate in enumerate(local_coordinates(quotient).tolist())}


def _dot(lowering: Lowering, dot: Dot) -> None:
    layouts = tile_layout(dot.a), tile_layout(dot.b), tile_layout(dot.accumulator)
    operand = dot.a.type.dtype
    atom = dot_atom(*layouts, operand)
    if atom is None:
        raise LoweringError(f"the layouts of this dot fit no {operand} dot atom", lowering.location)
    if atom == "fma":
        result = _lower_fma(lowering, dot, atom_pairs(*layouts, SCALAR_ATOM))
    else:
        fragments = mma_fragments(atom, operand)
        steps = mma_steps(atom, operand, lowering.program.target)
        result = _lower_mma(lowering, dot, steps, fragments, atom_pairs(*layouts, fragments))
    lowering.bind(dot.output, result)


# -- one multiply-add per thread ---------------------------------------------------------------------------


def _lower_fma(lowering: Lowering, dot: Dot, pairs: AtomPairs) -> Expr:
    accumulator_dtype = dot.accumulator.type.dtype
    compute = _fma_dtype(dot.a.type.dtype, accumulator_dtype)
    a = convert(lowering, lowering.tile(dot.a), compute)
    b = convert(lowering, lowering.tile(dot.b), compute)
    total = convert(lowering, lowering.tile(dot.accumulator), compute)
    for k in range(len(pairs[0])):
        lhs = gather(a, tuple(per_k[k][0] for per_k in pairs))
        rhs = gather(b, tuple(per_k[k][1] for per_k in pairs))
        total = lowering.let("fma", BinaryExpr("add", total, BinaryExpr("mul", lhs, rhs)))
    return convert(lowering, total, accumulator_dtype)


def _fma_dtype(operand: DType, accumulator: DType) -> DType:
    """The dtype an fma dot computes in: wide enough that operands and accumulator convert exactly."""
    if operand.is_float:
        return float32
    return int64 if max(operand.nbits, accumulator.nbits) > 32 else int32


# -- tensor-core atoms -------------------------------------------------------------------------------------


#: elements of a fragment, one tuple per register
Registers = tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class MmaSteps:
    """How one mma atom is computed: ``mma`` instructions of ``shape`` on ``dtype``, one per step, each
    reading its a and b registers from the elements of the atom's fragments (positions in the fragment,
    one tuple per 32-bit register) converted to ``dtype``."""

    shape: str
    dtype: DType
    steps: tuple[tuple[Registers, Registers], ...]


def mma_steps(shape: str, operand: DType, target: str | None) -> MmaSteps:
    """The instructions of one mma atom of ``shape`` on ``operand`` for ``target``: the atom's own, or, for
    float8 where the tensor cores take none (before sm_89), two m16n8k16 on its elements converted to float16.

    The float8 m16n8k32 fragments hold, per lane, four consecutive k in each register (a0, a1: rows g and
    g + 8 at k 4t..4t+3; a2, a3: the same at k 16 + 4t..; b0, b1 likewise), the float16 m16n8k16 ones two
    (a0, a1 at k' 2t, 2t + 1; a2, a3 at k' 8 + 2t..; b0, b1). Reading k' = 2t + j as k = 4t + j and
    k' = 8 + 2t + j as k = 4t + 2 + j (the same for a and b, so that the sum over k is the same) makes each
    half of k32 one k16 atom of the elements the lane already holds.

    >>> from tilevm.dtypes import float8_e4m3
    >>> mma_steps("m16n8k32", float8_e4m3, "sm_80").steps[1]
    (((8, 9), (12, 13), (10, 11), (14, 15)), ((4, 5), (6, 7)))
    """
    if operand.is_float and operand.nbits == 8 and target not in FLOAT8_TARGETS:
        halves = tuple(
            (
                ((a, a + 1), (a + 4, a + 5), (a + 2, a + 3), (a + 6, a + 7)),
                ((b, b + 1), (b + 2, b + 3)),
            )
            for a, b in ((0, 0), (8, 4))
        )
        return MmaSteps("m16n8k16", float16, halves)
    fragments = mma_fragments(shape, operand)
    per_register = 32 // operand.nbits

    def registers(size: int) -> Registers:
        return tuple(tuple(range(first, first + per_register)) for first in range(0, size, per_register))

    return MmaSteps(shape, operand, ((registers(fragments.a.local_size), registers(fragments.b.local_size)),))


def _lower_mma(
    lowering: Lowering, dot: Dot, steps: MmaSteps, fragments: MmaFragments, pairs: AtomPairs
) -> Expr:
    operand = dot.a.type.dtype
    native = int32 if operand.is_integer else float32
    accumulator = lowering.tile(dot.accumulator)
    accumulator_dtype = dot.accumulator.type.dtype
    # The chain starts from the accumulator where the instruction's dtype holds it, else from zero.
    start = holds_every_value(native, accumulator_dtype)
    initial = (
        convert(lowering, accumulator, native) if start else Const(0.0 if native.is_float else 0, native)
    )
    per_atom = fragments.c.local_size
    chains = [
        [gather(initial, (atom * per_atom + j,)) if start else initial for j in range(per_atom)]
        for atom in range(len(pairs))
    ]
    a_fragment, b_fragment = (
        FragmentRegisters(lowering, lowering.tile(tile), fragment.local_size, list(registers), steps.dtype)
        for tile, fragment, registers in zip((dot.a, dot.b), (fragments.a, fragments.b), zip(*steps.steps))
    )
    for k in range(len(pairs[0])):
        for atom, per_k in enumerate(pairs):
            a_atom, b_atom = per_k[k]
            for step in range(len(steps.steps)):
                a, b = a_fragment.registers(a_atom, step), b_fragment.registers(b_atom, step)
                chains[atom] = _emit_mma(lowering, steps.shape, a, b, chains[atom])
    outputs = tuple(register for chain in chains for register in chain)
    total = lowering.let("mma_result", Gather(outputs, tuple(range(len(outputs)))))
    if start:
        return convert(lowering, total, accumulator_dtype)
    widened = convert(lowering, total, accumulator_dtype)
    return lowering.let("dot", BinaryExpr("add", accumulator, widened))


class FragmentRegisters:
    """The registers of an operand's fragment of each atom, for each step: gathers from the thread's
    register of the tile (after converting the atom's elements, all at once, the first time an mma reads
    them, where the steps take another dtype)."""

    def __init__(
        self, lowering: Lowering, tile: Expr, fragment_size: int, steps: list[Registers], dtype: DType
    ) -> None:
        self.lowering, self.tile, self.fragment_size = lowering, tile, fragment_size
        self.steps, self.dtype = steps, dtype
        self.cache: dict[tuple[int, int], tuple[Expr, ...]] = {}
        self.converted: dict[int, Expr] = {}

    def registers(self, atom: int, step: int) -> tuple[Expr, ...]:
        if (atom, step) not in self.cache:
            source, start = self._source(atom)
            # gathers of whole 32-bit registers cost nothing on the GPU: inline in the mma, not bound
            self.cache[atom, step] = tuple(
                gather(source, tuple(start + element for element in register))
                for register in self.steps[step]
            )
        return self.cache[atom, step]

    def _source(self, atom: int) -> tuple[Expr, int]:
        """The register holding the atom's fragment, and where the fragment starts in it."""
        start = atom * self.fragment_size
        if self.tile.type.dtype == self.dtype:
            return self.tile, start
        if atom not in self.converted:
            elements = gather(self.tile, tuple(range(start, start + self.fragment_size)))
            self.converted[atom] = convert(self.lowering, self.lowering.let("fragment", elements), self.dtype)
        return self.converted[atom], 0


def _emit_mma(
    lowering: Lowering, shape: str, a: tuple[Expr, ...], b: tuple[Expr, ...], c: list[Expr]
) -> list[Expr]:
    fields = {"shape": shape, "a": a, "b": b, "c": tuple(c)}
    types = Mma(outputs=(), **fields).result_type()
    outputs = tuple(Var("d", register_type) for register_type in types)
    lowering.emit(Mma(outputs=outputs, **fields))
    return list(outputs)


HANDLERS: dict[type, Handler] = {Dot: _dot}
