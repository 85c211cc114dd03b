"""How the threads of a block access a shared tile: the access plans that shared-memory planning and the
lowering of ``load_shared``, ``store_shared`` and ``copy_async`` share, so that the swizzle the planner picks
is checked on exactly the addresses the lowered program computes.

A register tile of layout ``R`` meets a shared view of layout ``S`` (strides, then an XOR swizzle of the
linear offset) placed at runtime element base ``B``: the element at (thread ``t``, local ``i``) lies at
``S.swizzle(B + S.origin + thread_part(t) . strides + local_part(i) . strides)`` (``coordinates``). Two
plans move it:

- **vectors**: the local elements split into groups of ``width`` consecutive ones whose offsets are
  consecutive and aligned to ``width`` before the swizzle, which keeps units of ``2**swizzle.base`` elements
  whole: one ``ld.shared``/``st.shared`` of ``width`` elements per group (:func:`vector_width`);
- **ldmatrix** (a load of 16-bit elements whose layout is a product ``Q * atom`` of an ``ldmatrix`` atom,
  where each of the atom's 8 rows is 16 contiguous, aligned bytes of shared memory): one 8x8 matrix per
  local element of ``Q``, four to an ``ldmatrix.x4`` (:func:`ldmatrix_plan`).

The ``lane_*`` functions give, per warp request, the element offsets each lane touches (one row of a table
per lane), which :func:`request_conflicts` counts the bank conflicts of with ``tilevm.layout.swizzle``'s
bank model.

>>> from tilevm.layout import SharedLayout, mma_fragments
>>> a_fragment = mma_fragments("m16n8k16", "f16").a
>>> plan = ldmatrix_plan(a_fragment, SharedLayout.row_major(16, 16), 16, base_divisibility=8)
>>> plan.quotient, plan.transpose
(column_local(2, 2), False)
>>> rows = lane_ldmatrix_rows(plan, SharedLayout.row_major(16, 16), warp=0, first=0)
>>> rows[:8, 0].tolist(), request_conflicts(rows, 16)  # rows of 32 bytes: 4 rows share each bank
([0, 16, 32, 48, 64, 80, 96, 112], 4)
>>> request_conflicts(lane_ldmatrix_rows(plan, SharedLayout.row_major(16, 16).swizzle(1, 3, 3), 0, 0), 16)
0
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from tilevm.layout import RegisterLayout, SharedLayout, bank_conflicts, column_spatial, spatial
from tilevm.layout.swizzle import WARP_SIZE
from tilevm.passes.index_divisibility import DIVISIBILITY_CAP, power_of_two_part
from tilevm.passes.lower.coordinates import local_coordinates, thread_digits

__all__ = [
    "LDMATRIX_ATOMS",
    "LdmatrixPlan",
    "MAX_ACCESS_BITS",
    "lane_ldmatrix_rows",
    "lane_vectors",
    "ldmatrix_plan",
    "local_offsets",
    "offset_table",
    "primary_threads",
    "replica_digits",
    "request_conflicts",
    "thread_divisibility",
    "vector_width",
]

#: the widest access of one thread: 16 bytes
MAX_ACCESS_BITS = 128
#: ldmatrix's elements per matrix row (16 bytes of 16-bit elements) and rows per matrix
LDMATRIX_ROW = 8

#: the two ``ldmatrix`` atoms in tile coordinates, with the tile dim along which a thread's pair runs: a
#: thread holds two neighbours of one row (``spatial(8, 4).local(1, 2)``) or of one column
LDMATRIX_ATOMS: tuple[tuple[RegisterLayout, int], ...] = (
    (spatial(8, 4).local(1, 2), 1),
    (column_spatial(4, 8).local(2, 1), 0),
)


@lru_cache(maxsize=1024)
def local_offsets(register: RegisterLayout, strides: tuple[int, ...]) -> np.ndarray:
    """The linear offset (before the swizzle) that each local index adds to its thread's start."""
    offsets = local_coordinates(register) @ np.asarray(strides, dtype=np.int64)
    offsets.setflags(write=False)
    return offsets


