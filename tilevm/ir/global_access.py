"""Tile IR instructions that access global memory: views of global tensors, loads, stores, atomics, scalar
loads and block-uniform scalar atomics, and the window checks that shared tiles and async copies share.

Global accesses take a tile at ``offsets`` (one per global dimension); ``dims`` names the global dimensions
that the tile's dimensions run along, in order, and the other global dimensions are fixed at their offset.
Elements outside the global tensor are never touched: loads read ``other`` (zero when unset) there, stores
and atomics skip them.
"""

from __future__ import annotations

from dataclasses import dataclass

from tilevm.dtypes import int32, int64, uint32, uint64
from tilevm.ir.expr import Expr, Var, expect_choice
from tilevm.ir.inst import Instruction, IRTypeError, expect_global, expect_scalar, expect_tile
from tilevm.ir.types import GlobalType, PointerType, ScalarType, Scope, TileType

__all__ = [
    "AtomicGlobal",
    "AtomicScalar",
    "GlobalView",
    "LoadGlobal",
    "LoadScalar",
    "StoreGlobal",
]


ATOMIC_OPS = ("add", "max", "min")
#: the operations of ``atomic_scalar`` (``exchange`` stores the value)
SCALAR_ATOMIC_OPS = ("add", "max", "min", "exchange")
#: the dtypes ``atomic_scalar`` acts on: the integers of PTX's ``atom`` on global memory
SCALAR_ATOMIC_DTYPES = (int32, uint32, int64, uint64)


def check_window(
    tensor: GlobalType | TileType,
    offsets: tuple[Expr, ...],
    dims: tuple[int, ...],
    tile_shape: tuple[int, ...],
) -> None:
    """Offsets index every dimension of ``tensor``; ``dims`` picks distinct dimensions, one per tile dim."""
    if len(offsets) != tensor.rank:
        raise IRTypeError(f"expected {tensor.rank} offsets (one per dimension), got {len(offsets)}")
    for position, offset in enumerate(offsets):
        expect_scalar(offset, f"offset {position}", integer=True)
    if len(dims) != len(tile_shape):
        raise IRTypeError(f"dims {list(dims)} must name one dimension per tile dimension ({len(tile_shape)})")
    if len(set(dims)) != len(dims) or any(not 0 <= dim < tensor.rank for dim in dims):
        raise IRTypeError(f"dims {list(dims)} must be distinct dimensions of a rank-{tensor.rank} tensor")
    if list(dims) != sorted(dims):
        raise IRTypeError(
            f"dims {list(dims)} must be increasing; give them in increasing order and reorder the tile's "
            f"dims with tv.permute(tile, dims) (or tile.T)"
        )


def check_extents(shape: tuple[int, ...]) -> None:
    if not shape or any(not isinstance(extent, int) or extent <= 0 for extent in shape):
        raise IRTypeError(f"a tile shape must be a non-empty list of positive ints, got {list(shape)}")


@dataclass(frozen=True, eq=False, kw_only=True)
class GlobalView(Instruction):
    """A strided view of ``pointer``'s memory with (possibly runtime) sizes and strides in elements."""

    output: Var
    pointer: Expr
    shape: tuple[Expr, ...]
    strides: tuple[Expr, ...]
    opname = "global_view"

    def result_type(self) -> GlobalType:
        pointer_type = self.pointer.type
        if not isinstance(pointer_type, PointerType):
            raise IRTypeError(f"global_view needs a pointer, got {pointer_type}")
        if len(self.shape) != len(self.strides) or not self.shape:
            raise IRTypeError("global_view needs as many strides as sizes, and at least one of each")
        for position, extent in enumerate((*self.shape, *self.strides)):
            expect_scalar(extent, f"size or stride {position}", integer=True)
        return GlobalType(pointer_type.dtype, self.shape, self.strides)


@dataclass(frozen=True, eq=False, kw_only=True)
class LoadGlobal(Instruction):
    output: Var
    tensor: Expr
    offsets: tuple[Expr, ...]
    shape: tuple[int, ...]
    dims: tuple[int, ...]
    other: Expr | None = None
    opname = "load_global"

    def result_type(self) -> TileType:
        source = expect_global(self.tensor, "load_global's tensor")
        check_extents(self.shape)
        check_window(source, self.offsets, self.dims, self.shape)
        if self.other is not None and expect_scalar(self.other, "other").dtype != source.dtype:
            raise IRTypeError(f"other has dtype {self.other.type}, the tensor has {source.dtype}")
        return TileType(source.dtype, self.shape, Scope.REGISTER)


