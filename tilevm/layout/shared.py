"""Shared layouts: the element offset of each coordinate of a shared-memory tile, strides then XOR swizzle.

A :class:`SharedLayout` computes ``swizzle(sum(coord[d] * strides[d]))``; the swizzle (see
:mod:`tilevm.layout.swizzle`) spreads the rows that ``ldmatrix`` or ``cp.async`` touch together over all 32
banks. :func:`choose_swizzle` picks one by counting bank conflicts, so the choice is checked, not assumed.

Text form: ``shared((64, 32), strides=(32, 1))``, with ``.swizzle(bits, base, shift)`` when swizzled.

>>> from tilevm.layout.text import parse
>>> layout = choose_swizzle((64, 32), dtype_bits=16, access="ldmatrix")
>>> str(layout)
'shared((64, 32), strides=(32, 1)).swizzle(2, 3, 3)'
>>> parse(str(layout)) == layout, layout.offset((1, 0)), layout.offset((2, 0))
(True, 32, 72)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import prod
from pathlib import Path

import numpy as np

from tilevm.layout.errors import LayoutError
from tilevm.layout.swizzle import Swizzle, bank_conflicts, warp_accesses
from tilevm.layout.text import register_constructor

__all__ = ["SharedLayout", "choose_swizzle", "shared"]

# A swizzle permutes at most the eight 16-byte units of a 128-byte line: that already reaches all 32 banks.
_MAX_SWIZZLE_BITS = 3


@dataclass(frozen=True)
class SharedLayout:
    """Offsets of a shared-memory tile: ``swizzling(sum(coord[d] * strides[d]))``, in elements.

    >>> layout = SharedLayout.row_major(2, 4)
    >>> layout.size, layout.offset((1, 2)), str(layout)
    (8, 6, 'shared((2, 4), strides=(4, 1))')
    >>> layout.swizzle(1, 0, 2).table().tolist()
    [[0, 1, 2, 3], [5, 4, 7, 6]]
    """

    shape: tuple[int, ...]
    strides: tuple[int, ...]
    swizzling: Swizzle | None = None

    __layout_methods__ = ("swizzle",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _ints(self.shape, "shape"))
        object.__setattr__(self, "strides", _ints(self.strides, "strides"))
        if not self.shape or len(self.strides) != len(self.shape):
            raise LayoutError(
                f"shared layout needs one stride per dimension, got {self.shape}, {self.strides}"
            )
        if min(self.shape) <= 0 or min(self.strides) < 0:
            raise LayoutError(f"shared layout sizes must be positive and strides non-negative, got {self}")
        if self.swizzling is not None and self.size % self.swizzling.block:
            raise LayoutError(
                f"swizzle permutes blocks of {self.swizzling.block} elements, "
                f"but the layout spans {self.size}: {self}"
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
        """Elements spanned: one past the largest offset (more than the element count if strides pad)."""
        return 1 + sum((extent - 1) * stride for extent, stride in zip(self.shape, self.strides, strict=True))

    def offset(self, coord: Sequence[int]) -> int:
        """The element offset of ``coord``."""
        if len(coord) != self.rank or not all(0 <= c < s for c, s in zip(coord, self.shape, strict=True)):
            raise LayoutError(f"coordinate {tuple(coord)} is outside shape {self.shape}")
        linear = sum(c * stride for c, stride in zip(coord, self.strides, strict=True))
        return linear if self.swizzling is None else self.swizzling(linear)

    def table(self) -> np.ndarray:
        """An int64 array of shape ``shape`` holding the offset of every coordinate."""
        grid = np.indices(self.shape, dtype=np.int64)
        strides = np.asarray(self.strides, dtype=np.int64).reshape((-1,) + (1,) * self.rank)
        linear = (grid * strides).sum(axis=0)
        return linear if self.swizzling is None else self.swizzling(linear)

    def swizzle(self, bits: int, base: int, shift: int) -> SharedLayout:
        """This layout followed by ``Swizzle(bits, base, shift)``; a layout is swizzled at most once."""
        if self.swizzling is not None:
            raise LayoutError(f"layout is already swizzled: {self}")
        return SharedLayout(self.shape, self.strides, Swizzle(bits, base, shift))

    def draw(self, path: str | Path, dtype_bits: int = 16) -> Path:
        """A PNG picture of the offsets, coloured by bank for ``dtype_bits``-bit elements: see ``draw.py``."""
        # Imported here because the drawing module depends on this one.
        from tilevm.layout.draw import draw

        return draw(self, path, dtype_bits=dtype_bits)

    def __str__(self) -> str:
        text = f"shared({_text(self.shape)}, strides={_text(self.strides)})"
        if self.swizzling is None:
            return text
        return f"{text}.swizzle({self.swizzling.bits}, {self.swizzling.base}, {self.swizzling.shift})"


def shared(shape: Sequence[int], strides: Sequence[int] | None = None) -> SharedLayout:
    """The shared layout of ``shape`` with ``strides`` (row-major when omitted): the text constructor.

    >>> shared([4, 4], strides=[1, 4]).offset((1, 2))
    9
    """
    if strides is None:
        return SharedLayout.row_major(*shape)
    return SharedLayout(tuple(shape), tuple(strides))


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
    for candidate in _candidates(plain, dtype_bits):
        if all(bank_conflicts(candidate, dtype_bits, warp) == 0 for warp in warps):
            return candidate
    raise LayoutError(
        f"no swizzle makes {', '.join(patterns)} conflict-free on a {tuple(shape)} tile of "
        f"{dtype_bits}-bit elements; pad the rows instead"
    )


def _candidates(plain: SharedLayout, dtype_bits: int) -> list[SharedLayout]:
    """``plain`` unswizzled, then with every swizzle that keeps 16-byte units and fits its size."""
    base = (128 // dtype_bits).bit_length() - 1
    candidates = [plain]
    # Source bits at or above the largest offset's bit length are always zero: larger shifts change nothing.
    largest_shift = plain.size.bit_length() - base - 1
    for bits in range(1, _MAX_SWIZZLE_BITS + 1):
        if plain.size % (1 << (base + bits)) == 0:
            candidates += [plain.swizzle(bits, base, shift) for shift in range(bits, largest_shift + 1)]
    return candidates


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