def thread_divisibility(register: RegisterLayout, strides: tuple[int, ...]) -> int:
    """A power of two dividing every thread's part of the linear offset (``thread_part(t) . strides``)."""
    divisibility = DIVISIBILITY_CAP
    for stride, digits in zip(strides, thread_digits(register)):
        for digit in digits:
            divisibility = min(divisibility, power_of_two_part(digit.weight * stride))
    return divisibility


def vector_width(register: RegisterLayout, shared: SharedLayout, nbits: int, base_divisibility: int) -> int:
    """The most elements (a power of two, at most 16 bytes) that each access of a thread moves: groups of
    that many consecutive local elements lie at consecutive offsets aligned to the group's size, wherever
    the thread and the runtime base (``base_divisibility`` divides it, in elements) put them.

    >>> vector_width(spatial(8, 4).local(1, 8), SharedLayout.row_major(8, 32), 16, 64)
    8
    >>> vector_width(spatial(8, 4).local(1, 8), SharedLayout((8, 32), (40, 1)), 16, 64)  # rows of 80 B
    8
    >>> vector_width(spatial(8, 4).local(1, 8), SharedLayout((8, 32), (36, 1)), 16, 64)  # rows of 72 B
    4
    """
    offsets = local_offsets(register, shared.strides)
    start = min(
        base_divisibility,
        power_of_two_part(shared.origin),
        thread_divisibility(register, shared.strides),
    )
    kept = DIVISIBILITY_CAP if shared.swizzling is None else 1 << shared.swizzling.base
    width = 1
    while (
        (width * 2) * nbits <= MAX_ACCESS_BITS
        and nbits == power_of_two_part(nbits)
        and _groups_contiguous(offsets, width * 2)
        and width * 2 <= min(start, kept)
    ):
        width *= 2
    return width


def _groups_contiguous(offsets: np.ndarray, width: int) -> bool:
    if offsets.size % width:
        return False
    groups = offsets.reshape(-1, width)
    return bool((groups[:, 0] % width == 0).all() and (groups == groups[:, :1] + np.arange(width)).all())


@dataclass(frozen=True)
class LdmatrixPlan:
    """A load as ``ldmatrix``: the register layout is ``quotient * atom``, so local element ``i`` of the
    quotient is one 8x8 matrix at tile coordinate ``8 * quotient(t, i)``, whose rows run along ``row_dim``
    (each row 16 contiguous bytes along the other dim); ``transpose`` when the atom's pairs run across the
    memory rows (``ldmatrix...trans``)."""

    quotient: RegisterLayout
    transpose: bool
    row_dim: int

    def counts(self) -> list[int]:
        """The matrices of each ``ldmatrix``, in order: fours, then a two and a one for the rest."""
        remaining, counts = self.quotient.local_size, []
        for count in (4, 2, 1):
            while remaining >= count:
                counts.append(count)
                remaining -= count
        return counts


def ldmatrix_plan(
    register: RegisterLayout, shared: SharedLayout, nbits: int, base_divisibility: int
) -> LdmatrixPlan | None:
    """How ``ldmatrix`` loads a rank-2 tile of ``register`` layout from ``shared``, or None when it cannot:
    16-bit elements, a dim of stride 1 whose runs of 8 start 16-byte aligned (``base_divisibility`` divides
    the runtime base, in elements) and stay whole through the swizzle, and a layout divisible by an atom."""
    if nbits != 16 or register.rank != 2 or shared.rank != 2:
        return None
    if shared.swizzling is not None and (1 << shared.swizzling.base) < LDMATRIX_ROW:
        return None
    for contiguous in (1, 0):
        row_dim = 1 - contiguous
        aligned = min(
            base_divisibility, power_of_two_part(shared.origin), power_of_two_part(shared.strides[row_dim])
        )
        if shared.strides[contiguous] != 1 or aligned < LDMATRIX_ROW:
            continue
        for atom, pair_dim in LDMATRIX_ATOMS:
            quotient = register.divide(atom)
            if quotient is not None:
                return LdmatrixPlan(quotient, transpose=pair_dim != contiguous, row_dim=row_dim)
    return None


