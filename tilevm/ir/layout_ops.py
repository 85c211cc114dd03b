"""Tile IR instructions that rearrange register tiles: permute, view, assign and convert_layout.

Layout rules (see ``tilevm.ir.elementwise`` for how they are checked):

- permute: the result has the operand's layout permuted (``RegisterLayout.permute``);
- assign keeps the layout; view keeps each thread's bits (``tilevm.layout.view_layout``);
- convert_layout: any two layouts (the output's must be set).
"""

from __future__ import annotations

from dataclasses import dataclass

from tilevm.dtypes import DType
from tilevm.ir.elementwise import check_same_layout, layout_of, register_result
from tilevm.ir.expr import Expr, Var
from tilevm.ir.inst import Instruction, IRTypeError, describe, expect_tile
from tilevm.ir.shared_tiles import check_permutation
from tilevm.ir.types import Scope, TileType
from tilevm.layout import bit_layout, view_layout

__all__ = [
    "AssignTensor",
    "ConvertLayout",
    "Permute",
    "View",
]


@dataclass(frozen=True, eq=False, kw_only=True)
class Permute(Instruction):
    """The register tile with its dims reordered as ``numpy.transpose``: result dim ``i`` is operand dim
    ``dims[i]``.

    Layout rule: the result has the operand's layout permuted (``RegisterLayout.permute``): every thread
    keeps its elements in the same slots, so a lowering moves no data.
    """

    output: Var
    operand: Expr
    dims: tuple[int, ...]
    opname = "permute"

    def result_type(self) -> TileType:
        source = expect_tile(self.operand, "permute's operand", Scope.REGISTER)
        check_permutation(self.dims, source.rank)
        return register_result(tuple(source.shape[dim] for dim in self.dims), source.dtype)

    def check_layouts(self) -> None:
        source, result = layout_of(self.operand), layout_of(self.output)
        if source is not None and result is not None and result != source.permute(self.dims):
            raise IRTypeError(
                f"the result has layout {result}, but {source} permuted by {list(self.dims)} is "
                f"{source.permute(self.dims)}"
            )


@dataclass(frozen=True, eq=False, kw_only=True)
class View(Instruction):
    """The tile's bits, in row-major order (element ``i`` of ``n`` bits is bits ``[i*n, (i+1)*n)``), read as
    a tile of another dtype and shape, whatever the layouts.

    Layout rule: each thread holds the same bits before and after (the stream of its local elements' bits,
    slot 0 lowest, covers the same row-major bit positions on both sides), so a lowering reinterprets each
    thread's registers and moves no data. ``tilevm.layout.view_layout`` gives the output layout that does.
    """

    output: Var
    operand: Expr
    dtype: DType
    shape: tuple[int, ...]
    opname = "view"

    def result_type(self) -> TileType:
        source = expect_tile(self.operand, "view's operand", Scope.REGISTER)
        source_bits, result_bits = source.size * source.dtype.nbits, self.dtype.nbits
        for extent in self.shape:
            result_bits *= extent
        if source_bits != result_bits:
            raise IRTypeError(
                f"view of {source.dtype}{list(source.shape)} ({source_bits} bits) as "
                f"{self.dtype}{list(self.shape)} ({result_bits} bits): the sizes in bits differ"
            )
        return TileType(self.dtype, self.shape, Scope.REGISTER)

    def check_layouts(self) -> None:
        source, result = layout_of(self.operand), layout_of(self.output)
        if source is None or result is None:
            return
        source_bits = self.operand.type.dtype.nbits
        if bit_layout(source, source_bits) != bit_layout(result, self.dtype.nbits):
            keeping = view_layout(source, source_bits, self.dtype.nbits, self.shape)
            hint = "no layout of the result does" if keeping is None else f"{keeping} would"
            raise IRTypeError(
                f"a view from {source} to {result} moves bits between threads or slots; {hint} keep them"
            )


@dataclass(frozen=True, eq=False, kw_only=True)
class AssignTensor(Instruction):
    """Overwrite an existing register tile (defined outside the current loop or branch) with ``value``."""

    destination: Var
    value: Expr
    opname = "assign"

    def result_type(self) -> None:
        target = expect_tile(self.destination, "assign's destination", Scope.REGISTER)
        value = expect_tile(self.value, "assign's value", Scope.REGISTER)
        if (target.dtype, target.shape) != (value.dtype, value.shape):
            raise IRTypeError(f"cannot assign a {describe(value)} to a {describe(target)}")

    def check_layouts(self) -> None:
        check_same_layout(self.destination, self.value, "the destination", "the value")


@dataclass(frozen=True, eq=False, kw_only=True)
class ConvertLayout(Instruction):
    """The same tile in the layout of ``output``'s type; every element keeps its value.

    It is how layout inference settles a conflict between layouts, and how a program asks for a layout.
    """

    output: Var
    operand: Expr
    opname = "convert_layout"

    def result_type(self) -> TileType:
        return expect_tile(self.operand, "convert_layout's operand", Scope.REGISTER).with_layout(None)

    def check_layouts(self) -> None:
        if layout_of(self.output) is None:
            raise IRTypeError(f"the output {self.output.name} needs a layout: the one to convert to")
