"""Tile IR instructions that reduce register tiles: reduce over a dim, and dot.

Layout rules (see ``tilevm.ir.elementwise`` for how they are checked):

- reduce: the result has the operand's layout reduced over the dim;
- dot: a, b and the accumulator fit an atom (``tilevm.layout.dot_atom``), the result has the accumulator's;
- dot_shared: the accumulator and the result have the same layout (the lowering reads it as
  ``tilevm.layout.warpgroup.warpgroup_accumulator``, which layout inference gives it).
"""

from __future__ import annotations

from dataclasses import dataclass

from tilevm.dtypes import DType, bfloat16, float16, float32
from tilevm.ir.accumulators import holds_every_value, reduce_dtype
from tilevm.ir.elementwise import check_same_layout, layout_of, register_result
from tilevm.ir.expr import Expr, Var, expect_choice
from tilevm.ir.inst import Instruction, IRTypeError, expect_tile
from tilevm.ir.types import Scope, TileType
from tilevm.layout import dot_atom, local

__all__ = [
    "Dot",
    "DotWait",
    "REDUCE_OPS",
    "Reduce",
    "SHARED_DOT_DTYPES",
    "SharedDot",
]


REDUCE_OPS = ("sum", "max", "min")


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
        expect_choice(self.op, REDUCE_OPS, "reduction")
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
class Dot(Instruction):
    """``a @ b + accumulator`` for a [*B, m, k], b [*B, k, n], accumulator [*B, m, n]: for each index of the
    leading batch dims ``B`` (the same in all three, none for rank 2; nothing broadcasts), that index's
    matrices multiplied; products summed exactly, then rounded once to the accumulator's dtype per step of
    the hardware (the CPU executor rounds once).

    Layout rule: the three layouts fit one atom, an mma shape for the operands' dtype or one multiply-add
    per thread, with the batch dims spread alike in all three (``tilevm.layout.dot_atom`` says how), and the
    result has the accumulator's layout.
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
        shapes = f"a {list(a.shape)}, b {list(b.shape)}, accumulator {list(accumulator.shape)}"
        if a.rank < 2 or not a.rank == b.rank == accumulator.rank:
            raise IRTypeError(
                "dot needs tiles a [*B, m, k], b [*B, k, n] and accumulator [*B, m, n] of one rank, at least "
                f"2, with the same leading batch dims B; got {shapes}"
            )
        if not a.shape[:-2] == b.shape[:-2] == accumulator.shape[:-2]:
            raise IRTypeError(
                f"dot batch dims do not match (they do not broadcast): a {list(a.shape[:-2])}, "
                f"b {list(b.shape[:-2])}, accumulator {list(accumulator.shape[:-2])}"
            )
        (m, k), (k_b, n) = a.shape[-2:], b.shape[-2:]
        if k != k_b or accumulator.shape[-2:] != (m, n):
            raise IRTypeError(f"dot shapes do not match: {shapes}")
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
            k = self.a.type.shape[-1]
            batch = (1,) * (accumulator.rank - 2)
            fma_a = accumulator.reduce(-1) * local(*batch, 1, k)
            fma_b = local(*batch, k, 1) * accumulator.reduce(-2)
            raise IRTypeError(
                f"the layouts of a ({a}), b ({b}) and the accumulator ({accumulator}) fit no {dtype} "
                f"dot atom; one multiply-add per thread needs a {fma_a} and b {fma_b}"
            )


#: the operand dtypes of a dot from shared memory
SHARED_DOT_DTYPES = (float16, bfloat16)


@dataclass(frozen=True, eq=False, kw_only=True)
class SharedDot(Instruction):
    """``a @ b + accumulator`` with the operand ``b`` [k, n] read from shared memory, ``a`` [m, k] from
    shared memory or registers (float16 or bfloat16) and a float32 register accumulator [m, n]; m a
    multiple of 64, n of 8, k of 16: the shapes of the tensor cores' warpgroup instruction (``wgmma``,
    sm_90a), which the block's warpgroups run where the target has it and the shared operands lie in its
    canonical layouts (``tilevm.layout.warpgroup``); elsewhere the operands are read into registers and
    multiplied by ``mma.sync``. Products summed exactly, rounded to float32 per step of the hardware (the
    CPU executor rounds once). Every thread of the block must run it. An ``a`` in registers is in the
    warpgroups' operand layout (``warpgroup_operand_a``), which layout inference gives it.

    With ``wait`` false the dot is asynchronous: the block goes on while the tensor cores multiply, and
    until a ``dot_wait`` completes it, its result may only be the accumulator of further dots from shared
    memory (or be assigned to the variable that carries it through a loop), and its operands' shared memory
    may not be written. Where the dot runs through registers it is complete at once.
    """

    output: Var
    a: Expr
    b: Expr
    accumulator: Expr
    wait: bool = True
    opname = "dot_shared"

    def result_type(self) -> TileType:
        a = expect_tile(self.a, "dot_shared's a")
        b = expect_tile(self.b, "dot_shared's b", Scope.SHARED)
        accumulator = expect_tile(self.accumulator, "dot_shared's accumulator", Scope.REGISTER)
        shapes = f"a {list(a.shape)}, b {list(b.shape)}, accumulator {list(accumulator.shape)}"
        if not a.rank == b.rank == accumulator.rank == 2:
            raise IRTypeError(f"a dot from shared memory takes tiles [m, k], [k, n] and [m, n]; got {shapes}")
        (m, k), (k_b, n) = a.shape, b.shape
        if k != k_b or accumulator.shape != (m, n):
            raise IRTypeError(f"dot shapes do not match: {shapes}")
        if m % 64 or n % 8 or k % 16:
            raise IRTypeError(
                f"a dot from shared memory needs m a multiple of 64, n of 8 and k of 16 (the warpgroup "
                f"instruction's shapes); got {shapes}: read the operands with load_shared for other shapes"
            )
        if a.dtype != b.dtype or a.dtype not in SHARED_DOT_DTYPES:
            raise IRTypeError(
                "a dot from shared memory takes float16 or bfloat16 operands of one dtype, got "
                f"{a.dtype} and {b.dtype}"
            )
        if accumulator.dtype != float32:
            raise IRTypeError(f"a dot from shared memory accumulates in float32, got {accumulator.dtype}")
        return accumulator.with_layout(None)

    def check_layouts(self) -> None:
        check_same_layout(self.accumulator, self.output, "the accumulator", "the result")

    @property
    def a_in_registers(self) -> bool:
        """Whether ``a`` is a register tile (the tensor cores read it from the threads' registers)."""
        return self.a.type.scope == Scope.REGISTER


@dataclass(frozen=True, eq=False, kw_only=True)
class DotWait(Instruction):
    """Wait until at most the ``pending`` latest asynchronous dots from shared memory (``dot_shared`` with
    ``wait`` false) are still running: the results of the others may then be read and their operands'
    shared memory written (after a ``sync``, for other threads' writes)."""

    pending: int = 0
    opname = "dot_wait"

    def result_type(self) -> None:
        if self.pending < 0:
            raise IRTypeError(f"dot_wait's pending count is 0 or more, got {self.pending}")
