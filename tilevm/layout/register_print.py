"""The text form of a register layout: the shortest chain of primitives it is a product of.

A canonical layout is peeled from its least significant end: a run of trailing local (or thread) digits
that are each the last mode of a distinct dim is one ``local``/``spatial`` factor; a trailing replication
digit is a ``replicated`` factor. A layout that does not peel to nothing prints in the general form
``register_layout(shape=..., mode_shape=..., spatial_modes=..., local_modes=...)``.

>>> from tilevm.layout.register_modes import modes_from_fields
>>> layout_text(modes_from_fields(((16, 8), (8, 2, 4, 2), (0, 2), (1, 3))))
'spatial(8, 4).local(2, 2)'
"""

from __future__ import annotations

from dataclasses import replace

from tilevm.layout.register_modes import Modes

__all__ = ["layout_text"]


def layout_text(modes: Modes) -> str:
    """The text of the canonical layout ``modes``; ``parse`` gives back an equal layout."""
    factors: list[str] = []
    rest = modes
    while rest.spatial or rest.local:
        peeled = _peel_factor(rest, "local") or _peel_factor(rest, "spatial")
        if peeled is None:
            return _general_form(modes)
        rest, factor = peeled
        factors.append(factor)
    factors.reverse()
    if not factors or (modes.rank > 0 and all(f.startswith("replicated") for f in factors)):
        # replicated(k) has rank 0; a factor of the layout's rank makes the chain's product that rank.
        factors.insert(0, f"local({_join((1,) * modes.rank)})")
    return ".".join(factors)


def _peel_factor(modes: Modes, name: str) -> tuple[Modes, str] | None:
    """Split off the least significant factor made of ``name`` digits, or None when there is none."""
    entries: tuple[int, ...] = getattr(modes, name)
    if not entries:
        return None
    if entries[-1] < 0:
        return replace(modes, spatial=entries[:-1]), f"replicated({-entries[-1]})"
    dim_of = modes.dim_of()
    run: list[int] = []
    for entry in reversed(entries):
        if entry < 0 or dim_of[entry] in {dim_of[e] for e in run} or modes.dims[dim_of[entry]][-1] != entry:
            break
        run.insert(0, entry)
    if not run:
        return None
    order = [dim_of[entry] for entry in run]
    sizes = [1] * modes.rank
    dims = list(modes.dims)
    for entry, dim in zip(run, order, strict=True):
        sizes[dim] = modes.sizes[entry]
        dims[dim] = dims[dim][:-1]
    shape = tuple(size // sizes[dim] for dim, size in enumerate(modes.shape))
    rest = replace(modes, shape=shape, dims=tuple(dims), **{name: entries[: len(entries) - len(run)]})
    return rest, _primitive_text(name, sizes, order)


def _primitive_text(name: str, sizes: list[int], order: list[int]) -> str:
    """``spatial(4, 8)``, ``column_local(2, 2)`` or ``spatial(2, 3, 4, order=[1, 0, 2])``."""
    if order == sorted(order):
        return f"{name}({_join(sizes)})"
    if order == sorted(order, reverse=True):
        return f"column_{name}({_join(sizes)})"
    # Dims of size 1 go anywhere in the order; put them last.
    full_order = order + [dim for dim in range(len(sizes)) if dim not in order]
    return f"{name}({_join(sizes)}, order=[{_join(full_order)}])"


def _general_form(modes: Modes) -> str:
    """The canonical fields spelled out; ``modes`` is canonical, so its ids are positions in mode order."""
    mode_shape = [modes.sizes[mode] for dim_modes in modes.dims for mode in dim_modes]
    return (
        f"register_layout(shape=[{_join(modes.shape)}], mode_shape=[{_join(mode_shape)}], "
        f"spatial_modes=[{_join(modes.spatial)}], local_modes=[{_join(modes.local)}])"
    )


def _join(values: tuple[int, ...] | list[int]) -> str:
    return ", ".join(str(value) for value in values)
