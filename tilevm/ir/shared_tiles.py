"""Tile IR instructions that create shared and register tiles and move data between shared memory and
registers: allocate, free, slice, permute, load and store.

**Where shared elements are.** Every shared tile has a placement layout ``L`` (a ``SharedLayout``) and a
runtime base ``B`` (elements): element ``c`` lies at element offset
``L.shifted_by(B).offset(c) == swizzle(B + L.origin + sum(c[d] * L.strides[d]))`` from the start of its
allocation (bit ``offset * nbits`` of it, sub-byte elements packed densely). An allocation has ``B = 0``
and is placed by its type's layout, or row-major when its type has none. A slice takes its parent's
placement through :meth:`SliceShared.slice_layout` (constant offsets move the layout's ``origin``) and
:meth:`SliceShared.base_offset` (the other offsets add to ``B``); its type carries the derived layout
exactly when its parent's type has one. The swizzle acts on the whole sum, so ``B`` must be added before
swizzling, not after (``tilevm.layout.shared`` says why).
"""

from __future__ import annotations

from dataclasses import dataclass

from tilevm.dtypes import DType, int32
from tilevm.ir.expr import BinaryExpr, CastExpr, Const, Expr, Var
from tilevm.ir.global_access import check_extents, check_window
from tilevm.ir.inst import Instruction, IRTypeError, expect_scalar, expect_tile
from tilevm.ir.types import Scope, TileType
from tilevm.layout import LayoutError, SharedLayout
from tilevm.layout.shared import permute_shared

__all__ = [
    "AllocRegister",
    "AllocShared",
    "FreeShared",
    "LoadShared",
    "PermuteShared",
    "SliceShared",
    "StoreShared",
]


