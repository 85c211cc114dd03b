"""Tile IR instructions that compute on register tiles: elementwise, reductions, dot, casts and views.

Elementwise operands broadcast as in numpy; a scalar operand broadcasts to every element. Operands must have
the same dtype (the DSL converts Python literals to the other operand's dtype; anything else needs a cast).
"""

from __future__ import annotations

from dataclasses import dataclass

from tilevm.dtypes import DType, boolean
from tilevm.ir.expr import ARITHMETIC_OPS, BITWISE_OPS, COMPARISON_OPS, UNARY_OPS, Expr, Var, operator_error
from tilevm.ir.inst import (
    Instruction,
    IRTypeError,
    broadcast_shapes,
    describe,
    expect_tile,
)
from tilevm.ir.types import ScalarType, Scope, TileType
from tilevm.layout import RegisterLayout

__all__ = [
    "AnnotateLayout",
    "AssignTensor",
    "Binary",
    "Cast",
    "Dot",
    "REDUCE_OPS",
    "ROUNDING_MODES",
    "Reduce",
    "Unary",
    "View",
    "Where",
]

REDUCE_OPS = ("sum", "max", "min")
ROUNDING_MODES = ("nearest", "zero")


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


@dataclass(frozen=True, eq=False, kw_only=True)
class Unary(Instruction):
    output: Var
    op: str
    operand: Expr
    opname = "unary"

    def result_type(self) -> TileType:
        if self.op not in UNARY_OPS:
            raise IRTypeError(f"unknown unary op '{self.op}'; expected one of {', '.join(UNARY_OPS)}")
        shape, dtype = broadcast_operands({"operand": self.operand})
        reason = operator_error(self.op, dtype)
        if reason:
            raise IRTypeError(reason)
        return register_result(shape, dtype)


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
        reason = None if self.op in COMPARISON_OPS else operator_error(self.op, dtype)
        if reason:
            raise IRTypeError(reason)
        return register_result(shape, boolean if self.op in COMPARISON_OPS else dtype)


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


@dataclass(frozen=True, eq=False, kw_only=True)
class Reduce(Instruction):
    output: Var
    operand: Expr
    op: str
    dim: int
    keepdim: bool = False
    opname = "reduce"

    def result_type(self) -> TileType:
        if self.op not in REDUCE_OPS:
            raise IRTypeError(f"unknown reduction '{self.op}'; expected one of {', '.join(REDUCE_OPS)}")
        source = expect_tile(self.operand, "reduce's operand", Scope.REGISTER)
        if not 0 <= self.dim < source.rank:
            raise IRTypeError(f"reduce over dim {self.dim} of a rank-{source.rank} tile")
        shape = list(source.shape)
        if self.keepdim or source.rank == 1:
            shape[self.dim] = 1
        else:
            del shape[self.dim]
        return register_result(tuple(shape), source.dtype)


@dataclass(frozen=True, eq=False, kw_only=True)
class Dot(Instruction):
    """``a @ b + accumulator`` for a [m, k], b [k, n], accumulator [m, n]; products summed exactly, then
    rounded once to the accumulator's dtype per step of the hardware (the CPU executor rounds once)."""

    output: Var
    a: Expr
    b: Expr
    accumulator: Expr
    opname = "dot"

    def result_type(self) -> TileType:
        a = expect_tile(self.a, "dot's a", Scope.REGISTER)
        b = expect_tile(self.b, "dot's b", Scope.REGISTER)
        accumulator = expect_tile(self.accumulator, "dot's accumulator", Scope.REGISTER)
        if not a.rank == b.rank == accumulator.rank == 2:
            raise IRTypeError("dot needs rank-2 tiles a [m, k], b [k, n] and accumulator [m, n]")
        (m, k), (k_b, n) = a.shape, b.shape
        if k != k_b or accumulator.shape != (m, n):
            raise IRTypeError(
                f"dot shapes do not match: a {list(a.shape)}, b {list(b.shape)}, "
                f"accumulator {list(accumulator.shape)}"
            )
        if a.dtype != b.dtype:
            raise IRTypeError(f"dot operands have different dtypes ({a.dtype} and {b.dtype}); cast one")
        if a.dtype.kind == "bool":
            raise IRTypeError("dot of bool tiles; cast them to an integer or float dtype")
        if a.dtype.is_float != accumulator.dtype.is_float:
            raise IRTypeError(f"dot of {a.dtype} operands cannot accumulate into {accumulator.dtype}")
        return accumulator.with_layout(None)


@dataclass(frozen=True, eq=False, kw_only=True)
class Cast(Instruction):
    """Convert each element to ``dtype``: floats round by ``rounding`` and saturate where the target has no
    infinity; float to integer rounds likewise and saturates (NaN gives 0); integer to integer wraps."""

    output: Var
    operand: Expr
    dtype: DType
    rounding: str = "nearest"
    opname = "cast"

    def result_type(self) -> TileType:
        if self.rounding not in ROUNDING_MODES:
            raise IRTypeError(
                f"unknown rounding '{self.rounding}'; expected one of {', '.join(ROUNDING_MODES)}"
            )
        source = expect_tile(self.operand, "cast's operand", Scope.REGISTER)
        return register_result(source.shape, self.dtype)


@dataclass(frozen=True, eq=False, kw_only=True)
class View(Instruction):
    """The same bits read as another dtype and shape, without moving data.

    With layouts, each thread's local elements are concatenated (local slot 0 in the lowest bits) and re-read
    as its local elements of the output; without, the tile's bits are read in row-major order.
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
        source, result = self.operand.type, self.output.type
        layouts = (source.layout, result.layout)
        if layouts.count(None) == 1:
            raise IRTypeError("a view needs the layouts of both sides or of neither")
        if source.layout is None:
            return
        source_bits = source.layout.local_size * source.dtype.nbits
        result_bits = result.layout.local_size * result.dtype.nbits
        if source.layout.num_threads != result.layout.num_threads or source_bits != result_bits:
            raise IRTypeError(
                f"view layouts do not match: each thread holds {source_bits} bits before "
                f"and {result_bits} after"
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


@dataclass(frozen=True, eq=False, kw_only=True)
class AnnotateLayout(Instruction):
    """Pin the layout of a register tile; layout inference keeps it."""

    tensor: Var
    layout: RegisterLayout
    opname = "annotate_layout"

    def result_type(self) -> None:
        tile = expect_tile(self.tensor, "annotate_layout's tensor", Scope.REGISTER)
        if tuple(self.layout.shape) != tile.shape:
            raise IRTypeError(
                f"layout {self.layout} has shape {list(self.layout.shape)}, the tile {list(tile.shape)}"
            )
