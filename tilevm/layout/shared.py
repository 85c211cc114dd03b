"""Shared layouts: the element offset of each coordinate of a shared-memory tile, strides then XOR swizzle.

A :class:`SharedLayout` computes ``swizzle(origin + sum(coord[d] * strides[d]))``; the swizzle (see
:mod:`tilevm.layout.swizzle`) spreads the rows that ``ldmatrix`` or ``cp.async`` touch together over all 32
banks. :func:`choose_swizzle` picks one by counting bank conflicts, so the choice is checked, not assumed.

**Slices.** The swizzle acts on the whole linear offset of an element in its allocation, so a window of a
swizzled tile is not the window's own layout moved by a constant: the window of ``layout`` at ``offsets``
has offsets ``swizzle(origin + linear(offsets) + linear'(c))``, which equals ``linear(offsets) +
swizzle(linear'(c))`` only when ``linear(offsets)`` is a multiple of the swizzle's ``period``. That is why
``origin`` sits *inside* the swizzle: :meth:`SharedLayout.slice` keeps the exact offsets of every element of
the window, and :meth:`SharedLayout.shifted_by` adds a runtime term the same way (see ``SliceShared`` in
``tilevm.ir.shared_tiles``). This is CuTe's ``ComposedLayout(swizzle, offset, layout)``.

Text form: ``shared((64, 32), strides=(32, 1))``, with ``origin=`` when it is not 0 and
``.swizzle(bits, base, shift)`` when swizzled.

>>> from tilevm.layout.text import parse
>>> layout = choose_swizzle((64, 32), dtype_bits=16, access="ldmatrix")
>>> str(layout)
'shared((64, 32), strides=(32, 1)).swizzle(2, 3, 3)'
>>> parse(str(layout)) == layout, layout.offset((1, 0)), layout.offset((2, 0))
(True, 32, 72)
>>> window = layout.slice((2, 8), (4, 8), dims=(0, 1))  # rows 2..5, columns 8..15
>>> str(window), window.offset((0, 0)) == layout.offset((2, 8))
('shared((4, 8), strides=(32, 1), origin=72).swizzle(2, 3, 3)', True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from math import prod
from pathlib import Path

import numpy as np

from tilevm.layout.errors import LayoutError
from tilevm.layout.swizzle import Swizzle, bank_conflicts, warp_accesses
from tilevm.layout.text import register_constructor

__all__ = ["SharedLayout", "choose_swizzle", "permute_shared", "shared", "swizzle_candidates"]

# A swizzle permutes at most the eight 16-byte units of a 128-byte line: that already reaches all 32 banks.
_MAX_SWIZZLE_BITS = 3


@dataclass(frozen=True)
class SharedLayout:
    """Offsets of a shared-memory tile: ``swizzling(origin + sum(coord[d] * strides[d]))``, in elements.

    ``origin`` is the linear offset of coordinate zero before swizzling: 0 for an allocation, the window's
    place for a slice (see the module docstring).

    >>> layout = SharedLayout.row_major(2, 4)
    >>> layout.size, layout.offset((1, 2)), str(layout)
    (8, 6, 'shared((2, 4), strides=(4, 1))')
    >>> layout.swizzle(1, 0, 2).table().tolist()
    [[0, 1, 2, 3], [5, 4, 7, 6]]
    """

    shape: tuple[int, ...]
    strides: tuple[int, ...]
    swizzling: Swizzle | None = None
    origin: int = 0

    __layout_methods__ = ("swizzle",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _ints(self.shape, "shape"))
        object.__setattr__(self, "strides", _ints(self.strides, "strides"))
        if not isinstance(self.origin, (int, np.integer)) or isinstance(self.origin, bool):
            raise LayoutError(f"shared layout origin must be an int, got {self.origin!r}")
        object.__setattr__(self, "origin", int(self.origin))
        if not self.shape or len(self.strides) != len(self.shape):
            raise LayoutError(
                f"shared layout needs one stride per dimension, got {self.shape}, {self.strides}"
            )
        if min(self.shape) <= 0 or min(self.strides) < 0 or self.origin < 0:
            raise LayoutError(
                f"shared layout sizes must be positive, strides and origin non-negative, got {self}"
            )

    @classmethod
    def row_major(cls, *shape: int) -> SharedLayout:
        """The compact layout with the last dimension fastest.

        >>> SharedLayout.row_major(4, 8, 2).strides
        (16, 2, 1)
        """
        return cls(tuple(shape), tuple(prod(shape[dim + 1 :]) for dim in range(len(shape))))

    @classmethod
    def column_major(cls, *shape: int) -> SharedLayout:
        """The compact layout with the first dimension fastest.

        >>> SharedLayout.column_major(4, 8, 2).strides
        (1, 4, 32)
        """
        return cls(tuple(shape), tuple(prod(shape[:dim]) for dim in range(len(shape))))

    @property
    def rank(self) -> int:
        """The number of dimensions."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Elements spanned from offset 0: one past the largest offset (origin and stride padding included).

        A swizzle moves an offset only within its aligned block (see ``Swizzle.block``), so a layout whose
        linear span is a whole number of blocks is a permutation of ``range(size)``; otherwise the largest
        offset is found in the table.

        >>> shared((3, 8), origin=4).size, shared((1, 3)).swizzle(1, 0, 1).size  # 0, 1, 2 -> 0, 1, 3
        (28, 4)
        """
        linear_end = self.origin + 1 + sum((e - 1) * s for e, s in zip(self.shape, self.strides, strict=True))
        if self.swizzling is None or linear_end % self.swizzling.block == 0:
            return linear_end
        return int(self.table().max()) + 1

    def offset(self, coord: Sequence[int]) -> int:
        """The element offset of ``coord``."""
        if len(coord) != self.rank or not all(0 <= c < s for c, s in zip(coord, self.shape, strict=True)):
            raise LayoutError(f"coordinate {tuple(coord)} is outside shape {self.shape}")
        linear = self.origin + sum(c * stride for c, stride in zip(coord, self.strides, strict=True))
        return linear if self.swizzling is None else self.swizzling(linear)

    def table(self) -> np.ndarray:
        """An int64 array of shape ``shape`` holding the offset of every coordinate."""
        grid = np.indices(self.shape, dtype=np.int64)
        strides = np.asarray(self.strides, dtype=np.int64).reshape((-1,) + (1,) * self.rank)
        linear = self.origin + (grid * strides).sum(axis=0)
        return linear if self.swizzling is None else self.swizzling(linear)

    def swizzle(self, bits: int, base: int, shift: int) -> SharedLayout:
        """This layout followed by ``Swizzle(bits, base, shift)``; a layout is swizzled at most once."""
        if self.swizzling is not None:
            raise LayoutError(f"layout is already swizzled: {self}")
        return SharedLayout(self.shape, self.strides, Swizzle(bits, base, shift), self.origin)

    def slice(self, offsets: Sequence[int], shape: Sequence[int], dims: Sequence[int]) -> SharedLayout:
        """The window of ``shape`` at ``offsets`` (one per dimension) running along ``dims``.

        The other dimensions are fixed at their offset. Every element keeps its offset:
        ``slice(...).offset(c) == offset(offsets + c placed along dims)``.

        >>> layout = SharedLayout.row_major(4, 64).swizzle(3, 3, 3)
        >>> window = layout.slice((0, 16), (4, 16), dims=(0, 1))
        >>> window.table()[1, :8].tolist() == layout.table()[1, 16:24].tolist()
        True
        """
        offsets, shape, dims = (
            _ints(offsets, "slice offsets"),
            _ints(shape, "slice shape"),
            _ints(dims, "dims"),
        )
        if len(offsets) != self.rank or len(dims) != len(shape) or sorted(set(dims)) != list(dims):
            raise LayoutError(
                f"a slice of a rank-{self.rank} layout needs {self.rank} offsets and increasing dims, one "
                f"per slice dimension; got offsets {offsets}, shape {shape}, dims {dims}"
            )
        extents = [1] * self.rank
        for dim, extent in zip(dims, shape, strict=True):
            if not 0 <= dim < self.rank:
                raise LayoutError(f"slice dim {dim} is not a dimension of a rank-{self.rank} layout")
            extents[dim] = extent
        for dim, (offset, extent, size) in enumerate(zip(offsets, extents, self.shape, strict=True)):
            if offset < 0 or offset + extent > size:
                raise LayoutError(
                    f"slice offset {offset} with extent {extent} is outside dimension {dim} of size {size}"
                )
        origin = self.origin + sum(o * s for o, s in zip(offsets, self.strides, strict=True))
        strides = tuple(self.strides[dim] for dim in dims)
        return SharedLayout(shape, strides, self.swizzling, origin)

    def shifted_by(self, elements: int) -> SharedLayout:
        """The same layout ``elements`` further in linear offset, before swizzling (a runtime slice's base).

        >>> three_rows = SharedLayout.row_major(3, 8).swizzle(1, 2, 3)
        >>> row = SharedLayout((8,), (1,), three_rows.swizzling)
        >>> row.shifted_by(8).table().tolist() == three_rows.table()[1].tolist()
        True
        """
        return SharedLayout(self.shape, self.strides, self.swizzling, self.origin + elements)

    def draw(self, path: str | Path, dtype_bits: int = 16) -> Path:
        """A PNG picture of the offsets, coloured by bank for ``dtype_bits``-bit elements: see ``draw.py``."""
        # Imported here because the drawing module depends on this one.
        from tilevm.layout.draw import draw

        return draw(self, path, dtype_bits=dtype_bits)

    def __str__(self) -> str:
        origin = f", origin={self.origin}" if self.origin else ""
        text = f"shared({_text(self.shape)}, strides={_text(self.strides)}{origin})"
        if self.swizzling is None:
            return text
        return f"{text}.swizzle({self.swizzling.bits}, {self.swizzling.base}, {self.swizzling.shift})"


def shared(shape: Sequence[int], strides: Sequence[int] | None = None, origin: int = 0) -> SharedLayout:
    """The shared layout of ``shape`` with ``strides`` (row-major when omitted) from ``origin``: the text
    constructor.

    >>> shared([4, 4], strides=[1, 4]).offset((1, 2)), shared([4], origin=3).offset((1,))
    (9, 4)
    """
    if strides is None:
        strides = SharedLayout.row_major(*shape).strides
    return SharedLayout(tuple(shape), tuple(strides), None, origin)


def choose_swizzle(shape: Sequence[int], dtype_bits: int, access: str | Sequence[str]) -> SharedLayout:
    """The row-major layout of a ``[rows, cols]`` tile, swizzled so that every ``access`` is conflict-free.

    ``access`` names one pattern of :func:`~tilevm.layout.swizzle.warp_accesses` or several (a tile written
    by ``cp.async`` and read by ``ldmatrix``). The swizzle keeps 16-byte units whole (``base`` is the
    log2 of the elements in 16 bytes), and the candidates are tried fewest bits first, then smallest
    shift; the first with no conflicts, counted by :func:`~tilevm.layout.swizzle.bank_conflicts` over
    every warp request of the tile, wins.

    >>> str(choose_swizzle((32, 64), 16, ("cp_async_16B_rows", "ldmatrix")))
    'shared((32, 64), strides=(64, 1)).swizzle(3, 3, 3)'
    """
    patterns = (access,) if isinstance(access, str) else tuple(access)
    warps = [warp for pattern in patterns for warp in warp_accesses(shape, dtype_bits, pattern)]
    plain = SharedLayout.row_major(*shape)
    for candidate in swizzle_candidates(plain, dtype_bits):
        if all(bank_conflicts(candidate, dtype_bits, warp) == 0 for warp in warps):
            return candidate
    raise LayoutError(
        f"no swizzle makes {', '.join(patterns)} conflict-free on a {tuple(shape)} tile of "
        f"{dtype_bits}-bit elements; pad the rows instead"
    )


def swizzle_candidates(plain: SharedLayout, dtype_bits: int) -> list[SharedLayout]:
    """``plain`` unswizzled, then with every swizzle that keeps 16-byte units and fits its size: first those
    that permute the units from the lowest (CUTLASS's), then those that permute only higher units of the
    128-byte line (a row parity moved onto the line's half, say: what two rows read 64 bytes each in one
    phase need), so that these win only where they remove more conflicts.

    >>> [str(layout.swizzling) for layout in swizzle_candidates(SharedLayout.row_major(2, 64), 16)][-2:]
    ['Swizzle(bits=1, base=5, shift=1)', 'Swizzle(bits=1, base=5, shift=2)']
    """
    unit = (128 // dtype_bits).bit_length() - 1
    line = (1024 // dtype_bits).bit_length() - 1  # bits of an offset inside a 128-byte line of banks
    candidates = [plain]
    for low in range(unit, line):
        for bits in range(1, min(_MAX_SWIZZLE_BITS, line - low) + 1):
            candidates += _swizzled(plain, bits, low)
    return candidates


def _swizzled(plain: SharedLayout, bits: int, base: int) -> list[SharedLayout]:
    """``plain`` with ``Swizzle(bits, base, shift)`` for every shift whose source bits an offset reaches."""
    if plain.size % (1 << (base + bits)):
        return []
    # Source bits at or above the largest offset's bit length are always zero: larger shifts change nothing.
    largest_shift = plain.size.bit_length() - base - 1
    return [plain.swizzle(bits, base, shift) for shift in range(bits, largest_shift + 1)]


def _ints(values: Sequence[int], what: str) -> tuple[int, ...]:
    """``values`` as a tuple of Python ints (numpy integers included), or a LayoutError."""
    if not isinstance(values, (tuple, list)) or not all(
        isinstance(value, (int, np.integer)) and not isinstance(value, bool) for value in values
    ):
        raise LayoutError(f"shared layout {what} must be a tuple of ints, got {values!r}")
    return tuple(int(value) for value in values)


def _text(values: tuple[int, ...]) -> str:
    """A tuple as layout text, with the trailing comma a one-element tuple needs."""
    inner = ", ".join(str(value) for value in values)
    return f"({inner},)" if len(values) == 1 else f"({inner})"


register_constructor("shared", shared)


def permute_shared(layout: SharedLayout, dims: Sequence[int]) -> SharedLayout:
    """The layout of the same memory with its dims reordered as ``numpy.transpose`` (new dim ``i`` is dim
    ``dims[i]``): shape and strides permuted together, the rest kept, so every element keeps its offset.

    >>> layout = SharedLayout.row_major(2, 4).swizzle(1, 0, 2)
    >>> transposed = permute_shared(layout, (1, 0))
    >>> str(transposed), transposed.offset((3, 1)) == layout.offset((1, 3))
    ('shared((4, 2), strides=(1, 4)).swizzle(1, 0, 2)', True)
    """
    if sorted(dims) != list(range(layout.rank)):
        raise LayoutError(f"permute needs a permutation of range({layout.rank}), got {list(dims)}")
    shape = tuple(layout.shape[dim] for dim in dims)
    strides = tuple(layout.strides[dim] for dim in dims)
    return dataclasses.replace(layout, shape=shape, strides=strides)
