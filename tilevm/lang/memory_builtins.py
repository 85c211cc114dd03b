"""The DSL's functions that allocate tiles and move data: global, shared and register tiles, atomics (of
tiles, and block-uniform ones of one element), asynchronous copies and the barrier.

Each one builds IR through the kernel being compiled; called outside a kernel, it raises. Arguments may be
Python numbers (converted to constants) or IR values.
"""

from __future__ import annotations

from collections.abc import Sequence

from tilevm.dtypes import DType
from tilevm.errors import CompilationError
from tilevm.ir import (
    AllocRegister,
    AllocShared,
    AtomicGlobal,
    AtomicScalar,
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
    "atomic_add_scalar",
    "atomic_exchange_scalar",
    "atomic_max",
    "atomic_max_scalar",
    "atomic_min",
    "atomic_min_scalar",
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


def _scalar_atomic(op: str):
    builtin = f"atomic_{op}_scalar"

    def atomic(tensor: Expr, *indices_and_value: object) -> Expr:
        tensor = tile_or_global(tensor, builtin, (GlobalType,))
        rank = tensor.type.rank
        if len(indices_and_value) != rank + 1:
            raise CompilationError(
                f"{builtin} of a rank-{rank} tensor takes {rank} indices (one per dimension) then the value: "
                f"{rank + 1} arguments after the tensor, got {len(indices_and_value)}"
            )
        *indices, value = indices_and_value
        return emit_output(
            builtin,
            AtomicScalar,
            op=op,
            tensor=tensor,
            indices=offsets_argument(indices, f"{builtin}'s index"),
            value=literal_like(value, constant(0, tensor.type.dtype)),
        )

    atomic.__name__ = atomic.__qualname__ = builtin
    new = "value" if op == "exchange" else f"{op}(old, value)"
    atomic.__doc__ = f"""``old = tensor[indices]``, replaced by ``{new}`` atomically, once for the whole
    block; every thread gets ``old`` (a runtime scalar of the tensor's dtype, the same in every thread:
    usable in ``if``). ``tv.{builtin}(tensor, *indices, value)``: one integer index per dimension, then the
    value (a Python int, or a scalar of the tensor's dtype, which is int32, uint32, int64 or uint64).

    It is an acquire-release point for the block at GPU scope: every memory access of any thread of the
    block before it happens before it, and it happens before every access of any thread of the block after
    it. So a block that reads a counter's last ticket sees everything the blocks that drew the earlier
    tickets wrote before drawing theirs. An index outside the tensor is an error when the kernel runs.
    """
    return atomic


atomic_add_scalar, atomic_max_scalar, atomic_min_scalar, atomic_exchange_scalar = (
    _scalar_atomic("add"),
    _scalar_atomic("max"),
    _scalar_atomic("min"),
    _scalar_atomic("exchange"),
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
