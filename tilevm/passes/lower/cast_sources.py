"""Where the bits of a low-bit register's elements come from: the cast sequences read the fields through the
gathers and bitcasts that a ``permute`` or a ``view`` lowered to, from the register those reordered.

A ``permute`` or an in-thread ``convert_layout`` of a low-bit tile is a ``gather`` of its elements, which
on the GPU moves every field to its new place (shifts, masks, ors); a ``view`` is a ``bitcast``. A cast
that read the gathered register's words would pay for that move, then move the fields again into the
halves of its f16x2 / bf16x2 words. ``bit_sources`` follows the chain back instead: for each element, the
first bit of its field in the register the chain started from, so that a cast can take each field straight
from the loaded words. This is what lets a weight pre-layout put the two elements of one f16x2 register 16
bits apart in a word (one ``lop3`` then makes the pair) while the tile the kernel computes on keeps the
mma's element order.

The chain is followed only through values that cannot change between their definition and the cast: an
expression, or a variable that ``Lowering.let`` bound (not a register declared mutable, which an ``assign``
may overwrite), whose operand is itself such a variable.
"""

from __future__ import annotations

from dataclasses import dataclass

from tilevm.ir.expr import Expr
from tilevm.ir.thread import Bitcast, Element, Gather
from tilevm.passes.lower.lowering import Lowering, vector_length

__all__ = ["BitSources", "bit_sources"]


@dataclass(frozen=True)
class BitSources:
    """Element ``i`` of the traced register is the field at bits ``[starts[i], starts[i] + b)`` of
    ``register``'s bit stream (its elements packed, element 0 lowest)."""

    register: Expr
    starts: tuple[int, ...]


def bit_sources(lowering: Lowering, value: Expr) -> BitSources:
    """The register farthest up ``value``'s chain of gathers and bitcasts whose bits hold every element of
    ``value`` whole, and where each element's field starts in it (see the module's docstring)."""
    bits = value.type.dtype.nbits
    register, starts = value, tuple(index * bits for index in range(vector_length(value.type)))
    while True:
        bound = lowering.let_value(register)
        stepped = _step(register if bound is None else bound, starts, bits)
        if stepped is None:
            return BitSources(register, starts)
        operand, moved = stepped
        if bound is not None and lowering.let_value(operand) is None:
            return BitSources(register, starts)  # reading the operand here could see a later value
        register, starts = operand, moved


def _step(expression: Expr, starts: tuple[int, ...], bits: int) -> tuple[Expr, tuple[int, ...]] | None:
    """The operand of ``expression`` and where the fields start in it, when ``expression`` only moves bits
    (a bitcast, a gather of one register, an element) and keeps each field inside one element."""
    if isinstance(expression, Bitcast):
        return expression.operand, starts
    if isinstance(expression, Element):
        offset = expression.index * _element_bits(expression)
        return expression.vector, tuple(start + offset for start in starts)
    if isinstance(expression, Gather) and len(expression.sources) == 1:
        width = _element_bits(expression)
        if any(start // width != (start + bits - 1) // width for start in starts):
            return None  # a field across two elements of the gather
        moved = tuple(expression.indices[start // width] * width + start % width for start in starts)
        return expression.sources[0], moved
    return None


def _element_bits(expression: Expr) -> int:
    return expression.type.dtype.nbits
