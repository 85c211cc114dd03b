"""Building Tile IR programs instruction by instruction, checking each type rule as it goes (once: the
verifier checks the whole program again at the end, with the scoping rules a builder cannot see).

The DSL front end and the tests build programs through this class.

>>> from tilevm.dtypes import float32, int32
>>> from tilevm.ir import Const, GlobalView, LoadGlobal
>>> builder = ProgramBuilder("scale", num_threads=128)
>>> x = builder.pointer_param("x", float32, divisibility=16)
>>> n = builder.scalar_param("n", int32)
>>> view = builder.emit_output(GlobalView, "x_view", pointer=x, shape=(n,), strides=(Const(1),))
>>> tile = builder.emit_output(LoadGlobal, "tile", tensor=view, offsets=(Const(0),), shape=(128,), dims=(0,))
>>> builder.build().name
'scale'
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

from tilevm.dtypes import DType
from tilevm.errors import CompilationError, SourceLocation
from tilevm.ir.expr import Expr, Var
from tilevm.ir.inst import Instruction, IRTypeError
from tilevm.ir.program import Param, Program
from tilevm.ir.stmt import DeclareScalar, For, If, LetScalar, While
from tilevm.ir.types import PointerType, ScalarType, TileType, Type
from tilevm.layout import RegisterLayout, SharedLayout

__all__ = ["ProgramBuilder"]

# Stands in for the output while the type rule computes the output's type (rules do not read the output).
_PLACEHOLDER = Var("placeholder", None)  # type: ignore[arg-type]


class ProgramBuilder:
    """Collects parameters and instructions into a ``Program``; nested bodies through context managers."""

    def __init__(self, name: str, num_threads: int, max_registers: int | None = None) -> None:
        if num_threads <= 0 or num_threads % 32:
            raise ValueError(f"num_threads must be a positive multiple of 32, got {num_threads}")
        self.name = name
        self.num_threads = num_threads
        self.max_registers = max_registers
        self.params: list[Param] = []
        self.bodies: list[list[Instruction]] = [[]]
        self.location: SourceLocation | None = None

    # parameters

    def pointer_param(self, name: str, dtype: DType, divisibility: int = 1) -> Var:
        return self._param(Var(name, PointerType(dtype)), divisibility)

    def scalar_param(self, name: str, dtype: DType, divisibility: int = 1) -> Var:
        return self._param(Var(name, ScalarType(dtype)), divisibility)

    def _param(self, variable: Var, divisibility: int) -> Var:
        self.params.append(Param(variable, divisibility))
        return variable

    # instructions

    def emit(self, instruction: Instruction) -> Instruction:
        """Check the instruction's type rule and append it to the current body."""
        if instruction.loc is None and self.location is not None:
            instruction = dataclasses.replace(instruction, loc=self.location)
        try:
            instruction.result_type()
        except IRTypeError as error:
            raise CompilationError(str(error), instruction.loc) from None
        return self._append(instruction)

    def _append(self, instruction: Instruction) -> Instruction:
        """Check the layout rules of an instruction whose type rule holds, and append it."""
        try:
            instruction.check_layouts()
        except IRTypeError as error:
            raise CompilationError(str(error), instruction.loc) from None
        self.bodies[-1].append(instruction)
        return instruction

    def emit_output(
        self,
        kind: type[Instruction],
        name: str | None,
        layout: RegisterLayout | SharedLayout | None = None,
        **fields: object,
    ) -> Var:
        """Append an instruction of ``kind`` whose output is a new variable named ``name``; return it.

        Without a name, the output is named by what it computes: its ``op`` (``exp``, ``lt``) or the
        instruction's name (``cast``). The output's type is what the instruction's type rule gives, with
        ``layout`` when one is pinned.
        """
        if name is None:
            op = fields.get("op")
            name = op if isinstance(op, str) else kind.opname
        probe = kind(output=_PLACEHOLDER, loc=self.location, **fields)
        try:
            result_type = probe.result_type()
        except IRTypeError as error:
            raise CompilationError(str(error), self.location) from None
        if layout is not None:
            result_type = self._with_layout(result_type, layout)
        output = Var(name, result_type)
        self._append(dataclasses.replace(probe, output=output))  # the type rule ran once, on the probe
        return output

    def _with_layout(self, result_type: Type, layout: RegisterLayout | SharedLayout) -> Type:
        if not isinstance(result_type, TileType) or tuple(layout.shape) != result_type.shape:
            raise CompilationError(
                f"layout {layout} does not fit a value of type {result_type}", self.location
            )
        return result_type.with_layout(layout)

    def make_mutable(self, variable: Var) -> bool:
        """Turn the ``let`` that defines ``variable`` in the current body into a ``declare`` of the same
        variable, so that a loop or branch emitted after it may ``set`` it. False if no such ``let`` is in
        the current body (the caller then declares a copy)."""
        body = self.bodies[-1]
        for position in range(len(body) - 1, -1, -1):
            instruction = body[position]
            if isinstance(instruction, LetScalar) and instruction.output is variable:
                body[position] = DeclareScalar(output=variable, init=instruction.value, loc=instruction.loc)
                return True
        return False

    # control flow

    @contextlib.contextmanager
    def for_range(
        self, name: str, start: Expr, stop: Expr, step: Expr, unroll: int | None = None
    ) -> Iterator[Var]:
        variable = Var(name, start.type)
        location = self.location
        body = yield from self._nested(variable)
        self.location = location
        self.emit(For(variable=variable, start=start, stop=stop, step=step, body=body, unroll=unroll))

    @contextlib.contextmanager
    def while_loop(self, condition: Expr) -> Iterator[None]:
        location = self.location
        body = yield from self._nested(None)
        self.location = location
        self.emit(While(condition=condition, body=body))

    @contextlib.contextmanager
    def if_then(self, condition: Expr) -> Iterator[None]:
        location = self.location
        body = yield from self._nested(None)
        self.location = location
        self.emit(If(condition=condition, then_body=body))

    @contextlib.contextmanager
    def otherwise(self) -> Iterator[None]:
        """The else branch of the ``If`` just emitted."""
        current = self.bodies[-1]
        if not current or not isinstance(current[-1], If) or current[-1].else_body:
            raise CompilationError("an else branch must follow an if", self.location)
        body = yield from self._nested(None)
        current[-1] = dataclasses.replace(current[-1], else_body=body)

    def _nested(self, value: object) -> Iterator[object]:
        self.bodies.append([])
        try:
            yield value
        finally:
            body = tuple(self.bodies.pop())
        return body

    def build(self) -> Program:
        if len(self.bodies) != 1:
            raise RuntimeError("build() called inside an open loop or branch")
        params, body = tuple(self.params), tuple(self.bodies[0])
        return Program(self.name, params, self.num_threads, body, max_registers=self.max_registers)