@dataclass(frozen=True, eq=False, kw_only=True)
class AllocShared(Instruction):
    """A shared tile, placed by its layout (row-major when unset) at ``offset`` bytes when planned.

    ``offset`` counts bytes from the start of the block's dynamic shared memory; a program with planned
    offsets gives one to every allocation and its ``shared_bytes`` (``tilevm.ir.verify_shared`` states the
    rules a plan keeps).
    """

    output: Var
    dtype: DType
    shape: tuple[int, ...]
    offset: int | None = None
    opname = "alloc_shared"

    def result_type(self) -> TileType:
        check_extents(self.shape)
        return TileType(self.dtype, self.shape, Scope.SHARED)

    def check_layouts(self) -> None:
        layout = self.output.type.layout
        if layout is not None and layout.origin != 0:
            raise IRTypeError(f"an allocation's layout starts at its first element (origin 0), got {layout}")

    def placement(self) -> SharedLayout:
        """The layout the elements are placed by: the output type's, or row-major when it has none."""
        layout = self.output.type.layout
        return SharedLayout.row_major(*self.shape) if layout is None else layout

    def footprint_bytes(self) -> int:
        """The bytes the allocation spans: ``placement().size`` elements, densely packed."""
        return -(-self.placement().size * self.dtype.nbits // 8)


@dataclass(frozen=True, eq=False, kw_only=True)
class FreeShared(Instruction):
    tensor: Expr
    opname = "free_shared"

    def result_type(self) -> None:
        expect_tile(self.tensor, "free_shared's tensor", Scope.SHARED)


@dataclass(frozen=True, eq=False, kw_only=True)
class AllocRegister(Instruction):
    """A register tile, every element set to ``init`` when given (undefined otherwise)."""

    output: Var
    dtype: DType
    shape: tuple[int, ...]
    init: Expr | None = None
    opname = "alloc_register"

    def result_type(self) -> TileType:
        check_extents(self.shape)
        if self.init is not None and expect_scalar(self.init, "init").dtype != self.dtype:
            raise IRTypeError(f"init has dtype {self.init.type}, the tile has {self.dtype}")
        return TileType(self.dtype, self.shape, Scope.REGISTER)


@dataclass(frozen=True, eq=False, kw_only=True)
class SliceShared(Instruction):
    """A view of part of a shared tile: the window at ``offsets`` of ``shape`` along ``dims``.

    Element ``c`` of the slice is element ``offsets + c`` (``c`` placed along ``dims``) of the tensor, at
    the same place in memory (see the module docstring): with the tensor placed by ``L`` at base ``B``, the
    slice is placed by ``slice_layout(L)`` at base ``base_offset(L, B)``. A constant offset goes into the
    layout's origin, any other offset into the runtime base, so the slice of a swizzled tile at
    ``[0, 16 * k]`` has the layout of the window at ``[0, 0]`` and base ``16 * k``, added before swizzling.
    """

    output: Var
    tensor: Expr
    offsets: tuple[Expr, ...]
    shape: tuple[int, ...]
    dims: tuple[int, ...]
    opname = "slice_shared"

    def result_type(self) -> TileType:
        source = expect_tile(self.tensor, "slice_shared's tensor", Scope.SHARED)
        check_extents(self.shape)
        check_window(source, self.offsets, self.dims, self.shape)
        extents = dict(zip(self.dims, self.shape))
        for dim, (offset, size) in enumerate(zip(self.offsets, source.shape)):
            extent = extents.get(dim, 1)
            if extent > size:
                raise IRTypeError(f"slice extent {extent} exceeds dimension {dim} of size {size}")
            if isinstance(offset, Const) and not 0 <= offset.value <= size - extent:
                raise IRTypeError(
                    f"slice offset {offset.value} with extent {extent} is outside dimension {dim} "
                    f"of size {size}"
                )
        return TileType(source.dtype, self.shape, Scope.SHARED)

    def check_layouts(self) -> None:
        parent = self.tensor.type.layout
        expected = None if parent is None else self.slice_layout(parent)
        actual = self.output.type.layout
        if actual == expected:
            return
        if parent is None:
            raise IRTypeError(f"a slice of a tensor without a layout has none, got {actual}")
        raise IRTypeError(f"the slice's layout must be {expected}, the window of {parent}; got {actual}")

    def slice_layout(self, parent: SharedLayout) -> SharedLayout:
        """The slice's layout when the tensor is placed by ``parent``: the window at the constant offsets,
        at 0 along the others (whose part is in ``base_offset``)."""
        static = tuple(offset.value if isinstance(offset, Const) else 0 for offset in self.offsets)
        try:
            return parent.slice(static, self.shape, self.dims)
        except LayoutError as error:
            raise IRTypeError(str(error)) from None

    def base_offset(self, parent: SharedLayout, parent_base: Expr) -> Expr:
        """The slice's runtime base (int32 elements) when the tensor is placed by ``parent`` at
        ``parent_base``: ``parent_base`` plus each non-constant offset times its dimension's stride.

        Nested slices compose: pass a slice's ``base_offset`` as ``parent_base`` of a slice of it.

        >>> from tilevm.ir.types import ScalarType
        >>> k = Var("k", ScalarType(int32))
        >>> tile = Var("tile", TileType(int32, (32, 64), Scope.SHARED))
        >>> column = BinaryExpr("mul", k, Const(16))
        >>> part = Var("part", TileType(int32, (32, 16), Scope.SHARED))
        >>> origin = (Const(0), column)
        >>> window = SliceShared(output=part, tensor=tile, offsets=origin, shape=(32, 16), dims=(0, 1))
        >>> window.base_offset(SharedLayout.row_major(32, 64), Const(0)) is column  # 16 * k
        True
        >>> nested = window.base_offset(SharedLayout.column_major(32, 64), k)  # k + (16 * k) * 32
        >>> nested == BinaryExpr("add", k, BinaryExpr("mul", column, Const(32)))
        True
        """
        terms = [] if parent_base == Const(0) else [parent_base]
        for offset, stride in zip(self.offsets, parent.strides):
            if isinstance(offset, Const) or stride == 0:
                continue
            term = offset if offset.type.dtype == int32 else CastExpr(offset, int32)
            terms.append(term if stride == 1 else BinaryExpr("mul", term, Const(stride)))
        if not terms:
            return Const(0)
        total = terms[0]
        for term in terms[1:]:
            total = BinaryExpr("add", total, term)
        return total


@dataclass(frozen=True, eq=False, kw_only=True)
class LoadShared(Instruction):
    output: Var
    tensor: Expr
    opname = "load_shared"

    def result_type(self) -> TileType:
        source = expect_tile(self.tensor, "load_shared's tensor", Scope.SHARED)
        return TileType(source.dtype, source.shape, Scope.REGISTER)


@dataclass(frozen=True, eq=False, kw_only=True)
class StoreShared(Instruction):
    tensor: Expr
    value: Expr
    opname = "store_shared"

    def result_type(self) -> None:
        target = expect_tile(self.tensor, "store_shared's tensor", Scope.SHARED)
        tile = expect_tile(self.value, "store_shared's value", Scope.REGISTER)
        if (tile.dtype, tile.shape) != (target.dtype, target.shape):
            raise IRTypeError(
                f"store_shared of a {tile.dtype}{list(tile.shape)} tile into a "
                f"{target.dtype}{list(target.shape)} shared tensor"
            )


def check_permutation(dims: tuple[int, ...], rank: int) -> None:
    """``dims`` names each dimension of a rank-``rank`` tile once."""
    if sorted(dims) != list(range(rank)):
        raise IRTypeError(f"dims {list(dims)} must name each dimension of a rank-{rank} tile once")


@dataclass(frozen=True, eq=False, kw_only=True)
class PermuteShared(Instruction):
    """A view of a shared tile with its dims reordered as ``numpy.transpose`` (result dim ``i`` is dim
    ``dims[i]`` of ``tensor``): the same memory, so writes through either are seen by both.

    Placement: the tensor's layout with its dims permuted, strides with them
    (``tilevm.layout.shared.permute_shared``), and the tensor's base: every element keeps its place. The
    result's type carries that layout exactly when the tensor's type has one, as a slice's does.
    """

    output: Var
    tensor: Expr
    dims: tuple[int, ...]
    opname = "permute_shared"

    def result_type(self) -> TileType:
        source = expect_tile(self.tensor, "permute_shared's tensor", Scope.SHARED)
        check_permutation(self.dims, source.rank)
        return TileType(source.dtype, tuple(source.shape[dim] for dim in self.dims), Scope.SHARED)

    def check_layouts(self) -> None:
        parent, actual = self.tensor.type.layout, self.output.type.layout
        expected = None if parent is None else permute_shared(parent, self.dims)
        if actual == expected:
            return
        if parent is None:
            raise IRTypeError(f"a permuted view of a tensor without a layout has none, got {actual}")
        raise IRTypeError(
            f"the result has layout {actual}, but {parent} permuted by {list(self.dims)} is {expected}"
        )
