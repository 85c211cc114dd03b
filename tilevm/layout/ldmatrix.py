"""The register layouts that ``ldmatrix.sync.aligned.m8n8.{x1,x2,x4}{.trans}.b16`` produce.

From the PTX ISA ("Warp-level matrix load instruction: ldmatrix"): each 8x8 matrix of 16-bit elements is
read as 8 rows of 16 bytes; a group of four consecutive threads receives one row, so thread ``t`` gets, in
the 32-bit register of that matrix, the elements at row ``t // 4``, columns ``2 * (t % 4)`` and
``2 * (t % 4) + 1``. Matrix ``j`` goes to register ``j``. With ``.trans`` each matrix arrives transposed:
thread ``t`` gets rows ``2 * (t % 4)`` and ``2 * (t % 4) + 1`` of column ``t // 4``.

The tile here stacks the matrices along rows (matrix ``j`` is rows ``[8 j, 8 j + 8)`` of an ``8 num x 8``
tile) and local slot ``i`` is half ``i % 2`` of register ``i // 2``, as for :mod:`tilevm.layout.mma`:

- ``ldmatrix_layout(n)`` is ``local(n, 1) * spatial(8, 4) * local(1, 2)``;
- ``ldmatrix_layout(n, trans=True)`` is ``local(n, 1) * column_spatial(4, 8) * local(2, 1)``.

Which 8-row slab of a larger tile each matrix comes from is the choice of the addresses the threads
pass, so another arrangement is this layout with its first factor replaced (the mma A fragment of
m16n8k16 is ``column_local(2, 2)`` times the one-matrix layout).

>>> ldmatrix_layout(1).table()[6].tolist()  # thread 6: row 1, columns 4 and 5
[[1, 4], [1, 5]]
>>> ldmatrix_layout(2, trans=True).table()[6].tolist()  # thread 6: column 1, rows 4 and 5, per matrix
[[4, 1], [5, 1], [12, 1], [13, 1]]
"""

from __future__ import annotations

from tilevm.layout.errors import LayoutError
from tilevm.layout.register import RegisterLayout, column_spatial, local, spatial

__all__ = ["ldmatrix_layout"]


def ldmatrix_layout(num_matrices: int, trans: bool = False) -> RegisterLayout:
    """The ``[8 * num_matrices, 8]`` register layout of ``ldmatrix...m8n8.x{num_matrices}{.trans}.b16``.

    >>> ldmatrix_layout(4).shape, ldmatrix_layout(4).local_size
    ((32, 8), 8)
    """
    if num_matrices not in (1, 2, 4):
        raise LayoutError(f"ldmatrix loads 1, 2 or 4 matrices (.x1, .x2, .x4), not {num_matrices}")
    if trans:
        return local(num_matrices, 1) * column_spatial(4, 8) * local(2, 1)
    return local(num_matrices, 1) * spatial(8, 4) * local(1, 2)
