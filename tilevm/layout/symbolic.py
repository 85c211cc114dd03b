"""Symbolic integer sizes: runtime values such as a tensor's row count, and arithmetic on them.

A size is a plain ``int`` or an immutable :class:`Expr` tree over named :class:`Symbol` s. The builders fold
constants as they go (``x * 1`` is ``x``, ``(x * 2) * 3`` is ``x * 6``, a constant term always ends up on
the right), so equal arithmetic written the same way gives structurally equal, hashable trees.

>>> m, k = Symbol("m"), Symbol("k")
>>> stride = k * 2 * 4
>>> stride, str(m * stride + 3 - 1)
(Mul(left=Symbol(name='k'), right=8), 'm * k * 8 + 2')
>>> (m * stride + 2).evaluate({"m": 5, "k": 3})
122
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias

from tilevm.layout.errors import LayoutError

__all__ = ["Add", "Expr", "FloorDiv", "Mul", "Size", "Symbol", "evaluate", "free_symbols"]

# Precedence of each printed form: how tightly it binds, so the printer adds only the parentheses the
# parser needs. Atoms (names, non-negative constants) bind tightest.
_SUM, _PRODUCT, _ATOM = 1, 2, 3


class Expr:
    """Base of the symbolic tree: Python's ``+ - * //`` on an Expr (or an Expr and an int) build new trees."""

    def evaluate(self, env: Mapping[str, int]) -> int:
        """The value of this expression once every symbol in it has a value in ``env``."""
        raise NotImplementedError

    def symbols(self) -> frozenset[str]:
        """The names of the symbols this expression depends on."""
        raise NotImplementedError

    def precedence(self) -> int:
        """How tightly the printed form binds (see the module's precedence constants)."""
        raise NotImplementedError

    def __add__(self, other: Size) -> Size:
        return add(self, other)

    def __radd__(self, other: Size) -> Size:
        return add(other, self)

    def __sub__(self, other: Size) -> Size:
        return add(self, mul(other, -1))

    def __rsub__(self, other: Size) -> Size:
        return add(other, mul(self, -1))

    def __mul__(self, other: Size) -> Size:
        return mul(self, other)

    def __rmul__(self, other: Size) -> Size:
        return mul(other, self)

    def __floordiv__(self, other: Size) -> Size:
        return floordiv(self, other)

    def __rfloordiv__(self, other: Size) -> Size:
        return floordiv(other, self)

    def __neg__(self) -> Size:
        return mul(self, -1)


Size: TypeAlias = "int | Expr"


@dataclass(frozen=True)
class Symbol(Expr):
    """A named integer known only at run time, such as the ``m`` of an ``m x k`` tensor.

    >>> Symbol("m").evaluate({"m": 7})
    7
    """

    name: str

    def evaluate(self, env: Mapping[str, int]) -> int:
        if self.name not in env:
            raise LayoutError(f"no value for symbol '{self.name}'")
        return int(env[self.name])

    def symbols(self) -> frozenset[str]:
        return frozenset({self.name})

    def precedence(self) -> int:
        return _ATOM

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Add(Expr):
    """``left + right``; built by :func:`add`, which keeps a constant term on the right."""

    left: Size
    right: Size

    def evaluate(self, env: Mapping[str, int]) -> int:
        return evaluate(self.left, env) + evaluate(self.right, env)

    def symbols(self) -> frozenset[str]:
        return free_symbols(self.left) | free_symbols(self.right)

    def precedence(self) -> int:
        return _SUM

    def __str__(self) -> str:
        # A negative term prints as a subtraction, which parses back through `a + b * -1` to the same tree.
        negated = _negated(self.right)
        if negated is not None:
            return f"{_operand(self.left, _SUM)} - {_operand(negated, _PRODUCT)}"
        return f"{_operand(self.left, _SUM)} + {_operand(self.right, _PRODUCT)}"


@dataclass(frozen=True)
class Mul(Expr):
    """``left * right``; built by :func:`mul`, which keeps a constant factor on the right."""

    left: Size
    right: Size

    def evaluate(self, env: Mapping[str, int]) -> int:
        return evaluate(self.left, env) * evaluate(self.right, env)

    def symbols(self) -> frozenset[str]:
        return free_symbols(self.left) | free_symbols(self.right)

    def precedence(self) -> int:
        return _PRODUCT

    def __str__(self) -> str:
        return f"{_operand(self.left, _PRODUCT)} * {_operand(self.right, _ATOM)}"


