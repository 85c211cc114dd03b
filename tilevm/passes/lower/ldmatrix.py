"""``load_shared`` through ``ldmatrix``: a register tile whose layout is ``quotient * atom`` (an ``ldmatrix``
atom, ``shared_access.LDMATRIX_ATOMS``) is one 8x8 matrix per local element of the quotient.

Matrices go four to an ``ldmatrix.x4`` (then ``.x2``, ``.x1`` for the rest). Lanes ``8 j`` to ``8 j + 7``
address the rows of matrix ``j`` of the instruction: row ``lane % 8`` of the matrix at tile coordinate
``8 * quotient(warp, first + j)``. The quotient's thread part depends only on the warp (the atom holds the
32 lanes), and its local part is a constant per matrix, picked by ``j = (lane / 8) % count`` through
arithmetic when the constants are affine in the bits of ``j``, by selects otherwise. Each matrix arrives
as one ``vector<f16, 2>`` per lane, which is local elements ``2 i`` and ``2 i + 1`` of the tile: the
outputs, in order, are the tile's register.
"""

from __future__ import annotations

from tilevm.dtypes import int32
from tilevm.ir.expr import BinaryExpr, Const, Expr, Var
from tilevm.ir.thread import Gather, Ldmatrix, Select
from tilevm.ir.types import VectorType
from tilevm.layout import spatial
from tilevm.passes.lower.lowering import Lowering, SharedTile
from tilevm.passes.lower.shared_access import LDMATRIX_ROW, LdmatrixPlan, local_offsets
from tilevm.passes.lower.shared_address import SwizzledOffsets, add, byte_pointer, linear_offset, scale

__all__ = ["load_matrices"]


def load_matrices(lowering: Lowering, tile: SharedTile, plan: LdmatrixPlan, local_size: int) -> Expr:
    """The thread's register of the tile, loaded with ``ldmatrix`` by ``plan``."""
    strides = tile.layout.strides
    warp_part = lowering.thread_coordinates(plan.quotient.replicated(32))
    matrix_offsets = [LDMATRIX_ROW * int(offset) for offset in local_offsets(plan.quotient, strides)]
    row = lowering.thread_coordinates(spatial(4, LDMATRIX_ROW))[1]
    coordinates = tuple(
        add(scale(part, LDMATRIX_ROW), row) if dim == plan.row_dim else scale(part, LDMATRIX_ROW)
        for dim, part in enumerate(warp_part)
    )
    start = linear_offset(lowering, tile, coordinates, "row")
    outputs: list[Var] = []
    lanes: dict[tuple[int, ...], SwizzledOffsets] = {}
    for count in plan.counts():
        selector = lowering.thread_coordinates(spatial(count, LDMATRIX_ROW))[0]
        first = len(outputs)
        offsets = matrix_offsets[first : first + count]
        steps = tuple(value - offsets[0] for value in offsets)
        if steps not in lanes:  # the lane's matrix among the instruction's, the same for most of them
            lane = lowering.let("lane", add(start, _pick(selector, list(steps))))
            lanes[steps] = SwizzledOffsets(lowering, tile.layout, lane)
        offset = lanes[steps](offsets[0])
        group = tuple(Var("matrix", VectorType(tile.dtype, 2)) for _ in range(count))
        lowering.emit(
            Ldmatrix(outputs=group, pointer=byte_pointer(tile, offset), count=count, transpose=plan.transpose)
        )
        outputs += group
    if len(outputs) == 1:
        return outputs[0]
    return lowering.let("fragment", Gather(tuple(outputs), tuple(range(local_size))))


def _pick(selector: Expr, values: list[int]) -> Expr:
    """``values[selector]`` as an int32 expression (``selector`` in ``range(len(values))``)."""
    first = values[0]
    steps = [value - first for value in values]
    if len(values) == 1 or not any(steps):
        return Const(first, int32)
    if len(values) == 2:
        return add(Const(first, int32), scale(selector, steps[1]))
    if steps[3] == steps[1] + steps[2]:  # affine in the two bits of the selector
        low = scale(BinaryExpr("and", selector, Const(1, int32)), steps[1])
        high = scale(BinaryExpr("shr", selector, Const(1, int32)), steps[2])
        return add(Const(first, int32), low, high)
    picked: Expr = Const(values[-1], int32)
    for index in range(len(values) - 2, -1, -1):
        is_index = BinaryExpr("eq", selector, Const(index, int32))
        picked = Select(is_index, Const(values[index], int32), picked)
    return picked
