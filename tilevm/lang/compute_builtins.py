"""The DSL's functions that index the grid and compute on tiles: block indices, cdiv, dot, cast, views,
where, layouts, arange and permute.

Each one builds IR through the kernel being compiled; called outside a kernel, it raises. Arguments may be
Python numbers (converted to constants) or IR values.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Sequence

from tilevm.dtypes import DType, int32
from tilevm.errors import CompilationError
from tilevm.ir import (
    Arange,
    BinaryExpr,
    BlockIndex,
    Cast,
    CastExpr,
    ConvertLayout,
    Dot,
    DotWait,
    Expr,
    GridSize,
    Permute,
    PermuteShared,
    ScalarType,
    Scope,
    SharedDot,
    TileType,
    View,
    Where,
)
from tilevm.ir.expr import ROUNDING_MODES
from tilevm.lang.builtin_arguments import (
    dtype_argument,
    emit,
    emit_output,
    int_tuple,
    layout_argument,
    shape_argument,
    tile_or_global,
)
from tilevm.lang.context import current
from tilevm.lang.operators import promoted
from tilevm.lang.values import constant, describe_value, index_expr, is_ir, literal_like
from tilevm.layout import RegisterLayout
from tilevm.layout.shared import permute_shared

__all__ = [
    "arange",
    "block_idx",
    "cast",
    "cdiv",
    "convert_layout",
    "dot",
    "num_blocks",
    "permute",
    "view_tile",
    "where",
]


# indices


def block_idx(axis: int = 0) -> Expr:
    """The index of this block along grid axis 0, 1 or 2."""
    current("block_idx")
    return BlockIndex(_axis(axis))


def num_blocks(axis: int = 0) -> Expr:
    """The number of blocks along grid axis 0, 1 or 2."""
    current("num_blocks")
    return GridSize(_axis(axis))


def _axis(axis: object) -> int:
    if axis not in (0, 1, 2):
        raise CompilationError(f"a grid axis is 0, 1 or 2, got {describe_value(axis)}")
    return axis


def cdiv(numerator: int | Expr, denominator: int | Expr) -> int | Expr:
    """``ceil(numerator / denominator)`` for non-negative integers; Python ints or IR scalars."""
    if not is_ir(numerator) and not is_ir(denominator):
        return -(-numerator // denominator)
    numerator = index_expr(numerator, "cdiv's numerator")
    numerator, denominator = promoted(numerator, literal_like(denominator, numerator))
    minus_one = constant(1, numerator.type.dtype)
    total = BinaryExpr("sub", BinaryExpr("add", numerator, denominator), minus_one)
    return BinaryExpr("floordiv", total, denominator)


# compute


def dot(a: Expr, b: Expr, accumulator: Expr, wait: bool = True) -> Expr:
    """``a @ b + accumulator`` on register tiles [m, k], [k, n], [m, n], or [*B, m, k], [*B, k, n],
    [*B, m, n] with the same leading batch dims ``B``: one independent product per batch index. With ``b``
    a shared tile (and ``a`` a shared tile or a register tile), a dot read from shared memory by the
    block's warpgroups (``SharedDot``), which ``wait=False`` leaves running until a ``dot_wait``."""
    if not isinstance(wait, bool):
        raise CompilationError(f"dot's wait must be a compile-time bool, got {describe_value(wait)}")
    shared = [_is_shared_tile(operand) for operand in (a, b)]
    if not any(shared):
        if not wait:
            raise CompilationError("dot(..., wait=False) runs on shared tiles; a and b are in registers")
        return emit_output("dot", Dot, a=a, b=b, accumulator=accumulator)
    if not shared[1]:
        raise CompilationError(
            "a dot from shared memory reads b from shared memory (a may be in registers); b is in registers: "
            "store b into shared memory, or load_shared a"
        )
    num_warps = current("dot").builder.num_threads // 32
    if num_warps % 4:
        raise CompilationError(
            f"a dot from shared memory runs on warpgroups of 4 warps; the kernel has {num_warps} warps"
        )
    return emit_output("dot", SharedDot, a=a, b=b, accumulator=accumulator, wait=wait)


def dot_wait(pending: int = 0) -> None:
    """Wait until at most the ``pending`` latest dots started with ``wait=False`` still run."""
    if not isinstance(pending, int) or isinstance(pending, bool) or pending < 0:
        raise CompilationError(
            f"dot_wait's pending must be a compile-time int >= 0, got {describe_value(pending)}"
        )
    emit("dot_wait", DotWait(pending=pending))


def _is_shared_tile(value: object) -> bool:
    return is_ir(value) and isinstance(value.type, TileType) and value.type.scope == Scope.SHARED


