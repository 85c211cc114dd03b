"""Tile IR instructions that compute elementwise on register tiles: unary, binary, where, cast and arange,
and the operand rules (broadcasting, layouts) that the other compute instructions share.

Elementwise operands broadcast as in numpy; a scalar operand broadcasts to every element. Operands must have
the same dtype (the DSL converts Python literals to the other operand's dtype; anything else needs a cast).

Each instruction states its layout rule in ``check_layouts``, beside its type rule; it is checked between
the layouts that are set (a layout present before layout inference is pinned; inference fills in the rest,
inserting ``convert_layout`` where pinned layouts disagree). No rule changes what a program computes: the
rules only say which layouts a lowering can implement without moving data.

- elementwise: each tile operand has the result's layout, reduced over the dims it is broadcast along
  (``tilevm.layout.broadcast_layout``);
- cast keeps the layout;
- arange: any layout.

``tilevm.ir.reductions`` holds reduce and dot, ``tilevm.ir.layout_ops`` permute, view, assign and
convert_layout.
"""

from __future__ import annotations

from dataclasses import dataclass

from tilevm.dtypes import DType, boolean
from tilevm.ir.expr import (
    ARITHMETIC_OPS,
    BITWISE_OPS,
    COMPARISON_OPS,
    ROUNDING_MODES,
    UNARY_OPS,
    Expr,
    Var,
    binary_result_dtype,
    check_operator,
    expect_choice,
)
from tilevm.ir.inst import Instruction, IRTypeError, broadcast_shapes, expect_tile
from tilevm.ir.types import ScalarType, Scope, TileType
from tilevm.layout import RegisterLayout, broadcast_layout

__all__ = [
    "Arange",
    "Binary",
    "Cast",
    "Unary",
    "Where",
]


def operand_shape_and_dtype(value: Expr, what: str) -> tuple[tuple[int, ...], DType]:
    value_type = value.type
    if isinstance(value_type, ScalarType):
        return (), value_type.dtype
    tile = expect_tile(value, what, Scope.REGISTER)
    return tile.shape, tile.dtype


def broadcast_operands(operands: dict[str, Expr]) -> tuple[tuple[int, ...], DType]:
    """The broadcast shape and the common dtype of elementwise operands (scalars or register tiles)."""
    shapes_and_dtypes = {name: operand_shape_and_dtype(value, name) for name, value in operands.items()}
    if all(not shape for shape, _ in shapes_and_dtypes.values()):
        raise IRTypeError("an elementwise instruction needs at least one tile operand")
    shape = broadcast_shapes(*(shape for shape, _ in shapes_and_dtypes.values()))
    operand_dtypes = {operand_dtype for _, operand_dtype in shapes_and_dtypes.values()}
    if len(operand_dtypes) != 1:
        names = ", ".join(f"{name}: {d}" for name, (_, d) in shapes_and_dtypes.items())
        raise IRTypeError(f"operands have different dtypes ({names}); cast one of them")
    return shape, operand_dtypes.pop()


def register_result(shape: tuple[int, ...], dtype: DType) -> TileType:
    return TileType(dtype, shape, Scope.REGISTER)


def layout_of(value: Expr) -> RegisterLayout | None:
    """The layout of a register tile, or None for a scalar or a tile whose layout is not set."""
    value_type = value.type
    return value_type.layout if isinstance(value_type, TileType) else None


def check_broadcast_layouts(output: Var, operands: dict[str, Expr]) -> None:
    """Each tile operand holds, in every slot, the element that the result's element in that slot reads."""
    result = layout_of(output)
    if result is None:
        return
    for name, operand in operands.items():
        layout = layout_of(operand)
        if layout is None:
            continue
        expected = broadcast_layout(result, operand.type.shape)
        if layout != expected:
            raise IRTypeError(
                f"{name} has layout {layout}, but with the result in {result} it must be {expected}"
            )


def check_same_layout(kept: Expr, keeping: Expr, kept_name: str, keeping_name: str) -> None:
    """``keeping`` has the layout of ``kept`` (when both are set)."""
    expected, actual = layout_of(kept), layout_of(keeping)
    if expected is not None and actual is not None and actual != expected:
        raise IRTypeError(
            f"{keeping_name} has layout {actual}, but must keep {kept_name}'s layout {expected}"
        )


@dataclass(frozen=True, eq=False, kw_only=True)
class Unary(Instruction):
    output: Var
    op: str
    operand: Expr
    opname = "unary"

    def result_type(self) -> TileType:
        expect_choice(self.op, UNARY_OPS, "unary op")
        shape, dtype = broadcast_operands({"operand": self.operand})
        check_operator(self.op, dtype)
        return register_result(shape, dtype)

    def check_layouts(self) -> None:
        check_broadcast_layouts(self.output, {"operand": self.operand})


@dataclass(frozen=True, eq=False, kw_only=True)
class Binary(Instruction):
    output: Var
    op: str
    lhs: Expr
    rhs: Expr
    opname = "binary"

    def result_type(self) -> TileType:
        if self.op not in (*ARITHMETIC_OPS, *BITWISE_OPS, *COMPARISON_OPS):
            raise IRTypeError(f"unknown binary op '{self.op}'")
        shape, dtype = broadcast_operands({"lhs": self.lhs, "rhs": self.rhs})
        check_operator(self.op, dtype)
        return register_result(shape, binary_result_dtype(self.op, dtype))

    def check_layouts(self) -> None:
        check_broadcast_layouts(self.output, {"lhs": self.lhs, "rhs": self.rhs})


