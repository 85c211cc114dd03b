"""The layouts of a dot read from shared memory by warpgroups (PTX ``wgmma.mma_async``, sm_90a).

A **warpgroup** is 4 consecutive warps whose first is a multiple of 4. One ``wgmma .m64nNk16`` multiplies a
64 x 16 tile of A by a 16 x N tile of B (N a multiple of 8, at most 256), both read from shared memory, into
a 64 x N float32 accumulator held in the warpgroup's registers: warp ``w % 4`` holds rows ``16 (w % 4)`` to
``16 (w % 4) + 15``, as the ``mma.sync`` m16n8 accumulator fragment repeated over the N / 8 columns of
atoms (PTX ISA, "Asynchronous Warpgroup Level Matrix Multiply-Accumulate", the register fragment of D for
``.m64nNk16``). Register ``4 j + i`` of a thread is element ``i`` of its fragment of atom ``j``.

:func:`warpgroup_accumulator` spreads a block's warpgroups over an accumulator tile: along its rows first,
then its columns, each warpgroup's tile repeated locally where the tile is larger.

**Shared operands.** The tensor cores read each operand through a matrix descriptor, so its bytes must lie
as one of the ISA's canonical layouts ("Shared Memory Matrix Layout"). tilevm uses the K-major ones with a
swizzle: for 16-bit elements, rows of ``W`` bytes (``W / 2`` values of k; W is 32, 64 or 128) whose 16-byte
units are XORed by address bits 7 and up, the pattern repeating every 8 rows (``8 W`` bytes). That is the
``Swizzle(log2(W / 16), 3, 3)`` of ``tilevm.layout.swizzle`` on a row-major ``[rows, W / 2]`` tile placed
at a multiple of ``8 W`` bytes. :func:`operand_form` says whether a view of a shared tile is such an
operand, and where its first row and value of k lie.

>>> from tilevm.layout import shared
>>> str(warpgroup_accumulator(128, 128, num_warps=8))
'spatial(8, 1).column_local(2, 16).spatial(8, 4).local(1, 2)'
>>> operand_form(shared((128, 64), strides=(64, 1)).swizzle(3, 3, 3), k_dim=1, nbits=16)
OperandForm(row_bytes=128, first_row=0, first_k=0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tilevm.layout.errors import LayoutError
from tilevm.layout.mma import mma_fragments
from tilevm.layout.register import RegisterLayout, local, spatial
from tilevm.layout.shared import SharedLayout
from tilevm.layout.swizzle import Swizzle

__all__ = [
    "WARPGROUP_COLUMNS",
    "WARPGROUP_ROWS",
    "WARPGROUP_WARPS",
    "OperandForm",
    "WarpgroupTiling",
    "canonical_placement",
    "operand_form",
    "operand_swizzle",
    "warpgroup_accumulator",
    "warpgroup_operand_a",
    "warpgroup_tiling",
]

#: warps in a warpgroup
WARPGROUP_WARPS = 4
#: accumulator rows of one warpgroup instruction
WARPGROUP_ROWS = 64
#: the most accumulator columns of one warpgroup instruction
WARPGROUP_COLUMNS = 256
#: the row widths (bytes) of the swizzled canonical layouts
_ROW_BYTES = (32, 64, 128)
#: bytes of a swizzle's unit (the 16-byte units that stay whole) and log2 of the rows' byte pitch that
#: chooses the XOR (address bits 7 and up)
_UNIT_BYTES, _PATTERN_SHIFT_BYTES = 16, 128


@dataclass(frozen=True)
class WarpgroupTiling:
    """How a block's warpgroups tile an accumulator: ``row_groups`` x ``column_groups`` warpgroups (the
    warpgroup ``g`` at ``divmod(g, column_groups)``), each running ``row_repeats`` x ``column_repeats``
    instructions of 64 rows by ``columns``. Instruction ``(r, c)`` of warpgroup ``(i, j)`` computes rows
    ``64 (r * row_groups + i)`` on and columns ``columns * (c * column_groups + j)`` on, into the thread's
    registers ``columns / 2 * (r * column_repeats + c)`` on."""

    row_groups: int
    column_groups: int
    row_repeats: int
    column_repeats: int
    columns: int

    @property
    def layout(self) -> RegisterLayout:
        fragment = mma_fragments("m16n8k16", "f16").c
        return (
            local(self.row_repeats, self.column_repeats)
            * spatial(self.row_groups, self.column_groups)
            * spatial(WARPGROUP_WARPS, 1)
            * local(1, self.columns // 8)
            * fragment
        )


def warpgroup_tiling(m: int, n: int, num_warps: int) -> WarpgroupTiling:
    """The tiling of an ``[m, n]`` float32 accumulator that a dot from shared memory computes with a block
    of ``num_warps`` warps: its warpgroups spread over ``m / 64`` row tiles first, then over columns, each
    warpgroup's part repeated in instructions of at most 256 columns.

    >>> warpgroup_tiling(128, 1024, num_warps=8)
    WarpgroupTiling(row_groups=2, column_groups=1, row_repeats=1, column_repeats=4, columns=256)
    """
    if num_warps % WARPGROUP_WARPS:
        raise LayoutError(
            f"a dot from shared memory needs whole warpgroups (4 warps); the block has {num_warps}"
        )
    if m % WARPGROUP_ROWS or n % 8:
        raise LayoutError(f"a dot from shared memory needs m a multiple of 64 and n of 8; got [{m}, {n}]")
    groups = num_warps // WARPGROUP_WARPS
    row_groups = math.gcd(groups, m // WARPGROUP_ROWS)
    column_groups = groups // row_groups
    if n % (8 * column_groups):
        raise LayoutError(
            f"{groups} warpgroups over a [{m}, {n}] accumulator: {column_groups} across its columns need n a "
            f"multiple of {8 * column_groups}"
        )
    columns = n // column_groups
    repeats = -(-columns // WARPGROUP_COLUMNS)
    while columns % (repeats * 8):
        repeats += 1
    rows = m // (WARPGROUP_ROWS * row_groups)
    return WarpgroupTiling(row_groups, column_groups, rows, repeats, columns // repeats)


def warpgroup_accumulator(m: int, n: int, num_warps: int) -> RegisterLayout:
    """The layout of ``warpgroup_tiling(m, n, num_warps)``.

    >>> str(warpgroup_accumulator(64, 512, num_warps=4))
    'spatial(4, 1).column_local(2, 64).spatial(8, 4).local(1, 2)'
    """
    return warpgroup_tiling(m, n, num_warps).layout


def warpgroup_operand_a(m: int, n: int, k: int, num_warps: int) -> RegisterLayout:
    """The layout of an ``[m, k]`` A operand in registers for the dot whose accumulator ``[m, n]`` is
    ``warpgroup_accumulator(m, n, num_warps)``: each warp holds the rows of its accumulator fragments as
    ``mma.sync``'s m16n8k16 A fragments, one per 16 values of k (the thread's locals in the order row
    repeat, k, fragment). That is ``wgmma``'s register fragment of A (warp ``w % 4`` of a warpgroup holds
    rows ``16 (w % 4)`` on, as the m16n8k16 fragment); warpgroups across the columns hold the same rows.

    >>> str(warpgroup_operand_a(128, 256, 64, num_warps=8))
    'spatial(8, 1).column_local(2, 8).spatial(8, 4).local(1, 2)'
    """
    if k % 16:
        raise LayoutError(f"a dot's A operand in registers needs k a multiple of 16; got [{m}, {k}]")
    fragments = mma_fragments("m16n8k16", "f16")
    quotient = warpgroup_accumulator(m, n, num_warps) / fragments.c
    return quotient.reduce(1) * local(1, k // 16) * fragments.a


@dataclass(frozen=True)
class OperandForm:
    """A K-major operand in a canonical swizzled layout: rows of ``row_bytes`` bytes, the view's first row
    at row ``first_row`` of its 8-row pattern's origin and its first value of k at ``first_k``."""

    row_bytes: int
    first_row: int
    first_k: int


