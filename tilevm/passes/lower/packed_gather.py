"""Gathers of packed narrow elements (1 to 8 bits) computed on their 32-bit words, not element by element.

A register of ``b``-bit elements holds element ``i`` at bits ``[i*b, (i+1)*b)`` of its words
(``tilevm.passes.lower.lowering``). A ``gather`` that slices, concatenates or reorders such elements
(a ``permute``, the loads of a window put together, a layout conversion within the thread) is, bit for bit,
a map from the result's words to runs of the sources' bits. ``packed_gather`` builds each result word from
its *segments*, the longest runs of consecutive result bits that come from consecutive bits of one source:

- a segment that is a whole source word is that word, with no instruction (a concatenation of 16-byte loads
  costs nothing);
- a word whose segments are all whole bytes is one ``prmt`` of the (at most two) source words they come
  from, or three for three or four words (one a pair, one to merge);
- otherwise each segment is its source word shifted into place (a funnel shift of two neighbouring words
  when its bits straddle them: an element of 3, 5, 6 or 7 bits is read from at most two words), masked
  where the shift leaves other bits, and or'ed into the word (``and`` + ``or`` fuse into one ``lop3``).

LLVM sees 32-bit integer operations only. Left to it, such a gather is a ``shufflevector`` of ``<48 x i8>``
or of ``<128 x i3>``, which the NVPTX backend splits into bytes or single elements (one ``prmt`` or shift per
element, and phis of bytes where a predicated load meets the shuffle).

>>> words = segments_of_word((4, 4), 4, [(1, 0), (0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (0, 6), (0, 7)], 0)
>>> [(s.destination, s.length, s.source, s.bit) for s in words]  # element 0 of source 1, then 1..7 of 0
[(0, 4, 1, 0), (4, 28, 0, 4)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tilevm.dtypes import uint32
from tilevm.ir.expr import BinaryExpr, Const, Expr
from tilevm.ir.thread import Bitcast, Element, Gather, Pack, Prmt
from tilevm.passes.lower.local_maps import is_identity
from tilevm.passes.lower.lowering import Lowering, vector_length

__all__ = ["MAX_ELEMENT_BITS", "Segment", "packed_gather", "segments_of_word"]

WORD_BITS = 32
#: the widest elements gathered in words: wider ones (16-bit halves, say) are whole lanes of LLVM vectors,
#: which its shuffles move well
MAX_ELEMENT_BITS = 8
_FULL = (1 << WORD_BITS) - 1


@dataclass(frozen=True)
class Segment:
    """Bits ``[destination, destination + length)`` of a result word are bits ``[bit, bit + length)`` of
    source ``source`` (counted from its element 0)."""

    destination: int
    length: int
    source: int
    bit: int


def segments_of_word(
    lengths: Sequence[int], bits: int, picks: Sequence[tuple[int, int]], word: int
) -> list[Segment]:
    """The segments of result word ``word``, in order, for a gather of ``bits``-bit elements whose result
    element ``i`` is element ``picks[i][1]`` of source ``picks[i][0]`` (``lengths``: the sources' element
    counts, which the picks stay within)."""
    low, high = word * WORD_BITS, (word + 1) * WORD_BITS
    segments: list[Segment] = []
    for index in range(low // bits, min(-(-high // bits), len(picks))):
        source, element = picks[index]
        start, end = max(index * bits, low), min((index + 1) * bits, high)
        bit = element * bits + start - index * bits
        last = segments[-1] if segments else None
        if last is not None and last.source == source and last.bit + last.length == bit:
            segments[-1] = Segment(last.destination, last.length + end - start, source, last.bit)
        else:
            segments.append(Segment(start - low, end - start, source, bit))
    return segments


def packed_gather(lowering: Lowering, sources: Sequence[Expr], indices: Sequence[int]) -> Expr:
    """``Gather(sources, indices)`` (Thread IR's meaning: element ``j`` of the result is element
    ``indices[j]`` of the sources read as one row), computed on 32-bit words when the elements are of 1 to
    8 bits, every source is whole words and so is the result; the plain gather otherwise (a scalar result, a
    register of a few elements: LLVM moves those as one integer)."""
    sources, indices = tuple(sources), tuple(indices)
    dtype = sources[0].type.dtype
    lengths = [vector_length(source.type) for source in sources]
    if len(sources) == 1 and is_identity(indices, lengths[0]):
        return sources[0]
    if not _in_words(dtype.nbits, dtype.kind, lengths, len(indices)):
        return Gather(sources, indices)
    row = [(number, element) for number, length in enumerate(lengths) for element in range(length)]
    picks = [row[index] for index in indices]
    source_words = _SourceWords(lowering, sources, lengths, dtype.nbits)
    words = [
        source_words.word(segments_of_word(lengths, dtype.nbits, picks, word))
        for word in range(len(indices) * dtype.nbits // WORD_BITS)
    ]
    in_words = Bitcast(dtype, len(indices), words[0] if len(words) == 1 else Pack(tuple(words)))
    return lowering.stands_for(in_words, Gather(sources, indices))


def _in_words(bits: int, kind: str, lengths: list[int], count: int) -> bool:
    """Whether a gather of ``count`` elements of ``bits`` bits from sources of ``lengths`` goes in words."""
    if kind == "bool" or bits > MAX_ELEMENT_BITS or count == 1 or count * bits % WORD_BITS:
        return False
    return all(length > 1 and length * bits % WORD_BITS == 0 for length in lengths)


class _SourceWords:
    """The sources' 32-bit words, each register's bound once (for all the gathers that read it), and the
    result words built from them."""

    def __init__(self, lowering: Lowering, sources: tuple[Expr, ...], lengths: list[int], bits: int) -> None:
        self.lowering = lowering
        self.sources = sources
        self.counts = [length * bits // WORD_BITS for length in lengths]

    def source_word(self, source: int, index: int) -> Expr:
        """Word ``index`` of source ``source``."""
        count = self.counts[source]
        register = self.lowering.let_once("words", Bitcast(uint32, count, self.sources[source]))
        return register if count == 1 else Element(register, index)

    def word(self, segments: list[Segment]) -> Expr:
        """The result word made of ``segments``."""
        first = segments[0]
        if len(segments) == 1 and first.length == WORD_BITS and first.bit % WORD_BITS == 0:
            return self.source_word(first.source, first.bit // WORD_BITS)
        permuted = self._prmt(segments)
        if permuted is not None:
            return permuted
        # segments moved by the same shift of the same source word share one shift and one mask
        masks: dict[tuple[int, int, int], int] = {}
        funnels: set[tuple[int, int, int]] = set()
        for segment in segments:
            index, offset = divmod(segment.bit, WORD_BITS)
            key = (segment.source, index, offset - segment.destination)
            masks[key] = masks.get(key, 0) | ((1 << segment.length) - 1) << segment.destination
            if offset + segment.length > WORD_BITS:
                funnels.add(key)
        parts = [self._placed(key, key in funnels, mask) for key, mask in masks.items()]
        while len(parts) > 1:  # a balanced tree of ors: short dependency chains, shallow expressions
            pairs = [BinaryExpr("or", *parts[index : index + 2]) for index in range(0, len(parts) - 1, 2)]
            parts = pairs + parts[len(parts) - len(parts) % 2 :]
        return self.lowering.let("word", parts[0])

    def _prmt(self, segments: list[Segment]) -> Expr | None:
        """The word as ``prmt``s when every segment is whole bytes: one of the (at most two) source words
        its bytes come from, or, from three or four words, one for each pair and one that merges them."""
        if any(segment.destination % 8 or segment.length % 8 or segment.bit % 8 for segment in segments):
            return None
        picks: dict[int, tuple[tuple[int, int], int]] = {}  # result byte -> ((source, word), byte of it)
        for segment in segments:
            for offset in range(0, segment.length, 8):
                byte = (segment.bit + offset) // 8
                picks[(segment.destination + offset) // 8] = ((segment.source, byte // 4), byte % 4)
        words = list(dict.fromkeys(word for word, _ in picks.values()))
        if len(words) > 4:
            return None
        pairs = [words[start : start + 2] for start in range(0, len(words), 2)]
        halves = []
        for pair in pairs:
            registers = [self.source_word(*word) for word in pair]
            chosen = {at: (pair.index(word), byte) for at, (word, byte) in picks.items() if word in pair}
            halves.append(self._prmt_of(registers, chosen))
        if len(halves) == 1:
            return halves[0]
        # each half holds its bytes at their result positions already: byte b of the first or the second
        first = {at: (0 if word in pairs[0] else 1, at) for at, (word, _) in picks.items()}
        return self._prmt_of(halves, first)

    def _prmt_of(self, registers: list[Expr], picks: dict[int, tuple[int, int]]) -> Expr:
        """One ``prmt`` whose byte ``at`` is byte ``byte`` of ``registers[number]`` for each ``at: (number,
        byte)`` of ``picks`` (two registers at most; the bytes not picked are zero)."""
        selector = 0
        for at, (number, byte) in picks.items():
            selector |= (4 * number + byte) << (4 * at)
        for at in set(range(4)) - set(picks):
            selector |= 4 << (4 * at)  # byte 0 of b: zero when b is the constant 0
        b = registers[1] if len(registers) == 2 else Const(0, uint32)
        return self.lowering.define(Prmt, "word", a=registers[0], b=b, selector=Const(selector, uint32))

    def _placed(self, key: tuple[int, int, int], funnel: bool, mask: int) -> Expr:
        """Word ``index`` of source ``source`` (``key``) shifted right by ``shift`` bits (left when
        negative), with the bits of the next word after it when ``funnel`` (a funnel shift: segments that
        straddle two source words, whose shift is then right), and every bit outside ``mask`` zero."""
        source, index, shift = key
        word = self.source_word(source, index)
        if funnel:
            following = self.source_word(source, index + 1)
            moved = BinaryExpr("or", _shift(word, shift), _shift(following, shift - WORD_BITS))
            zeros = 0
        else:
            moved = _shift(word, shift)
            # a right shift clears the top bits, a left one the bottom bits
            zeros = ~(_FULL >> shift) & _FULL if shift > 0 else (1 << -shift) - 1
        if (mask | zeros) == _FULL:
            return moved
        return BinaryExpr("and", moved, Const(mask, uint32))


def _shift(word: Expr, shift: int) -> Expr:
    """``word`` shifted right by ``shift`` bits (left when negative)."""
    if shift == 0:
        return word
    if shift > 0:
        return BinaryExpr("shr", word, Const(shift, uint32))
    return BinaryExpr("shl", word, Const(-shift, uint32))