@dataclass(frozen=True, eq=False, kw_only=True)
class Where(Instruction):
    """``on_true`` where ``condition`` holds, else ``on_false``; the three broadcast together."""

    output: Var
    condition: Expr
    on_true: Expr
    on_false: Expr
    opname = "where"

    def result_type(self) -> TileType:
        condition_shape, condition_dtype = operand_shape_and_dtype(self.condition, "condition")
        if condition_dtype != boolean:
            raise IRTypeError(f"where's condition must be bool, got {condition_dtype}")
        shape, dtype = broadcast_operands({"on_true": self.on_true, "on_false": self.on_false})
        return register_result(broadcast_shapes(condition_shape, shape), dtype)

    def check_layouts(self) -> None:
        operands = {"condition": self.condition, "on_true": self.on_true, "on_false": self.on_false}
        check_broadcast_layouts(self.output, operands)


@dataclass(frozen=True, eq=False, kw_only=True)
class Cast(Instruction):
    """Convert each element to ``dtype``, rounding by ``rounding``: "nearest" (ties to even) or "zero"
    (toward zero). The IR's rounding is always the one chosen; the DSL's ``tv.cast`` picks "zero" for float
    to integer (as torch's ``.to(torch.int8)`` truncates) and "nearest" for every other cast. By target:

    - ``int{n}``, n = 1..8, 16, 32, 64 (range ``[-2**(n-1), 2**(n-1) - 1]``; int1 holds -1 and 0): a float
      rounds, then saturates to the range (-inf gives the minimum, +inf the maximum) and NaN gives 0; an
      integer wraps around modulo ``2**n``; bool gives 0 or 1.
    - ``uint{n}``, n = 1..8, 16, 32, 64 (range ``[0, 2**n - 1]``): likewise; negative floats give 0.
    - ``bool``: ``x != 0`` whatever the rounding (NaN gives True).
    - a float format: rounds by ``rounding``; out of range, "nearest" gives inf where the format has one and
      every other case saturates to the largest finite value (``tilevm.dtypes.codec`` has the details).

    64-bit integers reach a float through float64, so those beyond ``2**53`` round twice.

    ``scale_exponent`` scales: the result is the value times ``2**scale_exponent``, rounded once to the
    float ``dtype``. It is for low-bit sources (integers and floats of 1 to 8 bits), whose scaled values a
    float32 holds exactly (``|scale_exponent| <= MAX_SCALE_EXPONENT``): a sequence that moves a small
    float's bits into a half and multiplies by a power of two takes the scale into that multiply, and a
    scale that cancels it leaves none (``tilevm.passes.lower.cast_packed``).

    >>> import numpy as np
    >>> from tilevm.dtypes import float32, int8
    >>> from tilevm.ir.semantics import cast
    >>> cast(np.array([2.5, -2.5, -0.7, 300.0, -1e9, np.nan]), float32, int8, "zero").tolist()
    [2, -2, 0, 127, -128, 0]
    """

    output: Var
    operand: Expr
    dtype: DType
    rounding: str = "nearest"
    scale_exponent: int = 0
    opname = "cast"

    def result_type(self) -> TileType:
        expect_choice(self.rounding, ROUNDING_MODES, "rounding")
        source = expect_tile(self.operand, "cast's operand", Scope.REGISTER)
        check_scale_exponent(self.scale_exponent, source.dtype, self.dtype)
        return register_result(source.shape, self.dtype)

    def check_layouts(self) -> None:
        check_same_layout(self.operand, self.output, "the operand", "the result")


#: the largest power of two a cast may scale by (``Cast.scale_exponent``): a low-bit value times it stays
#: exact in float32
MAX_SCALE_EXPONENT = 64


def check_scale_exponent(scale_exponent: int, source: DType, target: DType) -> None:
    """Raise unless a cast from ``source`` to ``target`` may scale by ``2**scale_exponent``."""
    if scale_exponent == 0:
        return
    low_bit = source.is_integer or (source.is_float and source.has_subnormals)
    if not low_bit or source.nbits > 8 or not target.is_float:
        raise IRTypeError(
            f"a cast scales low-bit integers and floats (1 to 8 bits, e8m0 aside) to a float, not {source} "
            f"to {target}"
        )
    if abs(scale_exponent) > MAX_SCALE_EXPONENT:
        raise IRTypeError(
            f"a cast scales by 2**-{MAX_SCALE_EXPONENT} to 2**{MAX_SCALE_EXPONENT}, not 2**{scale_exponent}"
        )


@dataclass(frozen=True, eq=False, kw_only=True)
class Arange(Instruction):
    """The register tile ``[size]`` holding ``0, 1, ..., size - 1`` in the integer ``dtype`` (an iota).

    Layout rule: any layout (each thread computes the indices of the elements it holds).
    """

    output: Var
    dtype: DType
    size: int
    opname = "arange"

    def result_type(self) -> TileType:
        if not self.dtype.is_integer:
            raise IRTypeError(f"arange needs an integer dtype, got {self.dtype}")
        if self.size <= 0:
            raise IRTypeError(f"arange needs a positive size, got {self.size}")
        if self.size - 1 > self.dtype.max_value:
            raise IRTypeError(
                f"arange({self.size}) reaches {self.size - 1}, which does not fit in {self.dtype} "
                f"(at most {self.dtype.max_value})"
            )
        return register_result((self.size,), self.dtype)