def operand_swizzle(row_bytes: int, nbits: int) -> Swizzle:
    """The swizzle (on element offsets) of the canonical layout with rows of ``row_bytes`` bytes.

    >>> operand_swizzle(128, 16), operand_swizzle(32, 16)
    (Swizzle(bits=3, base=3, shift=3), Swizzle(bits=1, base=3, shift=3))
    """
    base = (_UNIT_BYTES * 8 // nbits).bit_length() - 1
    shift = (_PATTERN_SHIFT_BYTES * 8 // nbits).bit_length() - 1 - base
    return Swizzle(bits=(row_bytes // _UNIT_BYTES).bit_length() - 1, base=base, shift=shift)


def operand_form(layout: SharedLayout, k_dim: int, nbits: int) -> OperandForm | None:
    """The canonical form of a rank-2 shared view read as an operand whose values of k run along
    ``k_dim`` (1 for A ``[m, k]``, 0 for B ``[k, n]``), or None when it is not one: k contiguous, rows of
    32, 64 or 128 bytes swizzled as ``operand_swizzle``, the view starting on a row that begins an 8-row
    pattern and at a multiple of 16 values of k, and no row wider than the pattern.

    >>> from tilevm.layout import shared
    >>> stage = shared((2, 64, 64), strides=(4096, 64, 1)).swizzle(3, 3, 3)
    >>> operand_form(stage.slice((1, 0, 16), (64, 32), dims=(1, 2)), k_dim=1, nbits=16)
    OperandForm(row_bytes=128, first_row=64, first_k=16)
    >>> operand_form(shared((64, 64), strides=(64, 1)), k_dim=1, nbits=16) is None  # not swizzled
    True
    """
    if layout.rank != 2 or nbits != 16:
        return None
    row_dim = 1 - k_dim
    row_elements = layout.strides[row_dim]
    row_bytes = row_elements * nbits // 8
    if layout.strides[k_dim] != 1 or row_bytes not in _ROW_BYTES:
        return None
    if layout.swizzling != operand_swizzle(row_bytes, nbits):
        return None
    first_row, first_k = divmod(layout.origin, row_elements)
    k_values = 16
    if first_row % 8 or first_k % k_values or first_k + layout.shape[k_dim] > row_elements:
        return None
    return OperandForm(row_bytes=row_bytes, first_row=first_row, first_k=first_k)


def canonical_placement(plain: SharedLayout, nbits: int) -> SharedLayout | None:
    """``plain`` (an allocation's row-major placement) with the swizzle of the canonical layout whose rows
    are its last dim, or None when those rows are not 32, 64 or 128 bytes of 16-bit values: the placement
    that makes views of it along that dim canonical operands (``operand_form`` says which are).

    >>> from tilevm.layout import shared
    >>> str(canonical_placement(shared((3, 128, 64)), nbits=16))
    'shared((3, 128, 64), strides=(8192, 64, 1)).swizzle(3, 3, 3)'
    """
    if nbits != 16:
        return None
    row_bytes = plain.shape[-1] * nbits // 8
    if plain.strides[-1] != 1 or row_bytes not in _ROW_BYTES:
        return None
    swizzling = operand_swizzle(row_bytes, nbits)
    return plain.swizzle(swizzling.bits, swizzling.base, swizzling.shift)
