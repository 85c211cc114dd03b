"""Moving two packed low-bit elements into the two 16-bit halves of one 32-bit word with a single ``prmt``:
the first step of every packed sequence to f16x2 / bf16x2.

Element ``i`` of a ``b``-bit register is the field at bit ``i*b`` of the register's bit stream (its 32-bit
words, word 0 lowest). A ``prmt`` picks any four bytes of two words, so a field lands in a half at
``bit % 8`` (or 8 more) when its bytes are the half's; a field that must sit elsewhere comes from the stream
shifted by a few bits (``shifted_word``: one shift per word, and a funnel from the neighbouring word only
where the field needs its bits). ``pair_word`` searches the shifts in a preferred order for a placement of
both fields that reads at most two words, which is one ``prmt``.

*Twins* need no prmt: two fields at the same bit of the two halves of one word (a pre-layout can store the
two elements of each f16x2 register so) are in place in the word itself, or in the word shifted by a few
bits, where both move together. ``twin_shifts`` picks, for each word, the fewest shifts that bring all its
twins to a position they fit at, so that the shifted words serve several pairs each.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tilevm.dtypes import uint32
from tilevm.ir.expr import BinaryExpr, Const, Expr
from tilevm.ir.thread import Prmt
from tilevm.passes.lower.cast_words import WORD_BITS, binary
from tilevm.passes.lower.lowering import Lowering

__all__ = ["RIGHT_FIRST", "LEFT_FIRST", "Placement", "Stream", "fewest_shifts", "twins"]

#: shifts to try, in order, for fields that should move down (integers: toward bit 0 of their half) ...
RIGHT_FIRST = (0, 4, 2, 6, 1, 3, 5, 7, -4, -2, -6, -1, -3, -5, -7)
#: ... and for fields that should move up (small floats: to the top of their half)
LEFT_FIRST = (0, -4, -2, -6, -1, -3, -5, -7, 4, 2, 6, 1, 3, 5, 7)
HALF_BITS = 16
#: what a distinct position of twin fields costs beside a shift (``Stream.twin_shifts``): in the quantized
#: GEMM's loop at 80 registers, int1 to float16 at 8 positions (one shift a word) spilled and took 7 SASS
#: instructions more per iteration than at 4 positions (three shifts a word)
POSITION_COST = 3
#: a prmt selector nibble that picks byte 0 of its second operand, which is zero when that is the constant 0
ZERO_BYTE = 4


@dataclass(frozen=True)
class Placement:
    """Where one field is taken from: the stream shifted right by ``shift`` bits (left when negative), its
    bytes ``first_byte`` and ``first_byte + 1`` as the half's two bytes, which puts the field at bit
    ``position`` of the half. ``needed`` are the stream bytes the field occupies."""

    shift: int
    first_byte: int
    position: int
    needed: tuple[int, ...]


class Stream:
    """The 32-bit words of a packed register, and its shifted copies, each computed once."""

    def __init__(self, lowering: Lowering, words: Sequence[Expr], field_bits: int) -> None:
        self.lowering = lowering
        self.words = list(words)
        self.field_bits = field_bits
        self._shifted: dict[tuple[int, int, bool], Expr] = {}
        self._permuted: dict[tuple[tuple[Expr, ...], int], Expr] = {}

    def placements(self, bit: int, fits: Callable[[int], bool], shifts: Sequence[int]) -> list[Placement]:
        """The ways to bring the field at stream ``bit`` into a half at a position that ``fits``."""
        found = []
        for shift in shifts:
            start = bit - shift
            for first_byte in (start // 8, start // 8 - 1):
                position = start - 8 * first_byte
                if position + self.field_bits > HALF_BITS or not fits(position):
                    continue
                needed = tuple(range(start // 8, (start + self.field_bits - 1) // 8 + 1))
                if needed[0] >= 0 and needed[-1] < 4 * len(self.words):
                    found.append(Placement(shift, first_byte, position, needed))
        return found

    def pair_word(self, low: list[Placement], high: list[Placement]) -> tuple[Expr, Placement, Placement]:
        """One ``prmt`` whose low half holds a field placed by one of ``low`` and whose high half holds one
        of ``high``: the first combination (in the order given) that reads at most two words."""
        for low_placement in low:
            for high_placement in high:
                registers = _registers(low_placement) | _registers(high_placement)
                if len(registers) <= 2:
                    return (
                        self._prmt(low_placement, high_placement, sorted(registers)),
                        low_placement,
                        high_placement,
                    )
        raise AssertionError("no placement of the two fields reads two words or fewer")

    def _prmt(self, low: Placement, high: Placement, registers: list[tuple[int, int]]) -> Expr:
        operands = [
            self.shifted_word(shift, index, self._needs_neighbour(shift, index, (low, high)))
            for shift, index in registers
        ]
        selector = 0
        for half, placement in enumerate((low, high)):
            for offset in (0, 1):
                byte = placement.first_byte + offset
                nibble = ZERO_BYTE
                if byte in placement.needed:
                    slot = registers.index((placement.shift, byte // 4))
                    nibble = 4 * slot + byte % 4
                selector |= nibble << (4 * (2 * half + offset))
        second = operands[1] if len(operands) == 2 else Const(0, uint32)
        key = ((operands[0], second), selector)
        if key not in self._permuted:  # two pairs of 2-bit elements share their byte
            self._permuted[key] = self.lowering.define(
                Prmt, "pair", a=operands[0], b=second, selector=Const(selector, uint32)
            )
        return self._permuted[key]

    def _needs_neighbour(self, shift: int, index: int, placements: tuple[Placement, Placement]) -> bool:
        """Whether a field read from word ``index`` of the stream shifted by ``shift`` has bits from the
        neighbouring word of the unshifted stream (above for a right shift, below for a left one)."""
        for placement in placements:
            if placement.shift != shift or not any(byte // 4 == index for byte in placement.needed):
                continue
            start = 8 * placement.first_byte + placement.position + shift - WORD_BITS * index
            if start < 0 or start + self.field_bits > WORD_BITS:
                return True
        return False

    def twin_shifts(
        self, pairs: Sequence[tuple[int, int]], starts: Sequence[int], lowest: int, highest: int
    ) -> dict[int, int]:
        """For each pair ``(low, high)`` of elements whose fields (starting at ``starts[low]`` and
        ``starts[high]`` of the stream) are twins, keyed by ``low``: the right shift (left when negative)
        of their word that puts both at a position from ``lowest`` to ``highest`` of their halves, the
        shifts of each word the fewest that serve all its twins (``fewest_shifts``)."""
        found = {low: starts[low] for low, high in pairs if twins(starts[low], starts[high], self.field_bits)}
        offsets = defaultdict(set)
        for start in found.values():
            offsets[start // WORD_BITS].add(start % WORD_BITS)

        def plan(top: int) -> dict[int, dict[int, int]]:
            return {word: fewest_shifts(frozenset(used), lowest, top) for word, used in offsets.items()}

        def cost(shifts: dict[int, dict[int, int]]) -> tuple[int, int]:
            """The shifts, plus ``POSITION_COST`` for each distinct position: its magic constant takes a
            register (a lop3 has one immediate, its mask) for as long as the casts run, and a loop that runs
            short of registers materializes it again every iteration, or spills."""
            count = sum(len(set(picks.values()) - {0}) for picks in shifts.values())
            positions = {offset - shift for picks in shifts.values() for offset, shift in picks.items()}
            return count + POSITION_COST * len(positions), count

        # fewer positions (a narrower window) for more shifts: the cheapest in all
        shifts = min((plan(top) for top in range(lowest, highest + 1)), key=cost)
        return {low: shifts[start // WORD_BITS][start % WORD_BITS] for low, start in found.items()}

    def shifted_word(self, shift: int, index: int, funnel: bool) -> Expr:
        """Word ``index`` of the stream shifted right by ``shift`` bits (left when negative), with the bits
        that come from the neighbouring word only when ``funnel``."""
        if shift == 0:
            return self.words[index]
        key = (shift, index, funnel)
        if key not in self._shifted:
            word = self.words[index]
            moved = binary("shr", word, shift) if shift > 0 else binary("shl", word, -shift)
            neighbour = index + (1 if shift > 0 else -1)
            if funnel and 0 <= neighbour < len(self.words):
                other = self.words[neighbour]
                rest = (
                    binary("shl", other, WORD_BITS - shift)
                    if shift > 0
                    else binary("shr", other, WORD_BITS + shift)
                )
                moved = BinaryExpr("or", moved, rest)
            self._shifted[key] = self.lowering.let("shifted", moved)
        return self._shifted[key]


def twins(low: int, high: int, field_bits: int) -> bool:
    """Whether fields starting at stream bits ``low`` and ``high`` sit at the same bit of the low and the
    high half of one 32-bit word."""
    return high == low + HALF_BITS and low % WORD_BITS + field_bits <= HALF_BITS


@functools.cache
def fewest_shifts(offsets: frozenset[int], lowest: int, highest: int) -> dict[int, int]:
    """For each of the ``offsets`` (bits of a half where twin fields start), a shift of the word that puts
    it at a position from ``lowest`` to ``highest``, with the fewest distinct nonzero shifts. Shift 0 (the
    word itself, free) serves the offsets from ``lowest`` to ``highest``; a shift ``s`` serves a window of
    the same width, ``s + lowest`` to ``s + highest``. The offsets below and above the free window are
    covered apart, each side greedily from its lowest offset (a window starting at the first offset not yet
    served), which takes the fewest windows."""
    picks, window = {}, None
    for offset in sorted(offsets):
        if lowest <= offset <= highest:
            picks[offset] = 0
            continue
        if window is None or not lowest <= offset - window <= highest:
            window = offset - lowest
        picks[offset] = window
    return picks


def _registers(placement: Placement) -> set[tuple[int, int]]:
    return {(placement.shift, byte // 4) for byte in placement.needed}
