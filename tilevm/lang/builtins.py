"""The DSL's functions: what a kernel calls to allocate, move and compute on tiles.

Each one builds IR through the kernel being compiled; called outside a kernel, it raises. Arguments may be
Python numbers (converted to constants) or IR values.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence

from tilevm.dtypes import DType, int32
from tilevm.errors import CompilationError
from tilevm.ir import (
    AllocRegister,
    AllocShared,
    Arange,
    AtomicGlobal,
    BinaryExpr,
    BlockIndex,
    Cast,
    CastExpr,
    ConvertLayout,
    CopyAsync,
    CopyAsyncCommit,
    CopyAsyncWait,
    Dot,
    Expr,
    FreeShared,
    GlobalType,
    GridSize,
    LoadGlobal,
    LoadScalar,
    LoadShared,
    Permute,
    PermuteShared,
    Reduce,
    ScalarType,
    Scope,
    SliceShared,
    StoreGlobal,
    StoreShared,
    Sync,
    TileType,
    Unary,
    UnaryExpr,
    View,
    Where,
)
from tilevm.ir.accumulators import reduce_dtype
from tilevm.ir.expr import ROUNDING_MODES, UNARY_OPS
from tilevm.lang.context import current
from tilevm.lang.operators import UNARY_OPERATORS, binary_operation, checked, promoted
from tilevm.lang.values import constant, describe_value, index_expr, is_ir, literal_like
from tilevm.layout import RegisterLayout
from tilevm.layout.shared import permute_shared

__all__ = [
    "abs", "arange", "atomic_add", "atomic_max", "atomic_min", "block_idx", "cast", "cdiv", "convert_layout",
    "copy_async", "copy_async_commit", "copy_async_wait", "cos", "dot", "exp", "exp2", "free_shared",
    "load_global", "load_shared", "log", "log2", "max", "maximum", "min", "minimum", "num_blocks", "permute",
    "register_tensor", "rsqrt", "shared_tensor", "sin", "slice_shared", "sqrt", "store_global",
    "store_shared", "sum", "sync", "tanh", "view_tile", "where",
    "load_scalar", "floor", "ceil", "round", "trunc",
]  # fmt: skip


def _emit_output(builtin: str, kind: type, layout: RegisterLayout | None = None, **fields: object) -> Expr:
    context = current(builtin)
    return context.builder.emit_output(kind, context.name_hint, layout=layout, **fields)


def _emit(builtin: str, instruction: object) -> None:
    current(builtin).builder.emit(instruction)


def _shape(shape: object, what: str) -> tuple[int, ...]:
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not all(
        isinstance(extent, int) and not isinstance(extent, bool) and extent > 0 for extent in shape
    ):
        raise CompilationError(
            f"{what} must be a list of positive compile-time ints (constexprs, not tensor sizes), "
            f"got {describe_value(shape)}"
        )
    return tuple(shape)


def _offsets(offsets: object, what: str = "offsets") -> tuple[Expr, ...]:
    if not isinstance(offsets, (tuple, list)):
        offsets = (offsets,)
    return tuple(index_expr(offset, f"{what}[{position}]") for position, offset in enumerate(offsets))


def _tile_or_global(value: object, builtin: str, kinds: tuple[type, ...]) -> Expr:
    current(builtin)
    if not is_ir(value) or not isinstance(value.type, kinds):
        raise CompilationError(f"{builtin} cannot take {describe_value(value)}")
    return value


def _dims(dims: Sequence[int] | None, source_rank: int, tile_rank: int) -> tuple[int, ...]:
    if dims is None:
        return tuple(builtins.range(source_rank - tile_rank, source_rank))
    return _ints(dims, "dims")


def _ints(values: object, what: str) -> tuple[int, ...]:
    """``values`` as a tuple of compile-time ints (dims, say), or an error saying what they are instead."""
    if not isinstance(values, (tuple, list)) or not all(_is_int(value) for value in values):
        raise CompilationError(f"{what} must be a list of compile-time ints, got {describe_value(values)}")
    return tuple(values)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _dtype(dtype: object, builtin: str) -> DType:
    if not isinstance(dtype, DType):
        raise CompilationError(
            f"{builtin} needs a tilevm dtype such as tv.float16, got {describe_value(dtype)}"
        )
    return dtype


def _layout(layout: object, builtin: str) -> RegisterLayout | None:
    if layout is not None and not isinstance(layout, RegisterLayout):
        raise CompilationError(f"{builtin}'s layout must be a register layout, got {describe_value(layout)}")
    return layout


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


# allocation


def register_tensor(
    dtype: DType, shape: Sequence[int], init: object = None, layout: RegisterLayout | None = None
) -> Expr:
    """A register tile of ``dtype`` and ``shape``, every element ``init`` (undefined when None)."""
    dtype = _dtype(dtype, "register_tensor")
    init_expr = None if init is None else literal_like(init, constant(0, dtype))
    return _emit_output(
        "register_tensor",
        AllocRegister,
        _layout(layout, "register_tensor"),
        dtype=dtype,
        shape=_shape(shape, "shape"),
        init=init_expr,
    )


def shared_tensor(dtype: DType, shape: Sequence[int]) -> Expr:
    """A tile of shared memory, seen by every thread of the block. Its contents start undefined."""
    return _emit_output(
        "shared_tensor", AllocShared, dtype=_dtype(dtype, "shared_tensor"), shape=_shape(shape, "shape")
    )


def free_shared(tensor: Expr) -> None:
    _emit("free_shared", FreeShared(tensor=_tile_or_global(tensor, "free_shared", (TileType,))))


def slice_shared(
    tensor: Expr, offsets: Sequence[object], shape: Sequence[int], dims: Sequence[int] | None = None
) -> Expr:
    """The part of a shared tile at ``offsets`` of ``shape``, along ``dims`` (the last ones by default)."""
    tensor = _tile_or_global(tensor, "slice_shared", (TileType,))
    shape = _shape(shape, "shape")
    return _emit_output(
        "slice_shared",
        SliceShared,
        tensor=tensor,
        offsets=_offsets(offsets),
        shape=shape,
        dims=_dims(dims, tensor.type.rank, len(shape)),
    )


# data movement


def load_global(
    tensor: Expr,
    offsets: Sequence[object],
    shape: Sequence[int],
    dims: Sequence[int] | None = None,
    other: object = None,
    layout: RegisterLayout | None = None,
) -> Expr:
    """Read the tile of ``shape`` at ``offsets`` of a global tensor; elements outside it read ``other``
    (zero when None)."""
    tensor = _tile_or_global(tensor, "load_global", (GlobalType,))
    shape = _shape(shape, "shape")
    other_expr = None if other is None else literal_like(other, constant(0, tensor.type.dtype))
    return _emit_output(
        "load_global",
        LoadGlobal,
        _layout(layout, "load_global"),
        tensor=tensor,
        offsets=_offsets(offsets),
        shape=shape,
        dims=_dims(dims, tensor.type.rank, len(shape)),
        other=other_expr,
    )


def store_global(
    tensor: Expr, value: Expr, offsets: Sequence[object], dims: Sequence[int] | None = None
) -> None:
    """Write a register tile into a global tensor at ``offsets``; elements outside the tensor are skipped."""
    _write_global("store_global", StoreGlobal, tensor, value, offsets, dims)


def _write_global(builtin: str, kind: type, tensor: Expr, value: Expr, offsets: Sequence[object],
                  dims: Sequence[int] | None, **attributes: object) -> None:  # fmt: skip
    tensor = _tile_or_global(tensor, builtin, (GlobalType,))
    value = _tile_or_global(value, builtin, (TileType,))
    dims = _dims(dims, tensor.type.rank, value.type.rank)
    _emit(builtin, kind(tensor=tensor, value=value, offsets=_offsets(offsets), dims=dims, **attributes))


def _atomic(op: str):
    def atomic(
        tensor: Expr, value: Expr, offsets: Sequence[object], dims: Sequence[int] | None = None
    ) -> None:
        _write_global(f"atomic_{op}", AtomicGlobal, tensor, value, offsets, dims, op=op)

    atomic.__name__ = atomic.__qualname__ = f"atomic_{op}"
    atomic.__doc__ = f"Atomically combine a register tile into a global tensor with '{op}'."
    return atomic


atomic_add, atomic_max, atomic_min = _atomic("add"), _atomic("max"), _atomic("min")


def load_scalar(tensor: Expr, *indices: object) -> Expr:
    """``tensor[indices]`` as a runtime scalar of the tensor's dtype: a loop bound or an offset read from
    memory (a sequence's length, a block table's entry). One integer index per dimension; an index outside
    the tensor is an error when the kernel runs.

    ``n = tv.load_scalar(lengths, tv.block_idx(0))`` then ``for start in range(0, n, BLOCK): ...``
    """
    tensor = _tile_or_global(tensor, "load_scalar", (GlobalType,))
    return _emit_output(
        "load_scalar", LoadScalar, tensor=tensor, indices=_offsets(indices, "load_scalar's index")
    )


def load_shared(tensor: Expr, layout: RegisterLayout | None = None) -> Expr:
    """Read a whole shared tile into registers."""
    tensor = _tile_or_global(tensor, "load_shared", (TileType,))
    return _emit_output("load_shared", LoadShared, _layout(layout, "load_shared"), tensor=tensor)


def store_shared(tensor: Expr, value: Expr) -> None:
    """Write a register tile into a shared tile of the same shape."""
    _emit(
        "store_shared",
        StoreShared(
            tensor=_tile_or_global(tensor, "store_shared", (TileType,)),
            value=_tile_or_global(value, "store_shared", (TileType,)),
        ),
    )


def copy_async(
    destination: Expr, source: Expr, offsets: Sequence[object], dims: Sequence[int] | None = None
) -> None:
    """Start copying the window of ``source`` at ``offsets`` into the shared tile ``destination``."""
    destination = _tile_or_global(destination, "copy_async", (TileType,))
    source = _tile_or_global(source, "copy_async", (GlobalType,))
    _emit(
        "copy_async",
        CopyAsync(
            destination=destination,
            source=source,
            offsets=_offsets(offsets),
            dims=_dims(dims, source.type.rank, destination.type.rank),
        ),
    )


def copy_async_commit() -> None:
    """Close the group of copies started since the last commit."""
    _emit("copy_async_commit", CopyAsyncCommit())


def copy_async_wait(pending: int = 0) -> None:
    """Wait until at most ``pending`` groups of copies are in flight; ``sync()`` then shares the data."""
    _emit("copy_async_wait", CopyAsyncWait(pending=pending))


def sync() -> None:
    """A barrier for the block's threads."""
    _emit("sync", Sync())


