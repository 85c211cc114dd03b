"""Shared-memory addresses in Thread IR: a shared tile's element offsets as int32 expressions, swizzle
included, and what is known to divide them.

A :class:`SharedTile`'s ``base`` is the byte offset, in the block's shared memory, of linear element offset
0 of its allocation's placement, moved by a slice's runtime part: ``allocation offset + B * nbits / 8``
(``tilevm.ir.shared_tiles`` calls ``B`` the runtime base). Element ``c`` lies at element offset
``swizzle(base * 8 / nbits + origin + c . strides)`` from byte 0: shared-memory planning puts a swizzled
allocation at a multiple of its swizzle's period, and adding a multiple of the period commutes with the
swizzle (``Swizzle.period``), so the allocation's offset may join the sum the swizzle acts on.

Element offsets are int32: shared memory is far below 2**31 bits.
"""

from __future__ import annotations

from tilevm.dtypes import int32
from tilevm.ir.expr import BinaryExpr, Const, Expr
from tilevm.ir.thread import SharedPointer
from tilevm.layout import SharedLayout
from tilevm.passes.index_divisibility import DIVISIBILITY_CAP, power_of_two_part
from tilevm.passes.lower.lowering import Lowering, LoweringError, SharedTile

__all__ = [
    "add",
    "base_elements",
    "byte_pointer",
    "check_addressable",
    "divisibility",
    "element_base",
    "element_divisibility",
    "linear_offset",
    "scale",
    "swizzled",
    "SwizzledOffsets",
]


def divisibility(lowering: Lowering, expression: Expr) -> int:
    """A power of two known to divide an int32 expression of the Tile IR program's scalars."""
    if isinstance(expression, Const):
        return power_of_two_part(int(expression.value))
    return lowering.index_analysis.of(expression)


def check_addressable(lowering: Lowering, tile: SharedTile, what: str) -> None:
    """Raise unless this lowering addresses ``tile``'s elements: their bits are a power of two (a 3-, 5-,
    6- or 7-bit element may straddle two bytes; no load moves it alone)."""
    nbits = tile.dtype.nbits
    if nbits != power_of_two_part(nbits):
        raise LoweringError(
            f"{what} of a {tile.dtype} shared tile: lowering addresses shared elements of 1, 2, 4, 8 or more "
            f"bits (a power of two), not {nbits}; view the tile as bytes first",
            lowering.location,
        )


def add(*terms: Expr) -> Expr:
    """The int32 sum of ``terms``, constants folded and zeros left out."""
    constant = sum(int(term.value) for term in terms if isinstance(term, Const))
    rest = [term for term in terms if not isinstance(term, Const)]
    total = rest[0] if rest else Const(constant, int32)
    for term in rest[1:]:
        total = BinaryExpr("add", total, term)
    if rest and constant:
        total = BinaryExpr("add", total, Const(constant, int32))
    return total


def scale(expression: Expr, factor: int) -> Expr:
    """``expression * factor`` (int32), folded for constants and 1."""
    if isinstance(expression, Const):
        return Const(int(expression.value) * factor, int32)
    return expression if factor == 1 else BinaryExpr("mul", expression, Const(factor, int32))