def check_global_write(
    tensor: Expr, value: Expr, offsets: tuple[Expr, ...], dims: tuple[int, ...], what: str
) -> None:
    target = expect_global(tensor, f"{what}'s tensor")
    tile = expect_tile(value, f"{what}'s value", Scope.REGISTER)
    check_window(target, offsets, dims, tile.shape)
    if tile.dtype != target.dtype:
        raise IRTypeError(f"{what} of a {tile.dtype} tile into a {target.dtype} tensor; cast it first")


@dataclass(frozen=True, eq=False, kw_only=True)
class StoreGlobal(Instruction):
    tensor: Expr
    value: Expr
    offsets: tuple[Expr, ...]
    dims: tuple[int, ...]
    opname = "store_global"

    def result_type(self) -> None:
        check_global_write(self.tensor, self.value, self.offsets, self.dims, "store_global")


@dataclass(frozen=True, eq=False, kw_only=True)
class AtomicGlobal(Instruction):
    """``tensor[window] = op(tensor[window], value)`` element by element, atomically."""

    op: str
    tensor: Expr
    value: Expr
    offsets: tuple[Expr, ...]
    dims: tuple[int, ...]
    opname = "atomic_global"

    def result_type(self) -> None:
        expect_choice(self.op, ATOMIC_OPS, "atomic op")
        check_global_write(self.tensor, self.value, self.offsets, self.dims, "atomic_global")


@dataclass(frozen=True, eq=False, kw_only=True)
class LoadScalar(Instruction):
    """``tensor[indices]``: one element of a global tensor as a scalar of its dtype, for the values a kernel
    steps by (a sequence's length, a block table's entry). An index outside the tensor is an error."""

    output: Var
    tensor: Expr
    indices: tuple[Expr, ...]
    opname = "load_scalar"

    def result_type(self) -> ScalarType:
        source = expect_global(self.tensor, "load_scalar's tensor")
        check_element(source, self.indices, "load_scalar")
        return ScalarType(source.dtype)


def check_element(source: GlobalType, indices: tuple[Expr, ...], what: str) -> None:
    """One integer scalar index per dimension of ``source``."""
    if len(indices) != source.rank:
        raise IRTypeError(f"{what} needs {source.rank} indices (one per dimension), got {len(indices)}")
    for position, index in enumerate(indices):
        expect_scalar(index, f"{what}'s index {position}", integer=True)


@dataclass(frozen=True, eq=False, kw_only=True)
class AtomicScalar(Instruction):
    """``output = tensor[indices]``, replaced by ``op(output, value)`` (``exchange``: by ``value``) in one
    indivisible step, done once for the whole block; every thread gets ``output``, the old value.

    It orders memory for the block as a whole, at GPU scope: every access of any thread of the block before
    it (in program order) happens before it, and it happens before every access of any thread of the block
    after it. So blocks can hand data to each other through it: each block writes its part, then takes a
    ticket (``add`` 1 to a counter); the block that draws the last ticket reads every part. Tile IR's control
    flow is on scalars, which are the same in every thread, so every thread of the block reaches it. The
    counter is an integer of 32 or 64 bits (``SCALAR_ATOMIC_DTYPES``); an index outside the tensor is an
    error."""

    output: Var
    op: str
    tensor: Expr
    indices: tuple[Expr, ...]
    value: Expr
    opname = "atomic_scalar"

    def result_type(self) -> ScalarType:
        expect_choice(self.op, SCALAR_ATOMIC_OPS, "scalar atomic op")
        target = expect_global(self.tensor, "atomic_scalar's tensor")
        if target.dtype not in SCALAR_ATOMIC_DTYPES:
            names = ", ".join(map(str, SCALAR_ATOMIC_DTYPES))
            raise IRTypeError(f"atomic_scalar acts on {names} tensors, got a {target.dtype} tensor")
        check_element(target, self.indices, "atomic_scalar")
        value = expect_scalar(self.value, "atomic_scalar's value")
        if value.dtype != target.dtype:
            raise IRTypeError(
                f"atomic_scalar of a {value.dtype} value into a {target.dtype} tensor; cast it first"
            )
        return ScalarType(target.dtype)
