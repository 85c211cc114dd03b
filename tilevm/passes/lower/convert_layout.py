"""Lowering of ``convert_layout``: a register tile moved from one register layout to another.

- the same layout: the same register;
- every thread already holds its new elements (the layouts differ in the order of the slots, or the new one
  holds fewer copies of them): a static ``gather`` of the thread's register (``local_maps.conversion_map``);
- otherwise through shared memory (``Lowering.scratch``): a barrier (the scratch may still be read by its
  previous user; every user of the scratch, reductions too, starts with one), each element written once, by
  the copy of the first thread that holds it (the other replicas' stores are predicated off, so no two
  threads write one byte), a barrier, and each thread reading its new elements. The tile lies in the
  scratch row-major in the dim order that needs the fewest accesses: the widest (up to 16 bytes) that both
  layouts allow, as runs of a thread's slots contiguous and aligned in that order.

Sub-byte elements are written in whole bytes only (a thread's run of slots covers whole bytes, which no other
thread writes); where a layout has no such runs (one int4 a thread, or 6-bit elements, which no access holds
a whole number of), the codes go through shared memory widened to one byte each (``registers.byte_codes``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from tilevm.dtypes import DType, int32, uint8
from tilevm.ir import ConvertLayout
from tilevm.ir.expr import BinaryExpr, Const, Expr
from tilevm.ir.thread import Barrier, Load, SharedPointer, Store
from tilevm.ir.thread.memory import ACCESS_BYTES
from tilevm.layout import RegisterLayout
from tilevm.layout.register_modes import entry_size
from tilevm.passes.lower.coordinates import local_coordinates
from tilevm.passes.lower.local_maps import conversion_map
from tilevm.passes.lower.lowering import Handler, Lowering, tile_layout
from tilevm.passes.lower.packed_gather import packed_gather
from tilevm.passes.lower.registers import byte_codes, from_byte_codes, gather

__all__ = ["HANDLERS", "ScratchPlan", "scratch_plan"]


@dataclass(frozen=True)
class ScratchPlan:
    """How a conversion goes through shared memory: the tile's element strides in the scratch, and how many
    consecutive slots each store (of the source layout) and each load (of the target layout) moves."""

    strides: tuple[int, ...]
    store_run: int
    load_run: int


def _convert_layout(lowering: Lowering, conversion: ConvertLayout) -> None:
    source, target = tile_layout(conversion.operand), tile_layout(conversion.output)
    register = lowering.tile(conversion.operand)
    if source != target:
        indices = conversion_map(source, target)
        if indices is not None:
            register = lowering.let(conversion.output.name, packed_gather(lowering, (register,), indices))
        else:
            register = _through_shared(lowering, register, source, target)
    lowering.bind(conversion.output, register)


def _through_shared(
    lowering: Lowering, register: Expr, source: RegisterLayout, target: RegisterLayout
) -> Expr:
    dtype = register.type.dtype
    plan = scratch_plan(source, target, dtype.nbits)
    if plan is not None:
        return _move(lowering, register, source, target, plan)
    codes = byte_codes(lowering, register)
    moved = _move(lowering, codes, source, target, scratch_plan(source, target, uint8.nbits))
    return lowering.let("converted", from_byte_codes(lowering, moved, dtype))


def _move(
    lowering: Lowering, register: Expr, source: RegisterLayout, target: RegisterLayout, plan: ScratchPlan
) -> Expr:
    """Store ``register`` (in ``source``) into the scratch and load it back in ``target``."""
    dtype = register.type.dtype
    base = lowering.scratch(math.ceil(math.prod(source.shape) * dtype.nbits / 8))
    lowering.emit(Barrier())
    writer = _first_replica(lowering, source)
    for start, pointer in _runs(lowering, source, plan.strides, plan.store_run, dtype, base):
        value = gather(register, tuple(range(start, start + plan.store_run)))
        lowering.emit(Store(pointer=pointer, value=value, predicate=writer))
    lowering.emit(Barrier())
    width = plan.load_run * dtype.nbits // 8
    parts = tuple(
        lowering.define(Load, "part", pointer=pointer, width=width)
        for _, pointer in _runs(lowering, target, plan.strides, plan.load_run, dtype, base)
    )
    if len(parts) == 1:
        return parts[0]
    return lowering.let("converted", packed_gather(lowering, parts, range(target.local_size)))


def _runs(
    lowering: Lowering, layout: RegisterLayout, strides: tuple[int, ...], run: int, dtype: DType, base: int
) -> list[tuple[int, Expr]]:
    """The first slot of each run of ``run`` slots of ``layout`` and the shared address the run lies at."""
    thread_offset = _linear(lowering.thread_coordinates(layout), strides)
    thread_byte = lowering.let("scratch_byte", _bytes(thread_offset, dtype.nbits))
    local_offsets = local_coordinates(layout) @ np.array(strides, dtype=np.int64)
    runs = []
    for start in range(0, layout.local_size, run):
        byte = base + int(local_offsets[start]) * dtype.nbits // 8
        address = BinaryExpr("add", thread_byte, Const(byte, int32)) if byte else thread_byte
        runs.append((start, SharedPointer(dtype, address)))
    return runs


def _bytes(element_offset: Expr, nbits: int) -> Expr:
    """The byte offset of element ``element_offset`` (which starts a whole byte, see ``scratch_plan``)."""
    if nbits % 8:
        return BinaryExpr("floordiv", element_offset, Const(8 // nbits, int32))
    return _times(element_offset, nbits // 8)


def _first_replica(lowering: Lowering, layout: RegisterLayout) -> Expr | None:
    """True in the threads whose replication digits are all 0 (None when the layout has none): among the
    threads holding one element, exactly one writes it."""
    modes = layout.modes()
    sizes = [entry_size(modes, entry) for entry in modes.spatial]
    condition = None
    for position, entry in enumerate(modes.spatial):
        if entry >= 0:
            continue
        divisor = math.prod(sizes[position + 1 :])
        period = divisor * sizes[position]
        thread = lowering.thread
        if period < layout.num_threads:
            thread = BinaryExpr("mod", thread, Const(period, int32))
        first = BinaryExpr("lt", thread, Const(divisor, int32))
        condition = first if condition is None else BinaryExpr("and", condition, first)
    return None if condition is None else lowering.let("first_replica", condition)


@lru_cache(maxsize=1024)
def scratch_plan(source: RegisterLayout, target: RegisterLayout, nbits: int) -> ScratchPlan | None:
    """The dim order of the scratch (row-major in it) that needs the fewest stores and loads, with the runs
    each side moves; None when, in every order, some side has no runs of whole bytes (sub-byte elements).

    >>> from tilevm.layout import local, spatial
    >>> scratch_plan(spatial(4, 8).local(1, 4), local(1, 4).spatial(4, 8), 16)  # rows of 4 halves, columns
    ScratchPlan(strides=(32, 1), store_run=4, load_run=1)
    >>> scratch_plan(spatial(32), local(32), 4) is None  # a nibble a thread: no whole byte to write
    True
    """
    best = None
    for order in itertools.permutations(range(source.rank)):
        strides = _row_major_strides(source.shape, order)
        runs = _widest_run(source, strides, nbits), _widest_run(target, strides, nbits)
        if None in runs:
            continue
        cost = source.local_size // runs[0] + target.local_size // runs[1]
        if best is None or cost < best[0]:
            best = cost, ScratchPlan(strides, *runs)
    return None if best is None else best[1]


def _row_major_strides(shape: tuple[int, ...], order: tuple[int, ...]) -> tuple[int, ...]:
    """Element strides of ``shape`` laid out row-major with its dims in ``order`` (outermost first)."""
    strides = [0] * len(shape)
    stride = 1
    for dim in reversed(order):
        strides[dim] = stride
        stride *= shape[dim]
    return tuple(strides)


def _widest_run(layout: RegisterLayout, strides: tuple[int, ...], nbits: int) -> int | None:
    """The most consecutive slots, moved by one access of whole bytes, that every thread holds at
    consecutive offsets starting at a multiple of their number (so the access is aligned to its width);
    None when no access holds a whole number of elements at whole bytes."""
    offsets = layout.table() @ np.array(strides, dtype=np.int64)
    for width in sorted(ACCESS_BYTES, reverse=True):
        run = width * 8 // nbits
        if width * 8 % nbits or run == 0 or layout.local_size % run:
            continue
        runs = offsets.reshape(offsets.shape[0], -1, run)
        starts = runs[:, :, :1]
        if (starts % run == 0).all() and (runs - starts == np.arange(run)).all():
            return run
    return None


def _linear(coordinates: tuple[Expr, ...], strides: tuple[int, ...]) -> Expr:
    """``sum(coordinates[d] * strides[d])`` as an int32 expression, leaving out the terms that are 0."""
    terms = [
        _times(coordinate, stride)
        for coordinate, stride in zip(coordinates, strides)
        if not (isinstance(coordinate, Const) and coordinate.value == 0)
    ]
    if not terms:
        return Const(0, int32)
    total = terms[0]
    for term in terms[1:]:
        total = BinaryExpr("add", total, term)
    return total


def _times(value: Expr, factor: int) -> Expr:
    return value if factor == 1 else BinaryExpr("mul", value, Const(factor, int32))


HANDLERS: dict[type, Handler] = {ConvertLayout: _convert_layout}
