"""The register layout algebra on mode forms: product, division, reduce, permute, reshape, concat.

Each function takes and returns :class:`Modes` (not necessarily canonical); ``register.py`` canonicalizes.

>>> a = Modes(shape=(4,), dims=((0,),), sizes=(4,), spatial=(0,), local=())  # spatial(4)
>>> b = Modes(shape=(2,), dims=((0,),), sizes=(2,), spatial=(), local=(0,))  # local(2)
>>> product(a, b).dims, product(a, b).spatial, product(a, b).local
(((0, 1),), (0,), (1,))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from tilevm.layout.errors import LayoutError
from tilevm.layout.register_modes import Modes, entry_size

__all__ = ["concat", "divide", "pad", "permute", "product", "reduce", "reshape"]


def pad(modes: Modes, rank: int, *, left: bool = True) -> Modes:
    """``modes`` with dims of size 1 added (on the left by default) up to ``rank`` dims.

    >>> pad(Modes((4,), ((0,),), (4,), (0,), ()), 3).shape
    (1, 1, 4)
    """
    extra = rank - modes.rank
    if extra < 0:
        raise LayoutError(f"cannot pad a rank-{modes.rank} layout to rank {rank}")
    ones, empty = (1,) * extra, ((),) * extra
    if left:
        return replace(modes, shape=ones + modes.shape, dims=empty + modes.dims)
    return replace(modes, shape=modes.shape + ones, dims=modes.dims + empty)


def product(a: Modes, b: Modes) -> Modes:
    """The Kronecker product: ``b``'s digits are less significant than ``a``'s in every dim, thread, local.

    A lower-rank operand is padded with leading dims of size 1.

    >>> product(Modes((2,), ((0,),), (2,), (0,), ()), Modes((), (), (), (-2,), ())).spatial
    (0, -2)
    """
    rank = max(a.rank, b.rank)
    a, b = pad(a, rank), pad(b, rank)
    offset = len(a.sizes)
    shift = lambda entries: tuple(e + offset if e >= 0 else e for e in entries)  # noqa: E731
    return Modes(
        shape=tuple(x * y for x, y in zip(a.shape, b.shape, strict=True)),
        dims=tuple(x + shift(y) for x, y in zip(a.dims, b.dims, strict=True)),
        sizes=a.sizes + b.sizes,
        spatial=a.spatial + shift(b.spatial),
        local=a.local + shift(b.local),
    )


def divide(a: Modes, b: Modes) -> Modes | None:
    """The ``c`` with ``product(c, b)`` equal to ``a`` (as layouts), or None when there is none.

    ``b``'s digits must be the least significant ones of ``a``: the tails of ``a``'s thread digits, local
    digits and of each dim's modes, after splitting ``a``'s digits where ``b``'s are smaller.

    >>> divide(Modes((4,), ((0,),), (4,), (0,), ()), Modes((2,), ((0,),), (2,), (0,), ())).sizes[-2:]
    (2, 2)
    """
    if b.rank > a.rank:
        return None
    b = pad(b, a.rank)
    matched: dict[int, int] = {}
    kept: dict[str, int] = {}
    for name in ("spatial", "local"):
        peeled = _peel_digits(a, b, name, matched)
        if peeled is None:
            return None
        a, kept[name] = peeled
    dims = []
    for a_modes, b_modes in zip(a.dims, b.dims, strict=True):
        keep = len(a_modes) - len(b_modes)
        if keep < 0 or a_modes[keep:] != tuple(matched[mode] for mode in b_modes):
            return None
        dims.append(a_modes[:keep])
    return Modes(
        shape=tuple(math.prod(a.sizes[mode] for mode in dim_modes) for dim_modes in dims),
        dims=tuple(dims),
        sizes=a.sizes,
        spatial=a.spatial[: kept["spatial"]],
        local=a.local[: kept["local"]],
    )


def _peel_digits(a: Modes, b: Modes, name: str, matched: dict[int, int]) -> tuple[Modes, int] | None:
    """Match ``b``'s ``name`` digits against the tail of ``a``'s, splitting ``a``'s digits as needed.

    Records in ``matched`` which mode of ``a`` each mode of ``b`` became; returns the split ``a`` and how
    many of its digits are left over for the quotient, or None when the tails differ.
    """
    a_dim, b_dim = a.dim_of(), b.dim_of()
    position = len(getattr(a, name)) - 1
    for b_entry in reversed(getattr(b, name)):
        if position < 0:
            return None
        a_entry = getattr(a, name)[position]
        a_size, b_size = entry_size(a, a_entry), entry_size(b, b_entry)
        if (a_entry < 0) != (b_entry < 0) or a_size % b_size or a_dim.get(a_entry) != b_dim.get(b_entry):
            return None
        if a_size > b_size:
            if a_entry < 0:
                a = a.split_replica(position, b_size)
            else:
                a, _, a_entry = a.split(a_entry, b_size)
                a_dim = a.dim_of()
            position += 1  # the outer part of the split digit stays for the quotient
        if b_entry >= 0:
            matched[b_entry] = a_entry
        position -= 1
    return a, position + 1


def reduce(modes: Modes, dims: Sequence[int], keepdim: bool = True) -> Modes:
    """Collapse ``dims`` to size 1: their thread digits become replication, their local digits vanish.

    It is the layout of a reduction's result: after the in-thread and cross-thread reduction, threads that
    held different coordinates along a reduced dim hold the same element.

    >>> reduce(Modes((4, 2), ((0,), (1,)), (4, 2), (0, 1), ()), [1]).spatial
    (0, -2)
    """
    dims = _check_dims(dims, modes.rank)
    reduced = {mode for dim in dims for mode in modes.dims[dim]}
    spatial = tuple(-modes.sizes[e] if e in reduced else e for e in modes.spatial)
    local = tuple(e for e in modes.local if e not in reduced)
    if keepdim:
        shape = tuple(1 if d in dims else size for d, size in enumerate(modes.shape))
        dim_modes = tuple(() if d in dims else m for d, m in enumerate(modes.dims))
    else:
        shape = tuple(size for d, size in enumerate(modes.shape) if d not in dims)
        dim_modes = tuple(m for d, m in enumerate(modes.dims) if d not in dims)
    return replace(modes, shape=shape, dims=dim_modes, spatial=spatial, local=local)


def permute(modes: Modes, dims: Sequence[int]) -> Modes:
    """Reorder the dims: new dim ``i`` is old dim ``dims[i]`` (as ``numpy.transpose``).

    >>> permute(Modes((2, 3), ((0,), (1,)), (2, 3), (0,), (1,)), [1, 0]).shape
    (3, 2)
    """
    if sorted(dims) != list(range(modes.rank)):
        raise LayoutError(f"permute needs a permutation of range({modes.rank}), got {list(dims)}")
    return replace(modes, shape=tuple(modes.shape[d] for d in dims), dims=tuple(modes.dims[d] for d in dims))


def reshape(modes: Modes, shape: Sequence[int]) -> Modes:
    """Merge and split dims row-major (as ``numpy.reshape``); one size may be -1.

    The modes of all dims, most significant first, are one mixed-radix number; the new dims cut it into
    consecutive runs, splitting a mode where a cut falls inside it evenly. A cut that falls between the
    factors of a mode unevenly (a mode of 6 cut at 4) has no such form: LayoutError.

    >>> reshape(Modes((8,), ((0,),), (8,), (0,), ()), [2, 4]).dims
    ((1,), (2,))
    """
    shape = _infer_size(shape, math.prod(modes.shape))
    queue = [mode for dim_modes in modes.dims for mode in dim_modes]
    dims: list[tuple[int, ...]] = []
    for size in shape:
        taken: list[int] = []
        while size > 1:
            mode_size = modes.sizes[queue[0]]
            if size % mode_size == 0:
                taken.append(queue.pop(0))
                size //= mode_size
            elif mode_size % size == 0:
                modes, outer, queue[0] = modes.split(queue[0], mode_size // size)
                taken.append(outer)
                size = 1
            else:
                message = f"cannot reshape {list(modes.shape)} to {list(shape)}"
                raise LayoutError(f"{message}: a mode of size {mode_size} does not split at {size}")
        dims.append(tuple(taken))
    return replace(modes, shape=shape, dims=tuple(dims))


def concat(a: Modes, b: Modes) -> Modes:
    """The layout of rank ``a.rank + b.rank`` whose dims are ``a``'s then ``b``'s (as in Tilus).

    Thread ``t = ta * b.num_threads + tb``, local ``i = ia * b.local_size + ib``, coordinate ``(ca, cb)``:
    the product of ``a`` padded on the right and ``b`` padded on the left.

    >>> concat(Modes((2,), ((0,),), (2,), (0,), ()), Modes((3,), ((0,),), (3,), (), (0,))).shape
    (2, 3)
    """
    rank = a.rank + b.rank
    return product(pad(a, rank, left=False), pad(b, rank))


def _check_dims(dims: Sequence[int], rank: int) -> tuple[int, ...]:
    """``dims`` as distinct non-negative dims of a rank-``rank`` layout (negative ones count from the end)."""
    normal = tuple(d + rank if d < 0 else d for d in dims)
    if len(set(normal)) != len(normal) or not all(0 <= d < rank for d in normal):
        raise LayoutError(f"dims {list(dims)} are not distinct dims of a rank-{rank} layout")
    return normal


def _infer_size(shape: Sequence[int], total: int) -> tuple[int, ...]:
    """``shape`` with its one -1 replaced so the sizes multiply to ``total``; LayoutError if impossible."""
    known = math.prod(size for size in shape if size != -1)
    unknown = sum(size == -1 for size in shape)
    if unknown > 1 or any(size < 1 and size != -1 for size in shape):
        raise LayoutError(f"bad shape {list(shape)}: sizes must be positive, with at most one -1")
    inferred = tuple(total // known if size == -1 else size for size in shape) if known else tuple(shape)
    if math.prod(inferred) != total:
        raise LayoutError(f"cannot reshape {total} elements to {list(shape)}")
    return inferred
