"""The mode form of a register layout, and its canonical form.

A register layout of a tile maps (thread, local index) to a coordinate. Every dim of the tile is written as
mixed-radix digits, its *modes* (most significant first); the thread index is itself a mixed-radix number
whose digits are some of those modes, plus replication digits (threads that differ only in such a digit
hold the same data); the local index is a mixed-radix number of the remaining modes. ``Modes`` is that
description with free mode ids, so the algebra can split and splice modes; ``canonical_fields`` numbers
and merges them into the unique form a ``RegisterLayout`` stores.

>>> m = Modes(shape=(8,), dims=((0, 1),), sizes=(4, 2), spatial=(0,), local=(1,))
>>> canonical_fields(m)  # spatial(4).local(2): dim 0 is 4 thread digits then 2 local digits
((8,), (4, 2), (0,), (1,))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import pairwise

from tilevm.layout.errors import LayoutError

__all__ = ["Modes", "canonical_fields", "entry_size", "modes_from_fields"]

# (shape, mode_shape, spatial_modes, local_modes): the canonical fields of a RegisterLayout.
Fields = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]


@dataclass(frozen=True)
class Modes:
    """A register layout before canonicalization: modes may be split, of size 1, or numbered in any order.

    ``dims[d]`` lists the mode ids of dim ``d``, most significant first; ``sizes[id]`` is a mode's size.
    ``spatial`` lists the digits of the thread index, most significant first: a mode id (>= 0), or ``-k``
    for a replication digit of size ``k``. ``local`` lists the digits of the local index (mode ids only).

    >>> Modes(shape=(2, 3), dims=((0,), (1,)), sizes=(2, 3), spatial=(1,), local=(0,)).num_threads
    3
    """

    shape: tuple[int, ...]
    dims: tuple[tuple[int, ...], ...]
    sizes: tuple[int, ...]
    spatial: tuple[int, ...]
    local: tuple[int, ...]

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def num_threads(self) -> int:
        return math.prod(entry_size(self, entry) for entry in self.spatial)

    @property
    def local_size(self) -> int:
        return math.prod(self.sizes[entry] for entry in self.local)

    def dim_of(self) -> dict[int, int]:
        """The dim of each mode id that appears in ``dims``."""
        return {mode: dim for dim, modes in enumerate(self.dims) for mode in modes}

    def split(self, mode: int, inner: int) -> tuple[Modes, int, int]:
        """Split ``mode`` into an outer mode of size ``size // inner`` and an inner one of size ``inner``.

        Returns the new form and the two new ids (outer, inner); the layout it describes is unchanged.
        """
        outer_id, inner_id = len(self.sizes), len(self.sizes) + 1
        sizes = (*self.sizes, self.sizes[mode] // inner, inner)

        def substitute(entries: tuple[int, ...]) -> tuple[int, ...]:
            pieces = ((outer_id, inner_id) if entry == mode else (entry,) for entry in entries)
            return tuple(x for piece in pieces for x in piece)

        dims = tuple(substitute(modes) for modes in self.dims)
        changed = replace(
            self, dims=dims, sizes=sizes, spatial=substitute(self.spatial), local=substitute(self.local)
        )
        return changed, outer_id, inner_id

    def split_replica(self, position: int, inner: int) -> Modes:
        """Split the replication digit at ``spatial[position]`` into an outer and an ``inner`` one."""
        outer = entry_size(self, self.spatial[position]) // inner
        spatial = (*self.spatial[:position], -outer, -inner, *self.spatial[position + 1 :])
        return replace(self, spatial=spatial)


def entry_size(modes: Modes, entry: int) -> int:
    """The size of a digit of ``spatial`` or ``local``: the mode's size, or the replication factor.

    >>> entry_size(Modes((), (), (), (-4,), ()), -4)
    4
    """
    return modes.sizes[entry] if entry >= 0 else -entry


@lru_cache(maxsize=8192)
def modes_from_fields(fields: Fields) -> Modes:
    """The mode form of canonical fields: mode ids are positions in ``mode_shape``, grouped by dim in order.

    >>> modes_from_fields(((2, 1, 6), (2, 2, 3), (0, 2), (1,))).dims
    ((0,), (), (1, 2))
    """
    shape, mode_shape, spatial, local = fields
    dims: list[tuple[int, ...]] = []
    start = 0
    for size in shape:
        stop, product = start, 1
        # Canonical modes have size > 1, so the modes of a dim are the shortest run whose product is its size.
        while product < size and stop < len(mode_shape):
            product *= mode_shape[stop]
            stop += 1
        if product != size:
            raise LayoutError(f"mode_shape {list(mode_shape)} does not factor shape {list(shape)}")
        dims.append(tuple(range(start, stop)))
        start = stop
    if start != len(mode_shape):
        raise LayoutError(f"mode_shape {list(mode_shape)} has more modes than shape {list(shape)} needs")
    return Modes(tuple(shape), tuple(dims), tuple(mode_shape), tuple(spatial), tuple(local))


@lru_cache(maxsize=8192)
def canonical_fields(modes: Modes) -> Fields:
    """The canonical form: size-1 digits dropped, mergeable neighbours merged, modes numbered by dim.

    Two modes of one dim merge when they are neighbours in the dim and, in the same order, in the thread or
    the local digits (the pair then acts as one digit); neighbouring replication digits merge too. The
    result is unique for the table the layout describes, so layouts compare by these fields.

    >>> canonical_fields(Modes((4,), ((0, 1),), (2, 2), (0, 1), ()))  # spatial(2).spatial(2) is spatial(4)
    ((4,), (4,), (0,), ())
    """
    _check(modes)
    modes = _drop_unit_digits(modes)
    merged = _merge_once(modes)
    while merged is not None:
        modes, merged = merged, _merge_once(merged)
    order = [mode for dim_modes in modes.dims for mode in dim_modes]
    number = {mode: index for index, mode in enumerate(order)}
    renumber = lambda entries: tuple(number[e] if e >= 0 else e for e in entries)  # noqa: E731
    return modes.shape, tuple(modes.sizes[m] for m in order), renumber(modes.spatial), renumber(modes.local)


def _check(modes: Modes) -> None:
    """Raise unless every mode of a dim is a digit of exactly one of thread or local, and sizes add up."""
    in_dims = [mode for dim_modes in modes.dims for mode in dim_modes]
    digits = [entry for entry in modes.spatial if entry >= 0] + list(modes.local)
    if sorted(in_dims) != sorted(digits) or len(set(digits)) != len(digits):
        raise LayoutError("every mode must be exactly one thread or local digit")
    if any(entry < 0 for entry in modes.local):
        raise LayoutError("replication digits belong to the threads, not the local index")
    if any(modes.sizes[mode] < 1 for mode in in_dims):
        raise LayoutError(f"mode sizes must be positive, got {list(modes.sizes)}")
    for size, dim_modes in zip(modes.shape, modes.dims, strict=True):
        if math.prod(modes.sizes[mode] for mode in dim_modes) != size:
            raise LayoutError(f"modes {[modes.sizes[m] for m in dim_modes]} do not multiply to {size}")


def _drop_unit_digits(modes: Modes) -> Modes:
    keep = lambda entries: tuple(e for e in entries if entry_size(modes, e) != 1)  # noqa: E731
    return replace(
        modes,
        dims=tuple(keep(dim_modes) for dim_modes in modes.dims),
        spatial=keep(modes.spatial),
        local=keep(modes.local),
    )


def _merge_once(modes: Modes) -> Modes | None:
    """``modes`` with one mergeable pair of neighbouring digits merged, or None when there is none."""
    next_in_dim = {a: b for dim_modes in modes.dims for a, b in pairwise(dim_modes)}
    for name in ("spatial", "local"):
        entries: tuple[int, ...] = getattr(modes, name)
        for position, (a, b) in enumerate(pairwise(entries)):
            if a < 0 and b < 0:
                merged = (*entries[:position], -(a * b), *entries[position + 2 :])
                return replace(modes, **{name: merged})
            if a >= 0 and next_in_dim.get(a) == b:
                return _merge_modes(modes, a, b)
    return None


def _merge_modes(modes: Modes, outer: int, inner: int) -> Modes:
    """Replace the neighbouring digits ``outer, inner`` (in their dim and their digit list) by one mode."""
    new = len(modes.sizes)

    def substitute(entries: tuple[int, ...]) -> tuple[int, ...]:
        out: list[int] = []
        for entry in entries:
            if entry == inner:
                continue
            out.append(new if entry == outer else entry)
        return tuple(out)

    return Modes(
        shape=modes.shape,
        dims=tuple(substitute(dim_modes) for dim_modes in modes.dims),
        sizes=(*modes.sizes, modes.sizes[outer] * modes.sizes[inner]),
        spatial=substitute(modes.spatial),
        local=substitute(modes.local),
    )
