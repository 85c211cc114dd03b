"""Structured control flow and scalar variables of Tile IR.

A body is a tuple of instructions. A scalar that never changes is bound once by ``let`` (SSA: its value is
the one expression that defines it, so analyses need no reaching definitions); a scalar that changes inside a
loop or a branch is declared before it and assigned in it; tiles do the same through ``AssignTensor``.

Thread IR (``tilevm.ir.thread``) reuses these statements unchanged, run by each thread on its own values:
``let``, ``declare`` and ``set`` hold any register value there (a scalar, a short vector or a pointer), and
``if``/``while`` conditions may differ between threads.
"""

from __future__ import annotations

from dataclasses import dataclass

from tilevm.ir.expr import Expr, Var
from tilevm.ir.inst import Instruction, IRTypeError, describe, expect_scalar
from tilevm.ir.types import PointerType, ScalarType, VectorType

__all__ = ["AssignScalar", "Body", "DeclareScalar", "For", "If", "LetScalar", "While"]

Body = tuple[Instruction, ...]


def expect_register(value: Expr, what: str) -> ScalarType | VectorType | PointerType:
    """A value a register holds: a scalar, or (in Thread IR) a short vector or a pointer."""
    value_type = value.type
    if not isinstance(value_type, (ScalarType, VectorType, PointerType)):
        raise IRTypeError(f"{what} must be a scalar, got {describe(value_type)}")
    return value_type


def expect_condition(condition: Expr, what: str) -> None:
    if not expect_scalar(condition, what).dtype.name == "bool":
        raise IRTypeError(f"{what} must be a bool scalar, got {condition.type}")


@dataclass(frozen=True, eq=False, kw_only=True)
class LetScalar(Instruction):
    """An immutable scalar: ``output`` is ``value`` wherever it is visible (never the target of ``set``)."""

    output: Var
    value: Expr
    opname = "let"

    def result_type(self) -> ScalarType | VectorType | PointerType:
        return expect_register(self.value, "let's value")


@dataclass(frozen=True, eq=False, kw_only=True)
class DeclareScalar(Instruction):
    """A mutable scalar, starting at ``init``: the value that a loop or a branch changes with ``set``."""

    output: Var
    init: Expr
    opname = "declare"

    def result_type(self) -> ScalarType | VectorType | PointerType:
        return expect_register(self.init, "declare's init")


@dataclass(frozen=True, eq=False, kw_only=True)
class AssignScalar(Instruction):
    variable: Var
    value: Expr
    opname = "set"

    def result_type(self) -> None:
        target = expect_register(self.variable, "the assigned variable")
        if expect_register(self.value, "the assigned value") != target:
            raise IRTypeError(f"cannot assign a {self.value.type} value to {self.variable.name}: {target}")


@dataclass(frozen=True, eq=False, kw_only=True)
class For(Instruction):
    """``for variable in range(start, stop, step)``, with an optional unroll factor for code generation."""

    variable: Var
    start: Expr
    stop: Expr
    step: Expr
    body: Body
    unroll: int | None = None
    opname = "for"
    defined_fields = ("variable",)

    def result_type(self) -> None:
        for name in ("variable", "start", "stop", "step"):
            scalar = expect_scalar(getattr(self, name), f"the loop's {name}", integer=True)
            if scalar != self.variable.type:
                raise IRTypeError(f"the loop's {name} has type {scalar}, its variable {self.variable.type}")
        if self.unroll is not None and self.unroll < 1:
            raise IRTypeError(f"unroll must be a positive int, got {self.unroll}")


@dataclass(frozen=True, eq=False, kw_only=True)
class While(Instruction):
    condition: Expr
    body: Body
    opname = "while"

    def result_type(self) -> None:
        expect_condition(self.condition, "the while condition")


@dataclass(frozen=True, eq=False, kw_only=True)
class If(Instruction):
    condition: Expr
    then_body: Body
    else_body: Body = ()
    opname = "if"

    def result_type(self) -> None:
        expect_condition(self.condition, "the if condition")
