"""Global layouts: strided views of device memory whose sizes and strides may be runtime symbols.

A :class:`GlobalLayout` maps a coordinate to an element offset, ``sum(coord[d] * strides[d])``. Sizes and
strides are ints or :mod:`symbolic <tilevm.layout.symbolic>` expressions, so one compiled kernel serves
every ``m x k`` matrix; :meth:`GlobalLayout.evaluate` binds the symbols to get a concrete layout.

Text form: ``global_strided((m, k), strides=(k, 1))``; bare names in layout text become :class:`Symbol` s.

>>> from tilevm.layout.text import parse
>>> layout = GlobalLayout.row_major(Symbol("m"), Symbol("k"))
>>> str(layout), parse(str(layout)) == layout
('global_strided((m, k), strides=(k, 1))', True)
>>> str(layout.offset((2, Symbol("j"))))
'k * 2 + j'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tilevm.layout.errors import LayoutError
from tilevm.layout.symbolic import Expr, Size, Symbol, evaluate, free_symbols
from tilevm.layout.text import register_constructor, register_symbol_factory

__all__ = ["GlobalLayout", "global_strided"]


@dataclass(frozen=True)
class GlobalLayout:
    """Offset (in elements) of each coordinate of a tensor in global memory: ``sum(coord[d] * strides[d])``.

    >>> layout = GlobalLayout.column_major(2, 3)
    >>> layout.strides, layout.offset((1, 2))
    ((1, 2), 5)
    >>> layout.table().tolist()
    [[0, 2, 4], [1, 3, 5]]
    """

    shape: tuple[Size, ...]
    strides: tuple[Size, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _sizes(self.shape, "shape"))
        object.__setattr__(self, "strides", _sizes(self.strides, "strides"))
        if not self.shape:
            raise LayoutError("a global layout needs at least one dimension")
        if len(self.strides) != len(self.shape):
            raise LayoutError(f"global layout of rank {len(self.shape)} given {len(self.strides)} strides")
        for size in self.shape:
            if isinstance(size, int) and size <= 0:
                raise LayoutError(f"global layout sizes must be positive, got shape {_text(self.shape)}")

    @classmethod
    def row_major(cls, *shape: Size) -> GlobalLayout:
        """The contiguous layout with the last dimension fastest: strides ``(s1*...*s_last, ..., s_last, 1)``.

        >>> GlobalLayout.row_major(Symbol("m"), Symbol("k"), 4).strides
        (Mul(left=Symbol(name='k'), right=4), 4, 1)
        """
        strides: list[Size] = [1]
        for size in reversed(shape[1:]):
            strides.insert(0, size * strides[0])
        return cls(tuple(shape), tuple(strides))

    @classmethod
    def column_major(cls, *shape: Size) -> GlobalLayout:
        """The contiguous layout with the first dimension fastest: strides ``(1, s0, s0*s1, ...)``.

        >>> GlobalLayout.column_major(Symbol("m"), 8).strides
        (1, Symbol(name='m'))
        """
        strides: list[Size] = [1]
        for size in shape[:-1]:
            strides.append(strides[-1] * size)
        return cls(tuple(shape), tuple(strides))

    @property
    def rank(self) -> int:
        """The number of dimensions."""
        return len(self.shape)

    def symbols(self) -> frozenset[str]:
        """The names of the runtime values the shape and strides depend on."""
        names: frozenset[str] = frozenset()
        for size in (*self.shape, *self.strides):
            names |= free_symbols(size)
        return names

    def offset(self, coord: Sequence[Size]) -> Size:
        """The element offset of ``coord``: an int when everything is known, else a symbolic expression.

        Integer coordinates are checked against integer sizes; symbolic ones cannot be checked here.
        """
        if len(coord) != self.rank:
            raise LayoutError(f"coordinate {tuple(coord)} has rank {len(coord)}, layout has rank {self.rank}")
        total: Size = 0
        for index, size, stride in zip(coord, self.shape, self.strides, strict=True):
            if isinstance(index, int) and isinstance(size, int) and not 0 <= index < size:
                raise LayoutError(f"coordinate {tuple(coord)} is outside shape {_text(self.shape)}")
            total = total + index * stride
        return total

    def evaluate(self, env: Mapping[str, int]) -> GlobalLayout:
        """The concrete layout once the symbols have the values in ``env``.

        >>> str(GlobalLayout.row_major(Symbol("m"), Symbol("k")).evaluate({"m": 4, "k": 8}))
        'global_strided((4, 8), strides=(8, 1))'
        """
        shape = tuple(evaluate(size, env) for size in self.shape)
        strides = tuple(evaluate(stride, env) for stride in self.strides)
        return GlobalLayout(shape, strides)

    def table(self, env: Mapping[str, int] | None = None) -> np.ndarray:
        """An int64 array of shape ``shape`` (bound by ``env``) holding the offset of every coordinate."""
        concrete = self.evaluate(env or {})
        grid = np.indices(concrete.shape, dtype=np.int64)
        strides = np.asarray(concrete.strides, dtype=np.int64).reshape((-1,) + (1,) * concrete.rank)
        return (grid * strides).sum(axis=0)

    def __str__(self) -> str:
        return f"global_strided({_text(self.shape)}, strides={_text(self.strides)})"


def global_strided(shape: Sequence[Size], strides: Sequence[Size]) -> GlobalLayout:
    """The global layout with the given shape and strides (the text form's constructor).

    >>> global_strided([4, 8], strides=[1, 4]).offset((3, 1))
    7
    """
    return GlobalLayout(tuple(shape), tuple(strides))


def _sizes(values: Sequence[Size], what: str) -> tuple[Size, ...]:
    """``values`` as a tuple of sizes; numpy integers become ints so equal layouts compare equal."""
    if not isinstance(values, (tuple, list)):
        raise LayoutError(f"global layout {what} must be a tuple, got {values!r}")
    sizes: list[Size] = []
    for value in values:
        if isinstance(value, Expr):
            sizes.append(value)
        elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            sizes.append(int(value))
        else:
            raise LayoutError(f"global layout {what} must be ints or symbolic sizes, got {value!r}")
    return tuple(sizes)


def _text(sizes: tuple[Size, ...]) -> str:
    """A tuple of sizes as layout text, with the trailing comma a one-element tuple needs."""
    inner = ", ".join(str(size) for size in sizes)
    return f"({inner},)" if len(sizes) == 1 else f"({inner})"


register_constructor("global_strided", global_strided)
register_symbol_factory(Symbol)
