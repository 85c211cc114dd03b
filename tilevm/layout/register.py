"""Register layouts: which thread, and which of its local elements, holds each element of a tile.

A layout is a function ``(thread, local) -> coordinate``, built from primitives by a Kronecker product:

>>> layout = spatial(8, 4).local(2, 2)
>>> layout.shape, layout.num_threads, layout.local_size
((16, 8), 32, 4)
>>> layout.table()[5, 3].tolist()  # thread 5 is (1, 1) in the 8x4 threads; local 3 is (1, 1) in its 2x2
[3, 3]
>>> layout / local(2, 2) == spatial(8, 4)
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np

from tilevm.layout import register_ops
from tilevm.layout.errors import LayoutError
from tilevm.layout.register_modes import Fields, Modes, canonical_fields, entry_size, modes_from_fields
from tilevm.layout.register_print import layout_text
from tilevm.layout.text import register_constructor

__all__ = [
    "RegisterLayout",
    "column_local",
    "column_spatial",
    "local",
    "register_layout",
    "replicated",
    "spatial",
]


@dataclass(frozen=True, repr=False)
class RegisterLayout:
    """A register layout in canonical form (see ``register_modes``); equal tables mean equal fields.

    ``mode_shape`` lists every dim's modes (mixed-radix digits, most significant first), dim after dim;
    ``spatial_modes`` are the digits of the thread index, most significant first (a mode's position in
    ``mode_shape``, or ``-k`` for ``k`` replicas); ``local_modes`` those of the local index. Build layouts
    with the constructors below; construct this class directly only with canonical fields.

    >>> spatial(2).spatial(4) == spatial(8), str(spatial(2) * local(3))
    (True, 'spatial(2).local(3)')
    """

    shape: tuple[int, ...]
    mode_shape: tuple[int, ...]
    spatial_modes: tuple[int, ...]
    local_modes: tuple[int, ...]

    __layout_methods__: ClassVar[tuple[str, ...]] = (
        "local",
        "spatial",
        "column_local",
        "column_spatial",
        "replicated",
        "reduce",
        "permute",
        "reshape",
        "concat",
    )

    def __post_init__(self) -> None:
        if canonical_fields(self.modes()) != self._fields():
            raise LayoutError(f"{self._fields()} is not a canonical form; use register_layout(...)")

    def _fields(self) -> Fields:
        return self.shape, self.mode_shape, self.spatial_modes, self.local_modes

    def modes(self) -> Modes:
        """The mode form, for the algebra in ``register_ops``."""
        return modes_from_fields(self._fields())

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def num_threads(self) -> int:
        return math.prod(self.mode_shape[e] if e >= 0 else -e for e in self.spatial_modes)

    @property
    def local_size(self) -> int:
        return math.prod(self.mode_shape[mode] for mode in self.local_modes)

    def table(self) -> np.ndarray:
        """The read-only int array ``[num_threads, local_size, rank]`` of the coordinate each slot holds.

        >>> column_spatial(2, 2).table()[:, 0].tolist()
        [[0, 0], [1, 0], [0, 1], [1, 1]]
        """
        return _table(self)

    def __mul__(self, other: RegisterLayout) -> RegisterLayout:
        """The Kronecker product; a lower-rank operand is padded with leading dims of size 1.

        >>> (spatial(2) * local(3)).table()[1].tolist()
        [[3], [4], [5]]
        """
        if not isinstance(other, RegisterLayout):
            return NotImplemented
        return _product(self, other)

    def __truediv__(self, other: RegisterLayout) -> RegisterLayout:
        """The ``c`` with ``c * other == self``; LayoutError when there is none.

        >>> spatial(4) / local(2)
        Traceback (most recent call last):
        ...
        tilevm.layout.errors.LayoutError: local(2) does not divide spatial(4)
        """
        if not isinstance(other, RegisterLayout):
            return NotImplemented
        quotient = self.divide(other)
        if quotient is None:
            raise LayoutError(f"{other} does not divide {self}")
        return quotient

    def divide(self, other: RegisterLayout) -> RegisterLayout | None:
        """``self / other``, or None when ``other`` does not divide ``self`` (for instruction selection).

        >>> spatial(8, 4).local(2, 4).divide(local(1, 4))
        spatial(8, 4).local(2, 1)
        """
        return _divide(self, other)

    def draw(self, path: str) -> None:
        """Write a PNG picture of the tile: each cell labelled with its holders, coloured by thread."""
        from tilevm.layout.draw import draw  # draw imports shared, which imports this module

        draw(self, path)

    def local(self, *shape: int, order: Sequence[int] | None = None) -> RegisterLayout:
        """``self * local(*shape, order=order)``."""
        return self * local(*shape, order=order)

    def spatial(self, *shape: int, order: Sequence[int] | None = None) -> RegisterLayout:
        """``self * spatial(*shape, order=order)``."""
        return self * spatial(*shape, order=order)

    def column_local(self, *shape: int) -> RegisterLayout:
        """``self * column_local(*shape)``."""
        return self * column_local(*shape)

    def column_spatial(self, *shape: int) -> RegisterLayout:
        """``self * column_spatial(*shape)``."""
        return self * column_spatial(*shape)

    def replicated(self, num_replicas: int) -> RegisterLayout:
        """``self * replicated(num_replicas)``: each thread's data is held by ``num_replicas`` neighbours."""
        return self * replicated(num_replicas)

    def reduce(self, *dims: int | Sequence[int], keepdim: bool = True) -> RegisterLayout:
        """The layout of a reduction over ``dims``: their local digits vanish, their thread digits replicate.

        >>> spatial(4, 8).local(1, 2).reduce(1)
        spatial(4, 1).replicated(8)
        """
        return _from_modes(register_ops.reduce(self.modes(), _ints(dims), keepdim))

    def permute(self, *dims: int | Sequence[int]) -> RegisterLayout:
        """Reorder dims as ``numpy.transpose``: new dim ``i`` is old dim ``dims[i]``.

        >>> spatial(2, 4).permute(1, 0)
        column_spatial(4, 2)
        """
        return _from_modes(register_ops.permute(self.modes(), _ints(dims)))

    def reshape(self, *shape: int | Sequence[int]) -> RegisterLayout:
        """Merge and split dims row-major, as ``numpy.reshape``; LayoutError where a digit is cut unevenly.

        >>> spatial(4).local(2).reshape(2, 4)
        spatial(2, 2).local(1, 2)
        """
        return _from_modes(register_ops.reshape(self.modes(), _ints(shape)))

    def concat(self, other: RegisterLayout) -> RegisterLayout:
        """The layout of rank ``self.rank + other.rank``: ``self``'s dims, then ``other``'s (Tilus' concat).

        Thread ``t = t_self * other.num_threads + t_other``, local likewise, coordinate ``(c_self, c_other)``.

        >>> spatial(2).concat(local(3))
        spatial(2, 1).local(1, 3)
        """
        return _from_modes(register_ops.concat(self.modes(), other.modes()))

    def __str__(self) -> str:
        return layout_text(self.modes())

    def __repr__(self) -> str:
        return str(self)