@dataclass(frozen=True)
class FloorDiv(Expr):
    """``numerator // denominator``, rounding toward minus infinity as Python does."""

    numerator: Size
    denominator: Size

    def evaluate(self, env: Mapping[str, int]) -> int:
        denominator = evaluate(self.denominator, env)
        if denominator == 0:
            raise LayoutError(f"division by zero in '{self}'")
        return evaluate(self.numerator, env) // denominator

    def symbols(self) -> frozenset[str]:
        return free_symbols(self.numerator) | free_symbols(self.denominator)

    def precedence(self) -> int:
        return _PRODUCT

    def __str__(self) -> str:
        return f"{_operand(self.numerator, _PRODUCT)} // {_operand(self.denominator, _ATOM)}"


def evaluate(size: Size, env: Mapping[str, int]) -> int:
    """The integer value of ``size`` (an int or an Expr) under ``env``.

    >>> evaluate(Symbol("n") // 2, {"n": 9}), evaluate(4, {})
    (4, 4)
    """
    return size if isinstance(size, int) else size.evaluate(env)


def free_symbols(size: Size) -> frozenset[str]:
    """The symbol names ``size`` depends on: empty for an int.

    >>> sorted(free_symbols(Symbol("m") * Symbol("k") + 1))
    ['k', 'm']
    """
    return frozenset() if isinstance(size, int) else size.symbols()


def add(left: Size, right: Size) -> Size:
    """``left + right``, folded: constants combine and move right, ``x + 0`` is ``x``."""
    if isinstance(left, int) and isinstance(right, int):
        return left + right
    if isinstance(left, int):
        return add(right, left)
    if isinstance(right, Add) and isinstance(right.right, int):
        return add(add(left, right.left), right.right)
    if right == 0:
        return left
    if isinstance(right, int) and isinstance(left, Add) and isinstance(left.right, int):
        return add(left.left, left.right + right)
    return Add(left, right)


def mul(left: Size, right: Size) -> Size:
    """``left * right``, folded: constants combine and move right, ``x * 1`` is ``x``, ``x * 0`` is 0."""
    if isinstance(left, int) and isinstance(right, int):
        return left * right
    if isinstance(left, int):
        return mul(right, left)
    if isinstance(right, Mul) and isinstance(right.right, int):
        return mul(mul(left, right.left), right.right)
    if right in (0, 1):
        return 0 if right == 0 else left
    if isinstance(right, int) and isinstance(left, Mul) and isinstance(left.right, int):
        return mul(left.left, left.right * right)
    return Mul(left, right)


def floordiv(numerator: Size, denominator: Size) -> Size:
    """``numerator // denominator``, folded: ``x // 1`` is ``x``, ``(x * 8) // 4`` is ``x * 2``."""
    if isinstance(denominator, int) and denominator == 0:
        raise LayoutError(f"division by zero in '{numerator} // 0'")
    if isinstance(numerator, int) and isinstance(denominator, int):
        return numerator // denominator
    if denominator == 1:
        return numerator
    if (
        isinstance(denominator, int)
        and isinstance(numerator, Mul)
        and isinstance(numerator.right, int)
        and numerator.right % denominator == 0
    ):
        return mul(numerator.left, numerator.right // denominator)
    return FloorDiv(numerator, denominator)


def _negated(term: Size) -> Size | None:
    """``-term`` if ``term`` is a negative constant or has a negative constant factor, else None."""
    if isinstance(term, int) and term < 0:
        return -term
    if isinstance(term, Mul) and isinstance(term.right, int) and term.right < 0:
        return mul(term.left, -term.right)
    return None


def _operand(size: Size, weakest: int) -> str:
    """``size`` printed as an operand that needs to bind at least as tightly as ``weakest``."""
    if isinstance(size, int):
        # A negative constant prints as a unary minus, which binds tighter than any operator.
        return str(size)
    text = str(size)
    return text if size.precedence() >= weakest else f"({text})"
