"""Tile IR instructions that compute on register tiles: elementwise, reductions, dot, casts, views and layout
conversions.

Elementwise operands broadcast as in numpy; a scalar operand broadcasts to every element. Operands must have
the same dtype (the DSL converts Python literals to the other operand's dtype; anything else needs a cast).

Each instruction states its layout rule in ``check_layouts``, beside its type rule; it is checked between
the layouts that are set (a layout present before layout inference is pinned; inference fills in the rest,
inserting ``convert_layout`` where pinned layouts disagree). No rule changes what a program computes: the
rules only say which layouts a lowering can implement without moving data.

- elementwise: each tile operand has the result's layout, reduced over the dims it is broadcast along
  (``tilevm.layout.broadcast_layout``);
- reduce: the result has the operand's layout reduced over the dim;
- arange: any layout;
- permute: the result has the operand's layout permuted (``RegisterLayout.permute``);
- dot: a, b and the accumulator fit an atom (``tilevm.layout.dot_atom``), the result has the accumulator's;
- cast and assign keep the layout; view keeps each thread's bits (``tilevm.layout.view_layout``);
- convert_layout: any two layouts (the output's must be set).
"""

from __future__ import annotations

from dataclasses import dataclass

from tilevm.dtypes import DType, boolean
from tilevm.ir.accumulators import holds_every_value, reduce_dtype
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
)
from tilevm.ir.inst import (
    Instruction,
    IRTypeError,
    broadcast_shapes,
    describe,
    expect_tile,
)
from tilevm.ir.memory import check_permutation
from tilevm.ir.types import ScalarType, Scope, TileType
from tilevm.layout import RegisterLayout, bit_layout, broadcast_layout, dot_atom, local, view_layout

__all__ = [
    "Arange",
    "AssignTensor",
    "Binary",
    "Cast",
    "ConvertLayout",
    "Dot",
    "Permute",
    "REDUCE_OPS",
    "ROUNDING_MODES",
    "Reduce",
    "Unary",
    "View",
    "Where",
    "holds_every_value",
    "reduce_dtype",
]

REDUCE_OPS = ("sum", "max", "min")


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
        if self.op not in UNARY_OPS:
            raise IRTypeError(f"unknown unary op '{self.op}'; expected one of {', '.join(UNARY_OPS)}")
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
class Reduce(Instruction):
    """The ``op`` (sum, max or min) of the operand over ``dim``, computed in ``dtype``, the result's dtype.

    ``dtype`` holds every value of the operand's dtype (an integer dtype for integer and bool operands, a
    float dtype for floats; ``reduce_dtype`` gives the default the DSL picks): each element is converted to
    it exactly, then combined. Integer sums wrap modulo 2^n of ``dtype``, so they are exact in any order;
    ``max`` and ``min`` are exact in any order, and over floats they ignore NaN.

    Float sums: the order of the additions is unspecified, each one rounded to ``dtype``. A lowering adds
    each thread's local elements in sequence, then combines the threads in a butterfly tree: an order its
    layouts fix. Results may differ between orders by up to the bound of any float summation in ``dtype``,
    ``(n - 1) * eps * sum(|x|)`` (eps: ``dtype``'s unit roundoff, 2^-24 for float32). The reference
    executor, whose results must not depend on layouts, adds in float64 and rounds once to ``dtype``: the
    exact sum up to float64's far smaller error, rounded once, which is within that bound of every order.

    Layout rule: the result has the operand's layout reduced over the dim.
    """

    output: Var
    operand: Expr
    op: str
    dtype: DType
    dim: int
    keepdim: bool = False
    opname = "reduce"

    def result_type(self) -> TileType:
        if self.op not in REDUCE_OPS:
            raise IRTypeError(f"unknown reduction '{self.op}'; expected one of {', '.join(REDUCE_OPS)}")
        source = expect_tile(self.operand, "reduce's operand", Scope.REGISTER)
        if not 0 <= self.dim < source.rank:
            raise IRTypeError(f"reduce over dim {self.dim} of a rank-{source.rank} tile")
        if self.op == "sum" and self.dtype.kind == "bool":
            raise IRTypeError("a sum cannot be computed in bool (it would not count); use an integer dtype")
        if not holds_every_value(self.dtype, source.dtype):
            needed = "a float" if source.dtype.is_float else "an integer"
            raise IRTypeError(
                f"a {self.op} of {source.dtype} values cannot be computed in {self.dtype}: it needs {needed} "
                f"dtype that holds every {source.dtype} value, such as {reduce_dtype('sum', source.dtype)}"
            )
        shape = list(source.shape)
        if self.keepdim or source.rank == 1:
            shape[self.dim] = 1
        else:
            del shape[self.dim]
        return register_result(tuple(shape), self.dtype)

    def check_layouts(self) -> None:
        source, result = layout_of(self.operand), layout_of(self.output)
        if source is None or result is None:
            return
        expected = source.reduce(self.dim, keepdim=self.keepdim or self.operand.type.rank == 1)
        if result != expected:
            raise IRTypeError(
                f"the result has layout {result}, but {source} reduced over dim {self.dim} is {expected}"
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
class Dot(Instruction):
    """``a @ b + accumulator`` for a [m, k], b [k, n], accumulator [m, n]; products summed exactly, then
    rounded once to the accumulator's dtype per step of the hardware (the CPU executor rounds once).

    Layout rule: the three layouts fit one atom, an mma shape for the operands' dtype or one multiply-add
    per thread (``tilevm.layout.dot_atom`` says how), and the result has the accumulator's layout.
    """

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

    def check_layouts(self) -> None:
        check_same_layout(self.accumulator, self.output, "the accumulator", "the result")
        a, b = layout_of(self.a), layout_of(self.b)
        accumulator = layout_of(self.accumulator) or layout_of(self.output)
        if a is None or b is None or accumulator is None:
            return
        dtype = self.a.type.dtype
        if dot_atom(a, b, accumulator, dtype) is None:
            k = self.a.type.shape[1]
            raise IRTypeError(
                f"the layouts of a ({a}), b ({b}) and the accumulator ({accumulator}) fit no {dtype} "
                f"dot atom; one multiply-add per thread needs a {accumulator.reduce(1) * local(1, k)} and "
                f"b {local(k, 1) * accumulator.reduce(0)}"
            )


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
    opname = "cast"

    def result_type(self) -> TileType:
        if self.rounding not in ROUNDING_MODES:
            raise IRTypeError(
                f"unknown rounding '{self.rounding}'; expected one of {', '.join(ROUNDING_MODES)}"
            )
        source = expect_tile(self.operand, "cast's operand", Scope.REGISTER)
        return register_result(source.shape, self.dtype)

    def check_layouts(self) -> None:
        check_same_layout(self.operand, self.output, "the operand", "the result")


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