def lane_ldmatrix_rows(plan: LdmatrixPlan, shared: SharedLayout, warp: int, first: int) -> np.ndarray:
    """``[32, 8]``: the element offsets of the row each lane of ``warp`` addresses in the ``ldmatrix`` that
    starts at quotient local ``first`` (lanes ``8 j`` to ``8 j + 7`` give the rows of matrix ``j``)."""
    count = plan.counts()[_group_index(plan, first)]
    lanes = np.arange(WARP_SIZE)
    matrix = first + (lanes // LDMATRIX_ROW) % count
    coordinates = LDMATRIX_ROW * plan.quotient.table()[warp, matrix].astype(np.int64)
    coordinates[:, plan.row_dim] += lanes % LDMATRIX_ROW
    step = np.zeros(2, dtype=np.int64)
    step[1 - plan.row_dim] = 1
    cells = coordinates[:, None, :] + np.arange(LDMATRIX_ROW)[None, :, None] * step
    return offset_table(shared)[cells[..., 0], cells[..., 1]]


def _group_index(plan: LdmatrixPlan, first: int) -> int:
    starts = np.cumsum([0, *plan.counts()])
    return int(np.flatnonzero(starts == first)[0])


def replica_digits(register: RegisterLayout) -> list[tuple[int, int]]:
    """``(divisor, size)`` of each replication digit of the thread index: threads that differ only in
    them hold the same elements."""
    modes = register.modes()
    sizes = [modes.sizes[entry] if entry >= 0 else -entry for entry in modes.spatial]
    divisors = [int(np.prod(sizes[position + 1 :])) for position in range(len(sizes))]
    return [(divisor, -entry) for entry, divisor in zip(modes.spatial, divisors) if entry < 0]


def primary_threads(register: RegisterLayout) -> np.ndarray:
    """Whether each thread is the first holder of its elements (all its replication digits are 0): the
    threads that store them, so that no two threads write the same bytes."""
    threads = np.arange(register.num_threads)
    primary = np.ones(register.num_threads, dtype=bool)
    for divisor, size in replica_digits(register):
        primary &= (threads // divisor) % size == 0
    return primary


def lane_vectors(
    register: RegisterLayout, shared: SharedLayout, width: int, warp: int, group: int, store: bool
) -> np.ndarray:
    """``[lanes, width]``: the element offsets of group ``group`` of each lane of ``warp`` (for a store, the
    primary lanes only)."""
    threads = np.arange(warp * WARP_SIZE, min((warp + 1) * WARP_SIZE, register.num_threads))
    if store:
        threads = threads[primary_threads(register)[threads]]
    cells = register.table()[threads][:, group * width : (group + 1) * width]
    return offset_table(shared)[tuple(np.moveaxis(cells, -1, 0))]


class _LaneRows:
    """The accesses of one warp request as an offset table: row ``lane`` holds the lane's elements."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows

    def table(self) -> np.ndarray:
        return self.rows


def request_conflicts(rows: np.ndarray, nbits: int) -> int:
    """The extra wavefronts of one warp request whose lane ``l`` touches the elements at offsets
    ``rows[l]`` (contiguous, of 4, 8 or 16 bytes): ``tilevm.layout.bank_conflicts`` on these addresses."""
    return _conflicts(rows.shape, rows.astype(np.int64).tobytes(), nbits)


@lru_cache(maxsize=65536)
def _conflicts(shape: tuple[int, int], rows: bytes, nbits: int) -> int:
    """``request_conflicts`` by value: warps and candidate layouts often repeat a request."""
    table = np.frombuffer(rows, dtype=np.int64).reshape(shape)
    access_bytes = shape[1] * nbits // 8
    return bank_conflicts(_LaneRows(table), nbits, [(lane, 0) for lane in range(shape[0])], access_bytes)


@lru_cache(maxsize=1024)
def offset_table(layout: SharedLayout) -> np.ndarray:
    """``layout.table()``, computed once per layout (read-only)."""
    table = layout.table()
    table.setflags(write=False)
    return table
