"""The DSL's functions that allocate tiles and move data: global, shared and register tiles, atomics,
asynchronous copies and the barrier.

Each one builds IR through the kernel being compiled; called outside a kernel, it raises. Arguments may be
Python numbers (converted to constants) or IR values.
"""

from __future__ import annotations

from collections.abc import Sequence

from tilevm.dtypes import DType
from tilevm.ir import (
    AllocRegister,
    AllocShared,
    AtomicGlobal,
    CopyAsync,
    CopyAsyncCommit,
    CopyAsyncWait,
    Expr,
    FreeShared,
    GlobalType,
    LoadGlobal,
    LoadScalar,
    LoadShared,
    SliceShared,
    StoreGlobal,
    StoreShared,
    Sync,
    TileType,
)
from tilevm.lang.builtin_arguments import (
    dtype_argument,
    emit,
    emit_output,
    layout_argument,
    offsets_argument,
    shape_argument,
    tile_dims,
    tile_or_global,
)
from tilevm.lang.values import constant, literal_like
from tilevm.layout import RegisterLayout

__all__ = [
    "atomic_add",
    "atomic_max",
    "atomic_min",
    "copy_async",
    "copy_async_commit",
    "copy_async_wait",
    "free_shared",
    "load_global",
    "load_scalar",
    "load_shared",
    "register_tensor",
    "shared_tensor",
    "slice_shared",
    "store_global",
    "store_shared",
    "sync",
]


# allocation


def register_tensor(
    dtype: DType, shape: Sequence[int], init: object = None, layout: RegisterLayout | None = None
) -> Expr:
    """A register tile of ``dtype`` and ``shape``, every element ``init`` (undefined when None)."""
    dtype = dtype_argument(dtype, "register_tensor")
    init_expr = None if init is None else literal_like(init, constant(0, dtype))
    return emit_output(
        "register_tensor",
        AllocRegister,
        layout_argument(layout, "register_tensor"),
        dtype=dtype,
        shape=shape_argument(shape, "shape"),
        init=init_expr,
    )


def shared_tensor(dtype: DType, shape: Sequence[int]) -> Expr:
    """A tile of shared memory, seen by every thread of the block. Its contents start undefined."""
    return emit_output(
        "shared_tensor",
        AllocShared,
        dtype=dtype_argument(dtype, "shared_tensor"),
        shape=shape_argument(shape, "shape"),
    )


def free_shared(tensor: Expr) -> None:
    emit("free_shared", FreeShared(tensor=tile_or_global(tensor, "free_shared", (TileType,))))


def slice_shared(
    tensor: Expr, offsets: Sequence[object], shape: Sequence[int], dims: Sequence[int] | None = None
) -> Expr:
    """The part of a shared tile at ``offsets`` of ``shape``, along ``dims`` (the last ones by default)."""
    tensor = tile_or_global(tensor, "slice_shared", (TileType,))
    shape = shape_argument(shape, "shape")
    return emit_output(
        "slice_shared",
        SliceShared,
        tensor=tensor,
        offsets=offsets_argument(offsets),
        shape=shape,
        dims=tile_dims(dims, tensor.type.rank, len(shape)),
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
    tensor = tile_or_global(tensor, "load_global", (GlobalType,))
    shape = shape_argument(shape, "shape")
    other_expr = None if other is None else literal_like(other, constant(0, tensor.type.dtype))
    return emit_output(
        "load_global",
        LoadGlobal,
        layout_argument(layout, "load_global"),
        tensor=tensor,
        offsets=offsets_argument(offsets),
        shape=shape,
        dims=tile_dims(dims, tensor.type.rank, len(shape)),
        other=other_expr,
    )


def store_global(
    tensor: Expr, value: Expr, offsets: Sequence[object], dims: Sequence[int] | None = None
) -> None:
    """Write a register tile into a global tensor at ``offsets``; elements outside the tensor are skipped."""
    _write_global("store_global", StoreGlobal, tensor, value, offsets, dims)


def _write_global(builtin: str, kind: type, tensor: Expr, value: Expr, offsets: Sequence[object],
                  dims: Sequence[int] | None, **attributes: object) -> None:  # fmt: skip
    tensor = tile_or_global(tensor, builtin, (GlobalType,))
    value = tile_or_global(value, builtin, (TileType,))
    dims = tile_dims(dims, tensor.type.rank, value.type.rank)
    emit(
        builtin, kind(tensor=tensor, value=value, offsets=offsets_argument(offsets), dims=dims, **attributes)
    )


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
    tensor = tile_or_global(tensor, "load_scalar", (GlobalType,))
    return emit_output(
        "load_scalar", LoadScalar, tensor=tensor, indices=offsets_argument(indices, "load_scalar's index")
    )


def load_shared(tensor: Expr, layout: RegisterLayout | None = None) -> Expr:
    """Read a whole shared tile into registers."""
    tensor = tile_or_global(tensor, "load_shared", (TileType,))
    return emit_output("load_shared", LoadShared, layout_argument(layout, "load_shared"), tensor=tensor)


def store_shared(tensor: Expr, value: Expr) -> None:
    """Write a register tile into a shared tile of the same shape."""
    emit(
        "store_shared",
        StoreShared(
            tensor=tile_or_global(tensor, "store_shared", (TileType,)),
            value=tile_or_global(value, "store_shared", (TileType,)),
        ),
    )


def copy_async(
    destination: Expr, source: Expr, offsets: Sequence[object], dims: Sequence[int] | None = None
) -> None:
    """Start copying the window of ``source`` at ``offsets`` into the shared tile ``destination``."""
    destination = tile_or_global(destination, "copy_async", (TileType,))
    source = tile_or_global(source, "copy_async", (GlobalType,))
    emit(
        "copy_async",
        CopyAsync(
            destination=destination,
            source=source,
            offsets=offsets_argument(offsets),
            dims=tile_dims(dims, source.type.rank, destination.type.rank),
        ),
    )


def copy_async_commit() -> None:
    """Close the group of copies started since the last commit."""
    emit("copy_async_commit", CopyAsyncCommit())


def copy_async_wait(pending: int = 0) -> None:
    """Wait until at most ``pending`` groups of copies are in flight; ``sync()`` then shares the data."""
    emit("copy_async_wait", CopyAsyncWait(pending=pending))


def sync() -> None:
    """A barrier for the block's threads."""
    emit("sync", Sync())
