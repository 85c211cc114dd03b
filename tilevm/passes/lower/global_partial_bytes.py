"""Stores of sub-byte elements into bytes that other threads, other blocks or the tensor's neighbours also
hold: each element is written into the aligned 32-bit word holding it with an atomic ``and`` that clears its
bits and an atomic ``or`` that sets them, so that no update of the rest of the word is lost (a plain
read-modify-write of the byte would race). An element of 3, 5, 6 or 7 bits may straddle two words: its
high bits then go to the next word the same way. It costs two atomics an element, so it serves only the
stores that cannot write whole bytes: a thread holding part of a byte, or a byte at a ragged end of the
tensor. The word may reach past the tensor's last byte; the two atomics leave those bytes as they are, and on
the GPU the word lies inside the allocation, which is a whole number of 256-byte units.
"""

from __future__ import annotations

from tilevm.dtypes import int32, int_type, uint32
from tilevm.ir.expr import Const, Expr, UnaryExpr
from tilevm.ir.thread import Atomic, Bitcast, Element, PointerAdd
from tilevm.ir.thread.values import PointerCast
from tilevm.passes.lower.casts import convert
from tilevm.passes.lower.global_window import ThreadWindow, binary
from tilevm.passes.lower.lowering import Lowering, LoweringError, vector_length

__all__ = ["WORD_ALIGNMENT", "store_through_words"]

#: the alignment (bytes) the tensor's pointer needs, so that the word holding a byte starts on a word
WORD_ALIGNMENT = 4


def store_through_words(
    lowering: Lowering, window: ThreadWindow, value: Expr, writer: Expr, pointer_divisibility: int
) -> None:
    """Store each of the thread's elements of ``value`` (a sub-byte register) where ``writer`` holds and the
    element lies in the tensor, through atomics on the 32-bit word holding it."""
    tensor = window.tensor
    nbits = tensor.dtype.nbits
    if pointer_divisibility % WORD_ALIGNMENT:
        raise LoweringError(
            f"store_global of {tensor.dtype} elements that share bytes with other threads needs atomics on "
            f"the 32-bit words holding them, so the tensor must start on a {WORD_ALIGNMENT}-byte boundary "
            "(tilevm specializes on 16-byte aligned tensors: pass one)",
            lowering.location,
        )
    words = PointerCast(uint32, tensor.pointer)
    code_type = int_type(nbits, signed=False)
    length = vector_length(value.type)
    for local in range(length):
        element = value if length == 1 else Element(value, local)
        bit = lowering.let("bit", binary("mul", window.address(local), Const(nbits, int32)))
        shift = lowering.let("shift", binary("and", bit, Const(31, int32)))
        word = PointerAdd(words, binary("shl", binary("shr", bit, Const(5, int32)), Const(2, int32)))
        predicate = lowering.let("in_bounds", binary("and", writer, window.in_bounds(local)))
        code = lowering.let("code", convert(lowering, Bitcast(code_type, 1, element), uint32))
        amount = convert(lowering, shift, uint32)
        ones = Const((1 << nbits) - 1, uint32)
        _update_word(lowering, word, binary("shl", ones, amount), binary("shl", code, amount), predicate)
        if 32 % nbits:
            # the bits past the word's end, shifted down into the next word (a shift by 32 gives 0)
            rest = convert(lowering, binary("sub", Const(32, int32), shift), uint32)
            spans = binary(
                "and", predicate, binary("gt", binary("add", shift, Const(nbits, int32)), Const(32, int32))
            )
            next_word = PointerAdd(word, Const(4, int32))
            _update_word(lowering, next_word, binary("shr", ones, rest), binary("shr", code, rest), spans)


def _update_word(lowering: Lowering, word: Expr, mask: Expr, bits: Expr, predicate: Expr) -> None:
    """Clear ``mask`` in the word, then set ``bits`` (inside ``mask``), each atomically."""
    for op, operand in (("and", UnaryExpr("not", mask)), ("or", bits)):
        lowering.define(Atomic, "old", op=op, pointer=word, value=operand, predicate=predicate)