def base_elements(nbits: int, elements: Expr) -> Expr:
    """``elements`` elements of ``nbits`` (a power of two) in bytes; the count must fill whole bytes."""
    if nbits >= 8:
        return scale(elements, nbits // 8)
    if isinstance(elements, Const):
        return Const(int(elements.value) * nbits // 8, int32)
    return BinaryExpr("floordiv", elements, Const(8 // nbits, int32))


def element_base(tile: SharedTile) -> Expr:
    """The tile's base as an element offset from byte 0 (``base * 8 / nbits``, exact: see the module)."""
    nbits = tile.dtype.nbits
    if nbits <= 8:
        return scale(tile.base, 8 // nbits)
    return _divided(tile.base, nbits // 8)


def _divided(expression: Expr, divisor: int) -> Expr:
    """``expression / divisor`` for an ``expression`` that ``divisor`` divides: sums and products by
    constants divided term by term (a slice's base is ``offset + index * stride * size``), else a
    division."""
    if isinstance(expression, Const):
        return Const(int(expression.value) // divisor, int32)
    if isinstance(expression, BinaryExpr) and expression.op == "mul" and isinstance(expression.rhs, Const):
        factor = int(expression.rhs.value)
        if factor % divisor == 0:
            return scale(expression.lhs, factor // divisor)
    if isinstance(expression, BinaryExpr) and expression.op == "add":
        lhs, rhs = _divided(expression.lhs, divisor), _divided(expression.rhs, divisor)
        if not _is_division(lhs) and not _is_division(rhs):
            return add(lhs, rhs)
    return BinaryExpr("floordiv", expression, Const(divisor, int32))


def _is_division(expression: Expr) -> bool:
    return isinstance(expression, BinaryExpr) and expression.op == "floordiv"


def element_divisibility(lowering: Lowering, tile: SharedTile) -> int:
    """A power of two dividing :func:`element_base` (in elements)."""
    nbits = tile.dtype.nbits
    known = divisibility(lowering, tile.base)
    if known >= DIVISIBILITY_CAP:
        return DIVISIBILITY_CAP
    return max(1, known * 8 // nbits)


def linear_offset(
    lowering: Lowering, tile: SharedTile, coordinates: tuple[Expr, ...], name: str = "linear"
) -> Expr:
    """The linear offset (before the swizzle) of the element at ``coordinates`` (int32 expressions),
    bound to a variable."""
    layout = tile.layout
    terms = [element_base(tile), Const(layout.origin, int32)]
    terms += [scale(c, stride) for c, stride in zip(coordinates, layout.strides) if stride]
    return lowering.let(name, add(*terms))


def swizzled(lowering: Lowering, layout: SharedLayout, linear: Expr, name: str = "offset") -> Expr:
    """The element offset of ``linear`` through ``layout``'s swizzle: ``x ^ ((x & mask) >> shift)``."""
    swizzle = layout.swizzling
    if swizzle is None or swizzle.bits == 0:
        return linear
    if isinstance(linear, Const):
        return Const(swizzle(int(linear.value)), int32)
    mask = ((1 << swizzle.bits) - 1) << (swizzle.base + swizzle.shift)
    moved = BinaryExpr("shr", BinaryExpr("and", linear, Const(mask, int32)), Const(swizzle.shift, int32))
    return lowering.let(name, BinaryExpr("xor", linear, moved))


class SwizzledOffsets:
    """The element offsets ``swizzle(start + c)`` for constants ``c``: adding a multiple of the swizzle's
    period commutes with it (``Swizzle.period``), so ``swizzle(start + c % period) + (c - c % period)`` lets
    one swizzle serve every constant of a remainder."""

    def __init__(self, lowering: Lowering, layout: SharedLayout, start: Expr) -> None:
        self.lowering, self.layout, self.start = lowering, layout, start
        swizzle = layout.swizzling
        self.period = None if swizzle is None or swizzle.bits == 0 else swizzle.period
        self.swizzled: dict[int, Expr] = {}

    def __call__(self, constant: int) -> Expr:
        if self.period is None:
            return add(self.start, Const(constant, int32))
        remainder = constant % self.period
        if remainder not in self.swizzled:
            linear = self.lowering.let("linear", add(self.start, Const(remainder, int32)))
            self.swizzled[remainder] = swizzled(self.lowering, self.layout, linear)
        return add(self.swizzled[remainder], Const(constant - remainder, int32))


def byte_pointer(tile: SharedTile, offset: Expr) -> Expr:
    """A shared pointer to the element at element offset ``offset`` (which starts a whole byte). A constant
    last term of the offset stays the last term of the byte offset, so that it becomes the access's
    immediate: in ``(swizzled + c) * 2`` LLVM makes the sum an ``or`` (its bits are disjoint), and each
    access computes its whole address; ``swizzled * 2 + 2 * c`` shares one register among them."""
    nbits = tile.dtype.nbits
    rest, constant = _split_constant(offset)
    if constant and constant * nbits % 8 == 0:
        return SharedPointer(tile.dtype, add(base_elements(nbits, rest), Const(constant * nbits // 8, int32)))
    return SharedPointer(tile.dtype, base_elements(nbits, offset))


def _split_constant(offset: Expr) -> tuple[Expr, int]:
    """``offset`` as (the rest, the constant that ``add`` puts last in a sum; 0 when there is none)."""
    if isinstance(offset, BinaryExpr) and offset.op == "add" and isinstance(offset.rhs, Const):
        return offset.lhs, int(offset.rhs.value)
    return offset, 0
