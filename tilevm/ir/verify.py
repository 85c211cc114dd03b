"""The verifier: every rule a Tile IR program must keep, checked in one walk, reported at the source line.

Rules: each instruction's type rule holds and its output has the type the rule gives; every variable is
defined before it is used and only where its definition is visible (a loop's or branch's values stay
inside it); a variable is defined once; ``set`` assigns only a variable that ``declare`` defined (a
``let``'s value, a parameter or a loop's counter never changes); layouts have their tile's shape, register
layouts spread over exactly the program's ``num_threads``, a shared layout gives distinct elements distinct
offsets; each instruction's layout rule holds between the layouts that are set
(``Instruction.check_layouts``); and a shared-memory plan keeps the rules of ``tilevm.ir.verify_shared``.
"""

from __future__ import annotations

import numpy as np

from tilevm.errors import CompilationError
from tilevm.ir.expr import Var
from tilevm.ir.inst import Instruction, IRTypeError, describe
from tilevm.ir.instruction_set import TILE_IR, InstructionSet
from tilevm.ir.program import Program
from tilevm.ir.rewrite import bodies, defined_variables, operands, walk_expressions
from tilevm.ir.stmt import AssignScalar, DeclareScalar
from tilevm.ir.types import Scope, TileType, Type
from tilevm.ir.verify_shared import check_shared_plan
from tilevm.layout import RegisterLayout, SharedLayout

__all__ = ["verify"]


def verify(program: Program, instruction_set: InstructionSet = TILE_IR) -> Program:
    """Raise ``CompilationError`` at the first broken rule; return the program unchanged otherwise.

    Every instruction and expression must be of ``instruction_set`` (Tile IR's, or Thread IR's
    ``tilevm.ir.thread.THREAD_IR``); the rules are the classes' own, so one walk serves every set.
    """
    _Verifier(program, instruction_set).check_body(
        program.body, {param.variable.uid for param in program.params}
    )
    check_shared_plan(program)
    return program


class _Verifier:
    def __init__(self, program: Program, instruction_set: InstructionSet) -> None:
        self.program = program
        self.instruction_set = instruction_set
        self.defined: set[int] = set()
        #: the variables that ``set`` may assign: those that ``declare`` defined
        self.declared: set[int] = set()

    def check_body(self, body: tuple[Instruction, ...], visible: set[int]) -> None:
        visible = set(visible)
        for instruction in body:
            try:
                self.check_instruction(instruction, visible)
            except IRTypeError as error:
                raise CompilationError(f"{instruction.opname}: {error}", instruction.loc) from None

    def check_instruction(self, instruction: Instruction, visible: set[int]) -> None:
        if type(instruction) not in self.instruction_set.instructions:
            raise IRTypeError(
                f"{type(instruction).__name__} is not an instruction of {self.instruction_set.name}"
            )
        self.check_uses(operands(instruction), visible)
        self.check_assignment(instruction)
        expected = instruction.result_type()
        outputs = _outputs(instruction)
        for output, output_type in zip(outputs, _expected_types(outputs, expected), strict=True):
            self.check_output(output, output_type)
        instruction.check_layouts()
        # An instruction's outputs are visible after it; a statement's other definitions (a loop's counter)
        # in its bodies only.
        inner = set(visible)
        for variable in defined_variables(instruction):
            self.define(variable)
            (visible if any(variable is output for output in outputs) else inner).add(variable.uid)
        for body in bodies(instruction):
            self.check_body(body, inner)

    def check_assignment(self, instruction: Instruction) -> None:
        if isinstance(instruction, DeclareScalar):
            self.declared.add(instruction.output.uid)
        elif isinstance(instruction, AssignScalar) and instruction.variable.uid not in self.declared:
            name = instruction.variable.name
            raise IRTypeError(f"{name} is not a declared variable; only a declare's variable can be set")

    def define(self, variable: Var) -> None:
        if variable.uid in self.defined:
            raise IRTypeError(f"variable {variable.name} is defined twice")
        self.defined.add(variable.uid)

    def check_output(self, output: Var, expected: Type) -> None:
        actual = output.type
        if isinstance(actual, TileType):
            self.check_layout(actual)
            actual = actual.with_layout(None)
        if actual != expected:
            raise IRTypeError(
                f"output {output.name} is a {describe(output.type)}, expected {describe(expected)}"
            )

    def check_layout(self, tile: TileType) -> None:
        if tile.layout is None:
            return
        expected_kind = RegisterLayout if tile.scope is Scope.REGISTER else SharedLayout
        if not isinstance(tile.layout, expected_kind):
            raise IRTypeError(
                f"a {tile.scope.value} tile needs a {expected_kind.__name__}, got {tile.layout}"
            )
        if tuple(tile.layout.shape) != tile.shape:
            raise IRTypeError(
                f"layout {tile.layout} has shape {list(tile.layout.shape)}, the tile {list(tile.shape)}"
            )
        if isinstance(tile.layout, RegisterLayout) and tile.layout.num_threads != self.program.num_threads:
            raise IRTypeError(
                f"layout {tile.layout} spreads over {tile.layout.num_threads} threads, "
                f"the kernel has {self.program.num_threads}"
            )
        if isinstance(tile.layout, SharedLayout):
            offsets = tile.layout.table()
            if np.unique(offsets).size != offsets.size:
                raise IRTypeError(f"shared layout {tile.layout} puts distinct elements at the same offset")

    def check_uses(self, node: object, visible: set[int]) -> None:
        """Every variable in ``node`` (expressions, or a type) and in the types of those variables (a global
        view's extents) is visible here, and every other expression keeps its type rule."""
        for expression in walk_expressions(node):
            if type(expression) not in self.instruction_set.expressions:
                name = type(expression).__name__
                raise IRTypeError(f"{name} is not an expression of {self.instruction_set.name}")
            if isinstance(expression, Var):
                if expression.uid not in visible:
                    raise IRTypeError(f"{expression.name} is used where it is not defined")
                self.check_uses(expression.type, visible)
            else:
                expression.result_type()


def _outputs(instruction: Instruction) -> tuple[Var, ...]:
    """The variables an instruction defines for the instructions after it: its ``output`` or ``outputs``."""
    if "outputs" in instruction.defined_fields:
        return instruction.outputs
    output = getattr(instruction, "output", None)
    return () if output is None else (output,)


def _expected_types(outputs: tuple[Var, ...], expected: Type | tuple[Type, ...] | None) -> tuple[Type, ...]:
    """The type rule's result, one type an output: an instruction with ``outputs`` gives a tuple of types."""
    types = expected if isinstance(expected, tuple) else () if expected is None else (expected,)
    if len(types) != len(outputs):
        raise IRTypeError(f"defines {len(outputs)} output(s), its type rule gives {len(types)}")
    return types