# compute


def dot(a: Expr, b: Expr, accumulator: Expr) -> Expr:
    """``a @ b + accumulator`` on register tiles [m, k], [k, n], [m, n]."""
    return _emit_output("dot", Dot, a=a, b=b, accumulator=accumulator)


def cast(value: Expr, dtype: DType, rounding: str | None = None) -> Expr:
    """Convert to ``dtype``; ``rounding`` is "nearest" (ties to even) or "zero". Without one, float to integer
    truncates (rounding "zero"), as torch's ``.to(torch.int8)`` does, and every other cast rounds to nearest;
    the IR's cast always carries the rounding chosen. Out-of-range values saturate (see ``tilevm.ir.Cast``).
    """
    dtype = _dtype(dtype, "cast")
    if rounding is None:
        source = value.type.dtype if is_ir(value) else None
        rounding = "zero" if source and source.is_float and dtype.is_integer else "nearest"
    if rounding not in ROUNDING_MODES:
        raise CompilationError(f"cast's rounding is one of {', '.join(ROUNDING_MODES)}, got {rounding!r}")
    if is_ir(value) and isinstance(value.type, ScalarType):
        return CastExpr(value, dtype, rounding)
    return _emit_output("cast", Cast, operand=value, dtype=dtype, rounding=rounding)


