"""The base of Tile IR instructions and the shared checks of their type rules.

An instruction is a frozen dataclass compared by identity. Its fields are, in order: the output variable
(when it defines one), the operands, then attributes; the text form is derived from these fields, and so is
what it reads, nests and defines (``tilevm.ir.rewrite``: ``operands``, ``bodies``, ``defined_variables``), so
adding an instruction is adding a dataclass. Each instruction states its type rule in ``result_type``: the
type its output must have (without layout), or an ``IRTypeError`` saying why its operands do not fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from tilevm.errors import SourceLocation
from tilevm.ir.expr import Expr, IRTypeError
from tilevm.ir.types import GlobalType, ScalarType, Scope, TileType, Type

__all__ = ["IRTypeError", "Instruction", "broadcast_shapes", "expect_global", "expect_scalar", "expect_tile"]


@dataclass(frozen=True, eq=False, kw_only=True)
class Instruction:
    """Base class of every Tile IR instruction and statement."""

    loc: SourceLocation | None = None

    #: the instruction's name in the text form
    opname: ClassVar[str] = ""
    #: fields holding variables that this instruction defines (not reads)
    defined_fields: ClassVar[tuple[str, ...]] = ("output",)

    def result_type(self) -> Type | None:
        """The type of the output (layout left out), or None for an instruction with no output."""
        return None

    def check_layouts(self) -> None:
        """Rules on the layouts of operands and output, beyond the type rule (most instructions have none)."""


def expect_tile(value: Expr, what: str, scope: Scope | None = None) -> TileType:
    value_type = value.type
    if not isinstance(value_type, TileType):
        raise IRTypeError(f"{what} must be a tile, got {describe(value_type)}")
    if scope is not None and value_type.scope is not scope:
        raise IRTypeError(f"{what} must be a {scope.value} tile, got a {value_type.scope.value} tile")
    return value_type


def expect_global(value: Expr, what: str) -> GlobalType:
    value_type = value.type
    if not isinstance(value_type, GlobalType):
        raise IRTypeError(f"{what} must be a global tensor, got {describe(value_type)}")
    return value_type


def expect_scalar(value: Expr, what: str, integer: bool = False) -> ScalarType:
    value_type = value.type
    if not isinstance(value_type, ScalarType):
        raise IRTypeError(f"{what} must be a scalar, got {describe(value_type)}")
    if integer and not value_type.dtype.is_integer:
        raise IRTypeError(f"{what} must be an integer, got {value_type.dtype}")
    return value_type


def describe(value_type: Type) -> str:
    if isinstance(value_type, TileType):
        return f"{value_type.scope.value} tile {value_type.dtype}{list(value_type.shape)}"
    if isinstance(value_type, GlobalType):
        return f"global tensor {value_type.dtype} of rank {value_type.rank}"
    if isinstance(value_type, ScalarType):
        return f"scalar {value_type}"
    return str(value_type)  # a pointer or a vector: ptr<float16, shared>, vector<float16, 2>


def broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    """numpy's broadcasting rule: shapes are right-aligned, and extents must match or be 1."""
    rank = max(len(shape) for shape in shapes)
    padded = [(1,) * (rank - len(shape)) + tuple(shape) for shape in shapes]
    result = []
    for extents in zip(*padded):
        sizes = {extent for extent in extents if extent != 1}
        if len(sizes) > 1:
            raise IRTypeError(f"shapes {' and '.join(str(list(s)) for s in shapes)} do not broadcast")
        result.append(sizes.pop() if sizes else 1)
    return tuple(result)
