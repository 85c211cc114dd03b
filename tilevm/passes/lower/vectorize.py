"""How wide a thread's accesses to a global window can be: the vectorization of global loads and stores.

A thread's elements of a register tile are moved in *groups*: ``group`` consecutive local indices whose
coordinates are consecutive along the tile dim ``dim`` (the one whose global stride is the constant 1), the
first at a multiple of ``group``. That is a division of the layout: ``layout / local(1, .., group, .., 1)``
exists. One group is one access of ``group * nbits`` bits when four things allow it:

- the layout (the division above),
- the bit width: at most 16 bytes (``MAX_VECTOR_BITS``), and a power of two of whole bytes, so a sub-byte
  group moves whole bytes (32 int4 elements per 16 bytes) unless it is narrower than a byte;
- the alignment: the index analysis's ``vector_bits`` along ``dim`` (the pointer's and the offsets'
  divisibility, the other dims' strides), so that every group's address is aligned to its size;
- the bounds: a group is *exact* when it lies wholly inside or wholly outside the tensor, which holds when
  the group divides what is known to divide the distance from the window's start to the tensor's end
  (``DimensionInfo.remaining``); a group that is not exact may straddle the end, and the lowering then
  falls back to narrower accesses of ``unit`` elements for the groups that are not wholly in bounds: one
  element, or one byte of sub-byte elements when no byte can straddle the end (so that stores still
  write whole bytes).

>>> from tilevm.layout import spatial
>>> group_size(spatial(8, 4).local(2, 4), dim=1, limit=8)
4
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from tilevm.dtypes import DType
from tilevm.ir.expr import Const, Expr
from tilevm.layout import RegisterLayout, local
from tilevm.layout.register_modes import canonical_fields
from tilevm.passes.index_analysis import MAX_VECTOR_BITS, AccessInfo

__all__ = ["AccessPlan", "group_size", "locals_in_runs", "plan_access"]


@dataclass(frozen=True)
class AccessPlan:
    """How one thread moves its elements of a window: groups of ``group`` consecutive locals along tile dim
    ``dim`` (None: one element at a time), each in one access of ``bits`` bits (less than 8 for a group
    inside one byte), wholly in or out of bounds when ``exact``; otherwise a group that is not wholly in
    bounds is moved ``unit`` elements at a time, each unit wholly in or out."""

    dim: int | None
    group: int
    bits: int
    exact: bool
    unit: int = 1

    @property
    def whole_bytes(self) -> bool:
        """Whether each access moves whole bytes that hold the group's elements and nothing else."""
        return self.bits % 8 == 0

    @property
    def writes_whole_bytes(self) -> bool:
        """Whether every access, the fallback's included, writes whole bytes of the tensor and nothing else
        (so that no two threads write one byte)."""
        unit_bits = self.bits // self.group * self.unit
        return self.whole_bytes and (self.exact or unit_bits % 8 == 0)


def group_size(layout: RegisterLayout, dim: int, limit: int) -> int:
    """The largest power of two ``g`` at most ``limit`` such that ``layout / local(.., g, ..)`` (``g``
    along ``dim``) exists: each thread's locals come in runs of ``g`` consecutive along ``dim``."""
    group = 1
    while group * 2 <= limit and layout.divide(_unit_run(layout.rank, dim, group * 2)) is not None:
        group *= 2
    return group


def plan_access(
    layout: RegisterLayout, dtype: DType, dims: tuple[int, ...], strides: tuple[Expr, ...], info: AccessInfo
) -> AccessPlan:
    """The widest accesses for a thread of ``layout`` moving a window of a tensor of ``dtype`` with global
    ``strides``, whose tile dims run along global ``dims``, given what the index analysis knows (``info``)."""
    unit = [axis for axis, dim in enumerate(dims) if _is_one(strides[dim])]
    nbits = dtype.nbits
    if not unit or nbits & (nbits - 1):
        # Elements of 3, 5, 6 or 7 bits straddle bytes and no power-of-two access holds a whole number of
        # them: one element at a time, as is any window without a unit-stride dim.
        return AccessPlan(None, 1, nbits, exact=True)
    axis = unit[0]
    limit = min(MAX_VECTOR_BITS, info.vector_bits(dim=axis)) // nbits
    group = group_size(layout, axis, max(limit, 1))
    remaining = info.dims[axis].remaining
    per_byte = max(1, 8 // nbits)
    unit = per_byte if group % per_byte == 0 and remaining % per_byte == 0 else 1
    return AccessPlan(axis, group, group * nbits, remaining % group == 0, unit)


def locals_in_runs(layout: RegisterLayout, dim: int) -> tuple[RegisterLayout, tuple[int, ...]]:
    """``layout`` with each thread's locals reordered so that its digits along ``dim`` are the fastest (in
    their order along ``dim``), and for each local of the original, its index in the reordered one. A
    thread's elements are the same; only their order in its register changes, so a load may move runs
    along ``dim`` that the original order interleaves with other digits (the A fragments of an mma, whose
    registers alternate rows), then gather them back in the original order, a renaming of registers.

    >>> from tilevm.layout import column_local, spatial
    >>> reordered, positions = locals_in_runs(column_local(2, 2) * spatial(8, 4) * local(1, 2), 1)
    >>> str(reordered), positions
    ('local(2, 2).spatial(8, 4).local(1, 2)', (0, 1, 4, 5, 2, 3, 6, 7))
    """
    modes = layout.modes()
    along = {mode: position for position, mode in enumerate(modes.dims[dim])}
    others = [mode for mode in modes.local if mode not in along]
    runs = sorted((mode for mode in modes.local if mode in along), key=along.__getitem__)
    reordered = RegisterLayout(*canonical_fields(dataclasses.replace(modes, local=(*others, *runs))))
    old, new = layout.table(), reordered.table()
    index_of = {tuple(coordinate): index for index, coordinate in enumerate(new[0].tolist())}
    return reordered, tuple(index_of[tuple(coordinate)] for coordinate in old[0].tolist())


def _unit_run(rank: int, dim: int, size: int) -> RegisterLayout:
    shape = [1] * rank
    shape[dim] = size
    return local(*shape)


def _is_one(expression: Expr) -> bool:
    return isinstance(expression, Const) and expression.value == 1