def view_tile(
    value: Expr, dtype: DType, shape: Sequence[int] | None = None, layout: RegisterLayout | None = None
) -> Expr:
    """The tile's bits, row-major, read as ``dtype``: a ``[K, N/2]`` uint8 tile becomes ``[K, N]`` int4.

    Without ``shape``, the last dimension is rescaled. A ``layout`` is pinned, and must keep each thread's
    bits where the operand's layout has them (``tilevm.layout.view_layout`` gives the one that does)."""
    value = _tile_or_global(value, "view", (TileType,))
    dtype = _dtype(dtype, "view")
    if shape is None:
        *outer, last = value.type.shape
        last_bits = last * value.type.dtype.nbits
        if last_bits % dtype.nbits:
            raise CompilationError(
                f"a row of {last_bits} bits does not hold whole {dtype} elements; give a shape"
            )
        shape = (*outer, last_bits // dtype.nbits)
    return _emit_output(
        "view", View, _layout(layout, "view"), operand=value, dtype=dtype, shape=_shape(shape, "shape")
    )


def where(condition: Expr, on_true: object, on_false: object) -> Expr:
    """``on_true`` where ``condition`` holds, else ``on_false`` (broadcast together)."""
    anchor = on_true if is_ir(on_true) else on_false
    if not is_ir(anchor):
        raise CompilationError("where needs at least one IR value among on_true and on_false")
    on_true, on_false = promoted(literal_like(on_true, anchor), literal_like(on_false, anchor))
    return _emit_output("where", Where, condition=condition, on_true=on_true, on_false=on_false)


def convert_layout(tile: Expr, layout: RegisterLayout) -> Expr:
    """The same register tile in ``layout`` (the values unchanged); layout inference keeps that layout.

    A layout given here or through the ``layout=`` argument of ``register_tensor``, ``load_global``,
    ``load_shared`` and ``view`` is pinned; every other layout is left to inference.
    """
    tile = _tile_or_global(tile, "convert_layout", (TileType,))
    if layout is None:
        raise CompilationError("convert_layout needs a register layout, got None")
    return _emit_output("convert_layout", ConvertLayout, _layout(layout, "convert_layout"), operand=tile)


def arange(size: int, dtype: DType = int32, layout: RegisterLayout | None = None) -> Expr:
    """The register tile ``[size]`` holding ``0, 1, ..., size - 1`` in the integer ``dtype``: masks from
    indices, such as a ragged tail ``tv.where(tv.arange(BLOCK) + start < n, x, 0.0)``."""
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise CompilationError(
            f"arange's size must be a positive compile-time int, got {describe_value(size)}"
        )
    dtype = _dtype(dtype, "arange")  # Arange's type rule checks that it is an integer dtype holding size - 1
    return _emit_output("arange", Arange, _layout(layout, "arange"), dtype=dtype, size=size)


def permute(tile: Expr, dims: Sequence[int]) -> Expr:
    """The tile with its dims reordered as ``numpy.transpose`` (result dim ``i`` is dim ``dims[i]``); for a
    shared tile, a view of the same memory. ``tile.T`` is ``permute(tile, [1, 0])`` for a rank-2 tile."""
    tile = _tile_or_global(tile, "permute", (TileType,))
    if sorted(_ints(dims, "permute's dims")) != list(builtins.range(tile.type.rank)):
        raise CompilationError(
            f"permute's dims must name each of the {tile.type.rank} dims of the tile once, "
            f"got {describe_value(dims)}"
        )
    if tile.type.scope is Scope.REGISTER:
        return _emit_output("permute", Permute, operand=tile, dims=tuple(dims))
    # a view of a placed shared tile is placed by the permuted layout (``PermuteShared``'s rule)
    layout = None if tile.type.layout is None else permute_shared(tile.type.layout, dims)
    return _emit_output("permute", PermuteShared, layout, tensor=tile, dims=tuple(dims))


def _reduction(op: str):
    def reduce(value: Expr, dim: int, keepdim: bool = False, dtype: DType | None = None) -> Expr:
        value = _tile_or_global(value, op, (TileType,))
        if not _is_int(dim):
            raise CompilationError(f"{op}'s dim must be a compile-time int, got {describe_value(dim)}")
        dtype = reduce_dtype(op, value.type.dtype) if dtype is None else _dtype(dtype, op)
        return _emit_output(op, Reduce, operand=value, op=op, dtype=dtype, dim=dim, keepdim=keepdim)

    reduce.__name__ = reduce.__qualname__ = op
    default = "the operand's dtype"
    if op == "sum":
        default = "int32 for integers (uint32 unsigned, 64 bits kept), float32 for floats"
    reduce.__doc__ = (
        f"The {op} of a register tile over ``dim``, computed in and returned as ``dtype`` (by default "
        f"{default}; see ``tilevm.ir.Reduce``)."
    )
    return reduce


sum, max, min = _reduction("sum"), _reduction("max"), _reduction("min")


def _unary(op: str):
    def unary(value: Expr) -> Expr:
        if is_ir(value) and isinstance(value.type, ScalarType):
            current(op)
            return checked(UnaryExpr(op, value))
        return _emit_output(op, Unary, op=op, operand=value)

    unary.__name__ = unary.__qualname__ = op
    unary.__doc__ = f"Elementwise {op} of a register tile or a scalar."
    return unary


# One builtin for each of the IR's unary ops that Python spells with no operator (it has -x and ~x); a new op
# in UNARY_OPS fails this unpacking until it is named here.
abs, exp, exp2, log, log2, sqrt, rsqrt, sin, cos, tanh, floor, ceil, round, trunc = (
    _unary(op) for op in UNARY_OPS if op not in {ir_op for ir_op, _ in UNARY_OPERATORS.values()}
)


def _elementwise_max_min(op: str):
    def combine(lhs: object, rhs: object) -> Expr:
        return binary_operation(op, lhs, rhs)

    combine.__name__ = combine.__qualname__ = "maximum" if op == "max" else "minimum"
    combine.__doc__ = f"Elementwise {op} of two tiles or scalars (NaN is ignored, as by PTX)."
    return combine


maximum, minimum = _elementwise_max_min("max"), _elementwise_max_min("min")