def local(*shape: int, order: Sequence[int] | None = None) -> RegisterLayout:
    """One thread holds the whole tile; local elements in row-major order, or ``order`` (most significant dim
    first).

    >>> local(2, 2, order=[1, 0]) == column_local(2, 2)
    True
    """
    return _primitive("local", shape, order)


def spatial(*shape: int, order: Sequence[int] | None = None) -> RegisterLayout:
    """One element per thread, threads in row-major order, or ``order`` (most significant dim first).

    >>> spatial(2, 3).table()[:, 0].tolist()
    [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    """
    return _primitive("spatial", shape, order)


def column_local(*shape: int) -> RegisterLayout:
    """``local`` with the first dim varying fastest.

    >>> column_local(2, 2).table()[0].tolist()
    [[0, 0], [1, 0], [0, 1], [1, 1]]
    """
    return _primitive("local", shape, tuple(reversed(range(len(shape)))))


def column_spatial(*shape: int) -> RegisterLayout:
    """``spatial`` with the first dim varying fastest.

    >>> column_spatial(2, 2).table()[:, 0].tolist()
    [[0, 0], [1, 0], [0, 1], [1, 1]]
    """
    return _primitive("spatial", shape, tuple(reversed(range(len(shape)))))


def replicated(num_replicas: int) -> RegisterLayout:
    """``num_replicas`` threads holding the one element of a rank-0 tile; products pad it to any rank.

    >>> (replicated(2) * spatial(4)).table()[:, 0, 0].tolist()  # threads t and t + 4 hold the same element
    [0, 1, 2, 3, 0, 1, 2, 3]
    """
    if not isinstance(num_replicas, int) or num_replicas < 1:
        raise LayoutError(f"replicated needs a positive number of replicas, got {num_replicas!r}")
    return _from_modes(Modes(shape=(), dims=(), sizes=(), spatial=(-num_replicas,), local=()))