def cast(value: Expr, dtype: DType, rounding: str | None = None, scale: float = 1.0) -> Expr:
    """Convert to ``dtype``; ``rounding`` is "nearest" (ties to even) or "zero". Without one, float to integer
    truncates (rounding "zero"), as torch's ``.to(torch.int8)`` does, and every other cast rounds to nearest;
    the IR's cast always carries the rounding chosen. Out-of-range values saturate (see ``tilevm.ir.Cast``).
    ``scale``, a power of two, multiplies a tile of low-bit integers or floats on its way to a float dtype,
    rounded once: a small float's cast to float16 moves its bits and multiplies by ``2**(15 - bias)``, and
    ``scale=2**(bias - 15)`` leaves that multiply out."""
    dtype = dtype_argument(dtype, "cast")
    if rounding is None:
        source = value.type.dtype if is_ir(value) else None
        rounding = "zero" if source and source.is_float and dtype.is_integer else "nearest"
    if rounding not in ROUNDING_MODES:
        raise CompilationError(f"cast's rounding is one of {', '.join(ROUNDING_MODES)}, got {rounding!r}")
    exponent = _power_of_two_exponent(scale)
    if is_ir(value) and isinstance(value.type, ScalarType):
        if exponent:
            raise CompilationError("cast's scale applies to tiles, not scalars")
        return CastExpr(value, dtype, rounding)
    return emit_output("cast", Cast, operand=value, dtype=dtype, rounding=rounding, scale_exponent=exponent)


def _power_of_two_exponent(scale: object) -> int:
    """``j`` for a ``scale`` of ``2**j``; a clear error for anything else."""
    number = isinstance(scale, int | float) and not isinstance(scale, bool)
    if not (number and math.isfinite(scale) and scale > 0 and math.frexp(scale)[0] == 0.5):
        raise CompilationError(f"cast's scale is a power of two, got {scale!r}")
    return math.frexp(scale)[1] - 1


def view_tile(
    value: Expr, dtype: DType, shape: Sequence[int] | None = None, layout: RegisterLayout | None = None
) -> Expr:
    """The tile's bits, row-major, read as ``dtype``: a ``[K, N/2]`` uint8 tile becomes ``[K, N]`` int4.

    Without ``shape``, the last dimension is rescaled. A ``layout`` is pinned, and must keep each thread's
    bits where the operand's layout has them (``tilevm.layout.view_layout`` gives the one that does)."""
    value = tile_or_global(value, "view", (TileType,))
    dtype = dtype_argument(dtype, "view")
    if shape is None:
        *outer, last = value.type.shape
        last_bits = last * value.type.dtype.nbits
        if last_bits % dtype.nbits:
            raise CompilationError(
                f"a row of {last_bits} bits does not hold whole {dtype} elements; give a shape"
            )
        shape = (*outer, last_bits // dtype.nbits)
    return emit_output(
        "view",
        View,
        layout_argument(layout, "view"),
        operand=value,
        dtype=dtype,
        shape=shape_argument(shape, "shape"),
    )


def where(condition: Expr, on_true: object, on_false: object) -> Expr:
    """``on_true`` where ``condition`` holds, else ``on_false`` (broadcast together)."""
    anchor = on_true if is_ir(on_true) else on_false
    if not is_ir(anchor):
        raise CompilationError("where needs at least one IR value among on_true and on_false")
    on_true, on_false = promoted(literal_like(on_true, anchor), literal_like(on_false, anchor))
    return emit_output("where", Where, condition=condition, on_true=on_true, on_false=on_false)


def convert_layout(tile: Expr, layout: RegisterLayout) -> Expr:
    """The same register tile in ``layout`` (the values unchanged); layout inference keeps that layout.

    A layout given here or through the ``layout=`` argument of ``register_tensor``, ``load_global``,
    ``load_shared`` and ``view`` is pinned; every other layout is left to inference.
    """
    tile = tile_or_global(tile, "convert_layout", (TileType,))
    if layout is None:
        raise CompilationError("convert_layout needs a register layout, got None")
    return emit_output(
        "convert_layout", ConvertLayout, layout_argument(layout, "convert_layout"), operand=tile
    )


def arange(size: int, dtype: DType = int32, layout: RegisterLayout | None = None) -> Expr:
    """The register tile ``[size]`` holding ``0, 1, ..., size - 1`` in the integer ``dtype``: masks from
    indices, such as a ragged tail ``tv.where(tv.arange(BLOCK) + start < n, x, 0.0)``."""
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise CompilationError(
            f"arange's size must be a positive compile-time int, got {describe_value(size)}"
        )
    dtype = dtype_argument(
        dtype, "arange"
    )  # Arange's type rule checks that it is an integer dtype holding size - 1
    return emit_output("arange", Arange, layout_argument(layout, "arange"), dtype=dtype, size=size)


def permute(tile: Expr, dims: Sequence[int]) -> Expr:
    """The tile with its dims reordered as ``numpy.transpose`` (result dim ``i`` is dim ``dims[i]``); for a
    shared tile, a view of the same memory. ``tile.T`` is ``permute(tile, [1, 0])`` for a rank-2 tile."""
    tile = tile_or_global(tile, "permute", (TileType,))
    if sorted(int_tuple(dims, "permute's dims")) != list(builtins.range(tile.type.rank)):
        raise CompilationError(
            f"permute's dims must name each of the {tile.type.rank} dims of the tile once, "
            f"got {describe_value(dims)}"
        )
    if tile.type.scope is Scope.REGISTER:
        return emit_output("permute", Permute, operand=tile, dims=tuple(dims))
    # a view of a placed shared tile is placed by the permuted layout (``PermuteShared``'s rule)
    layout = None if tile.type.layout is None else permute_shared(tile.type.layout, dims)
    return emit_output("permute", PermuteShared, layout, tensor=tile, dims=tuple(dims))
