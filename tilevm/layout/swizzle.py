"""XOR swizzles of shared-memory offsets, and the bank model that says whether a swizzle is needed.

**Swizzle.** :class:`Swizzle` is CUTLASS's ``Swizzle<B, M, S>`` applied to *element* offsets: the ``B`` bits
at ``[M + S, M + S + B)`` are XORed into the bits at ``[M, M + B)``. In bytes, for elements of ``n`` bits:
``2**M`` elements (``2**M * n / 8`` bytes) form an indivisible unit that stays contiguous, so a vector
access of that size is never split; ``2**B`` such units are permuted among themselves; and the permutation
is chosen by the unit-row index ``offset >> (M + S)``, where a unit-row spans ``2**(M + S)`` elements. For
f16 (``n = 16``), ``Swizzle(3, 3, 3)`` keeps 16-byte units (8 halves), permutes the 8 units of each
128-byte row (64 halves) by the row index modulo 8: exactly the 128-byte XOR pattern of CUTLASS's sm80
GEMMs.

**Bank model** (CUDA C++ Programming Guide, "Compute Capabilities", section "Shared Memory" of compute
capability 5.x, which later capabilities refer back to): shared memory has 32 banks, successive 32-bit
words map to successive banks, and threads that touch the same 32-bit word do not conflict (broadcast).
A warp request is served in wavefronts; requests of more than 4 bytes per thread are split into phases so
that each phase moves at most 128 bytes: 32 threads for 4-byte accesses, 16 for 8-byte, 8 for 16-byte
(the 64-bit half-warp rule is spelled out in the guide's capability 3.x section; the 8-thread phases of
16-byte accesses are how ``ldmatrix`` serves one 8x8 matrix per phase and how Nsight Compute counts
wavefronts). Within a phase, the wavefront count is the largest number of *distinct* words any one bank
must deliver; :func:`bank_conflicts` reports the wavefronts beyond one per phase.

>>> Swizzle(3, 3, 3)(np.arange(0, 64 * 2, 8)).reshape(2, 8).tolist()
[[0, 8, 16, 24, 32, 40, 48, 56], [72, 64, 88, 80, 104, 96, 120, 112]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

from tilevm.layout.errors import LayoutError

__all__ = ["ACCESS_PATTERNS", "Swizzle", "bank_conflicts", "extra_wavefronts", "warp_accesses"]

NUM_BANKS = 32
BANK_BYTES = 4
WARP_SIZE = 32
# Each phase of a warp request moves at most this many bytes (see the module docstring).
_PHASE_BYTES = NUM_BANKS * BANK_BYTES
# The access patterns :func:`warp_accesses` can generate, in the order of the docstring.
ACCESS_PATTERNS = ("cp_async_16B_rows", "ldmatrix")

_Offsets = TypeVar("_Offsets", int, np.ndarray)


@dataclass(frozen=True)
class Swizzle:
    """CUTLASS ``Swizzle<bits, base, shift>`` on element offsets (see the module docstring for bytes).

    It is a bijection of the integers that moves an offset only within its aligned block of
    ``2**(base + bits)`` elements, so a layout that spans a multiple of that block stays a bijection.

    >>> swizzle = Swizzle(bits=2, base=0, shift=2)
    >>> [swizzle(offset) for offset in range(8)]
    [0, 1, 2, 3, 5, 4, 7, 6]
    """

    bits: int
    base: int
    shift: int

    def __post_init__(self) -> None:
        if min(self.bits, self.base, self.shift) < 0:
            raise LayoutError(f"swizzle parameters must be non-negative, got {self}")
        if self.shift < self.bits:
            # Overlapping source and target bit ranges would make the XOR lose information (not a bijection).
            raise LayoutError(f"swizzle shift {self.shift} must be at least its bits {self.bits}")

    @property
    def block(self) -> int:
        """The aligned block of elements within which offsets are permuted: ``2**(base + bits)``."""
        return 1 << (self.base + self.bits)

    @property
    def period(self) -> int:
        """``2**(base + shift + bits)``: adding a multiple of it commutes with the swizzle.

        The swizzle reads and writes only bits below ``base + shift + bits``, which adding a multiple of
        the period leaves alone: ``swizzle(x + k * period) == swizzle(x) + k * period``. So a slice whose
        base is a multiple of the period has its parent's swizzled offsets plus a constant; any other base
        must be added before swizzling (see ``tilevm.layout.shared``).

        >>> swizzle = Swizzle(3, 3, 3)
        >>> swizzle.period, swizzle(512 + 72) == 512 + swizzle(72), swizzle(64 + 0) == 64 + swizzle(0)
        (512, True, False)
        """
        return 1 << (self.base + self.shift + self.bits)

    def __call__(self, offset: _Offsets) -> _Offsets:
        mask = ((1 << self.bits) - 1) << (self.base + self.shift)
        return offset ^ ((offset & mask) >> self.shift)


class OffsetTable(Protocol):
    """Anything with an offset table, such as a shared layout: ``table()[coord]`` is an element offset."""

    def table(self) -> np.ndarray: ...


def bank_conflicts(
    layout: OffsetTable, dtype_bits: int, accesses: Sequence[Sequence[int]], access_bytes: int = 16
) -> int:
    """Extra shared-memory wavefronts of one warp request, beyond one per phase (0 means conflict-free).

    ``accesses[lane]`` is the coordinate of the first element that lane reads or writes; each access covers
    ``access_bytes`` (4, 8 or 16) bytes along the last dimension, which the layout must keep contiguous and
    aligned. Lanes are served in phases of ``128 // access_bytes`` (see the module docstring).

    >>> class RowMajor64:  # 8 rows of 64 halves: every row starts in bank 0
    ...     def table(self):
    ...         return np.arange(8 * 64).reshape(8, 64)
    >>> bank_conflicts(RowMajor64(), 16, [(row, 0) for row in range(8)])  # ldmatrix: one 8-way conflict
    7
    """
    if access_bytes not in (4, 8, 16):
        raise LayoutError(f"access of {access_bytes} bytes: shared accesses are 4, 8 or 16 bytes per thread")
    if len(accesses) > WARP_SIZE:
        raise LayoutError(f"{len(accesses)} accesses: a warp has {WARP_SIZE} threads")
    offsets = layout.table()
    addresses = _access_addresses(offsets, dtype_bits, np.asarray(accesses, dtype=np.int64), access_bytes)
    return int(extra_wavefronts(addresses[None], access_bytes)[0])


def extra_wavefronts(addresses: np.ndarray, access_bytes: int) -> np.ndarray:
    """The extra wavefronts of each of a stack of warp requests (what :func:`bank_conflicts` counts):
    ``addresses[request, lane]`` is the byte address of the lane's access of ``access_bytes`` (4, 8 or 16,
    aligned); one request's lanes are served in phases of ``128 // access_bytes``. Counting a stack at once
    is what makes trying many swizzles on many requests cheap.

    >>> extra_wavefronts(np.array([[0, 128, 256, 384], [0, 16, 32, 48]]), 16).tolist()
    [3, 0]
    """
    requests, lanes = addresses.shape
    if lanes == 0:
        return np.zeros(requests, dtype=np.int64)
    lanes_per_phase = _PHASE_BYTES // access_bytes
    phases = -(-lanes // lanes_per_phase)
    # The last phase is filled up with copies of the last lane, which touch no word it does not touch.
    padded = np.concatenate(
        [addresses, np.repeat(addresses[:, -1:], phases * lanes_per_phase - lanes, axis=1)], axis=1
    )
    words = padded.reshape(requests * phases, -1)[:, :, None] // BANK_BYTES + np.arange(access_bytes // 4)
    words = np.sort(words.reshape(requests * phases, -1), axis=1)
    distinct = np.ones(words.shape, dtype=bool)
    distinct[:, 1:] = words[:, 1:] != words[:, :-1]
    # one bin per (phase, bank): how many distinct words of the phase that bank delivers
    bins = np.arange(requests * phases)[:, None] * NUM_BANKS + words % NUM_BANKS
    per_bank = np.bincount(bins[distinct], minlength=requests * phases * NUM_BANKS)
    wavefronts = per_bank.reshape(requests, phases, NUM_BANKS).max(axis=2)
    return (wavefronts - 1).sum(axis=1)


def warp_accesses(shape: Sequence[int], dtype_bits: int, access: str) -> list[list[tuple[int, int]]]:
    """The 16-byte accesses that move a whole ``[rows, cols]`` tile, grouped into warp requests.

    - ``"cp_async_16B_rows"``: each thread writes 16 contiguous bytes of a row; consecutive lanes take
      consecutive 16-byte chunks of the tile in row-major order (how ``cp.async`` fills a tile).
    - ``"ldmatrix"``: each group of 8 lanes reads the same 16-byte column chunk of 8 consecutive rows (one
      8x8 b16 matrix of ``ldmatrix``), rows starting at multiples of 8; a warp issues four such matrices.

    >>> warp_accesses((16, 16), 16, "ldmatrix")[0][:3], warp_accesses((16, 16), 16, "ldmatrix")[0][8]
    ([(0, 0), (1, 0), (2, 0)], (0, 8))
    """
    rows, cols, vector = _tile_in_vectors(shape, dtype_bits)
    if access == "cp_async_16B_rows":
        lanes = [(row, chunk * vector) for row in range(rows) for chunk in range(cols // vector)]
    elif access == "ldmatrix":
        if rows % 8:
            raise LayoutError(f"ldmatrix reads 8-row matrices; tile has {rows} rows")
        lanes = [
            (first_row + row, chunk * vector)
            for first_row in range(0, rows, 8)
            for chunk in range(cols // vector)
            for row in range(8)
        ]
    else:
        raise LayoutError(f"unknown access pattern {access!r} (known: {', '.join(ACCESS_PATTERNS)})")
    return [lanes[start : start + WARP_SIZE] for start in range(0, len(lanes), WARP_SIZE)]


def _tile_in_vectors(shape: Sequence[int], dtype_bits: int) -> tuple[int, int, int]:
    """``(rows, cols, elements per 16 bytes)`` of a rank-2 tile whose rows are whole 16-byte vectors."""
    if len(shape) != 2:
        raise LayoutError(f"access patterns are defined for rank-2 tiles, got shape {tuple(shape)}")
    if dtype_bits <= 0 or 128 % dtype_bits:
        raise LayoutError(f"{dtype_bits}-bit elements do not tile 16 bytes; view them as bytes first")
    rows, cols = shape
    vector = 128 // dtype_bits
    if cols % vector:
        raise LayoutError(f"rows of {cols} {dtype_bits}-bit elements are not whole 16-byte vectors")
    return rows, cols, vector


def _access_addresses(
    offsets: np.ndarray, dtype_bits: int, coords: np.ndarray, access_bytes: int
) -> np.ndarray:
    """The byte address of each lane's access (``coords[lane]`` is its first element), after checking that
    every access is inside the layout, contiguous and aligned (the first offending lane is named)."""
    elements = access_bytes * 8 // dtype_bits
    if access_bytes * 8 % dtype_bits:
        raise LayoutError(f"{dtype_bits}-bit elements do not fill a {access_bytes}-byte access")
    if len(coords) == 0:
        return np.zeros(0, dtype=np.int64)
    shape = np.asarray(offsets.shape)
    if coords.ndim != 2 or coords.shape[1] != offsets.ndim:
        raise LayoutError(f"accesses at {coords.tolist()} do not have the layout's rank {offsets.ndim}")
    _first_failing(
        coords, (coords < 0) | (coords >= shape), "is outside the layout's shape " + str(offsets.shape)
    )
    _first_failing(
        coords,
        coords[:, -1] + elements > shape[-1],
        f"{access_bytes}-byte access runs past the end of the row",
    )
    matrix = offsets.reshape(-1, offsets.shape[-1])  # one row per coordinate of the leading dimensions
    row = np.ravel_multi_index(tuple(coords[:, :-1].T), offsets.shape[:-1]) if offsets.ndim > 1 else 0
    runs = matrix[np.reshape(row, (-1, 1)), coords[:, -1:] + np.arange(elements)]
    contiguous = (runs == runs[:, :1] + np.arange(elements)).all(axis=1)
    _first_failing(coords, ~contiguous, f"{access_bytes}-byte access is not contiguous in the layout")
    address_bits = runs[:, 0].astype(np.int64) * dtype_bits
    _first_failing(
        coords,
        address_bits % (access_bytes * 8) != 0,
        f"{access_bytes}-byte access is not aligned to {access_bytes} bytes",
    )
    return address_bits // 8


def _first_failing(coords: np.ndarray, failing: np.ndarray, problem: str) -> None:
    if failing.ndim > 1:
        failing = failing.any(axis=1)
    if failing.any():
        lane = int(np.argmax(failing))
        raise LayoutError(f"the access at {tuple(coords[lane].tolist())} {problem}")