def register_layout(
    shape: Sequence[int], mode_shape: Sequence[int], spatial_modes: Sequence[int], local_modes: Sequence[int]
) -> RegisterLayout:
    """The layout with these fields, canonicalized; the general text form of layouts that are no product.

    Modes must have size > 1 (so they group into dims unambiguously).

    >>> register_layout(shape=[4], mode_shape=[2, 2], spatial_modes=[1, 0], local_modes=[])
    register_layout(shape=[4], mode_shape=[2, 2], spatial_modes=[1, 0], local_modes=[])
    """
    if any(not isinstance(size, int) or size < 2 for size in mode_shape):
        raise LayoutError(f"mode sizes must be integers > 1, got {list(mode_shape)}")
    fields = (tuple(shape), tuple(mode_shape), tuple(spatial_modes), tuple(local_modes))
    return _from_modes(modes_from_fields(fields))


def _primitive(name: str, shape: Sequence[int], order: Sequence[int] | None) -> RegisterLayout:
    if not all(isinstance(size, int) and size >= 1 for size in shape):
        raise LayoutError(f"{name} needs positive integer sizes, got {list(shape)}")
    order = tuple(range(len(shape))) if order is None else tuple(order)
    if sorted(order) != list(range(len(shape))):
        raise LayoutError(f"{name} order must be a permutation of range({len(shape)}), got {list(order)}")
    dims = tuple((dim,) for dim in range(len(shape)))
    digits = {"spatial": order, "local": ()} if name == "spatial" else {"spatial": (), "local": order}
    return _from_modes(Modes(shape=tuple(shape), dims=dims, sizes=tuple(shape), **digits))


def _ints(args: tuple[int | Sequence[int], ...]) -> tuple[int, ...]:
    """Varargs of ints, or one sequence of them (``x.permute(1, 0)`` and ``x.permute([1, 0])``)."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)  # type: ignore[arg-type]


@lru_cache(maxsize=8192)
def _from_modes(modes: Modes) -> RegisterLayout:
    # Cached, so equal results are usually the same object and comparisons short-circuit on identity.
    return RegisterLayout(*canonical_fields(modes))


@lru_cache(maxsize=8192)
def _product(a: RegisterLayout, b: RegisterLayout) -> RegisterLayout:
    return _from_modes(register_ops.product(a.modes(), b.modes()))


@lru_cache(maxsize=8192)
def _divide(a: RegisterLayout, b: RegisterLayout) -> RegisterLayout | None:
    quotient = register_ops.divide(a.modes(), b.modes())
    return None if quotient is None else _from_modes(quotient)


@lru_cache(maxsize=1024)
def _table(layout: RegisterLayout) -> np.ndarray:
    modes = layout.modes()
    dim_of = modes.dim_of()
    # Weight of a mode's digit in its dim's coordinate: the product of the less significant modes' sizes.
    weight = {}
    for dim_modes in modes.dims:
        scale = 1
        for mode in reversed(dim_modes):
            weight[mode] = scale
            scale *= modes.sizes[mode]
    table = np.zeros((layout.num_threads, layout.local_size, layout.rank), dtype=np.int64)
    for axis, entries in ((0, modes.spatial), (1, modes.local)):
        index = np.arange(table.shape[axis]).reshape((-1, 1) if axis == 0 else (1, -1))
        stride = 1
        for entry in reversed(entries):
            size = entry_size(modes, entry)
            if entry >= 0:
                table[:, :, dim_of[entry]] += (index // stride) % size * weight[entry]
            stride *= size
    table.setflags(write=False)
    return table


for _name, _fn in {
    "local": local,
    "spatial": spatial,
    "column_local": column_local,
    "column_spatial": column_spatial,
    "replicated": replicated,
    "register_layout": register_layout,
}.items():
    register_constructor(_name, _fn)
