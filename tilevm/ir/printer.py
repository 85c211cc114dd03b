"""The text form of Tile IR (or of another instruction set): ``print_program`` writes it,
``tilevm.ir.parser.parse`` reads it back.

The header names the kernel, its parameters and the program's facts (``num_threads=128``, and ``target``,
``shared_bytes`` once set). One instruction a line; every output shows its full type; nested bodies are
indented inside braces; source locations are trailing ``# loc("file", line, column)`` comments. Variables
print as ``%name``, made unique by appending ``.1``, ``.2``, ... to clashing names. Constants show their
dtype only when it is not the default of their literal (int32, float32, bool): ``3``, ``-inf``, ``7:int64``,
``1.0:float16``.

>>> from tilevm.dtypes import float32, int32
>>> from tilevm.ir.builder import ProgramBuilder
>>> from tilevm.ir.expr import Const
>>> from tilevm.ir.shared_tiles import AllocRegister
>>> builder = ProgramBuilder("fill", num_threads=32)
>>> n = builder.scalar_param("n", int32, divisibility=4)
>>> tile = builder.emit_output(AllocRegister, "acc", dtype=float32, shape=(4, 8), init=Const(0.0, float32))
>>> print(print_program(builder.build()))
kernel fill(%n: int32 divisibility=4) num_threads=32 {
  %acc: register<float32, [4, 8]> = alloc_register(dtype=float32, shape=[4, 8], init=0.0)
}
"""

from __future__ import annotations

import json
import numbers
import re
from collections.abc import Callable, Mapping

from tilevm.dtypes import boolean, float32, int32
from tilevm.errors import SourceLocation
from tilevm.ir.expr import Const, Expr, Syntax, Var
from tilevm.ir.inst import Instruction
from tilevm.ir.instruction_set import TILE_IR, InstructionSet
from tilevm.ir.program import Program
from tilevm.ir.stmt import For, If, While
from tilevm.ir.text_forms import (
    BINARY_SYMBOLS,
    ExpressionForm,
    FieldForm,
    FieldKind,
    InstructionForm,
    header_fields,
    text_forms,
)
from tilevm.ir.types import GlobalType, PointerType, ScalarType, TileType, Type, VectorType

__all__ = ["print_program"]

INDENT = "  "
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NOT_NAME_CHARACTER = re.compile(r"[^A-Za-z0-9_.]")


def print_program(
    program: Program,
    instruction_set: InstructionSet = TILE_IR,
    comments: Mapping[Instruction, str] | None = None,
) -> str:
    """The text of ``program``, whose classes are those of ``instruction_set``; ``tilevm.ir.parse`` reads it
    back to an equal program (see the module doc). ``comments`` (by instruction) are printed as ``# ...``
    lines right above their instructions, to show what an analysis found (text to read, not to parse)."""
    return _Printer(instruction_set, comments or {}).program(program)


def location_comment(loc: SourceLocation | None) -> str:
    """``  # loc("k.py", 12, 4)``, or '' without a location; the file name is quoted, so any name works."""
    if loc is None:
        return ""
    return f"  # loc({json.dumps(loc.file)}, {loc.line}, {loc.column})"


def constant_text(constant: Const) -> str:
    """``3``, ``-0.0``, ``nan``, ``true``, or ``7:int64`` when the dtype is not the literal's default.

    Floats print as ``repr`` does, the shortest text that reads back to the same bits.
    """
    value = constant.value
    if isinstance(value, bool):
        text, default = ("true" if value else "false"), boolean
    elif isinstance(value, numbers.Integral):
        text, default = str(int(value)), int32
    else:
        text, default = repr(float(value)), float32
    return text if constant.dtype == default else f"{text}:{constant.dtype}"


class _Printer:
    """Prints one program; owns the names given to its variables."""

    def __init__(self, instruction_set: InstructionSet, comments: Mapping[Instruction, str]) -> None:
        self.comments = comments
        self.forms = text_forms(instruction_set)
        self.names: dict[int, str] = {}
        self.used: set[str] = set()
        self.lines: list[str] = []

    # names

    def define(self, variable: Var) -> str:
        """Give ``variable`` a unique printed name: its own, or its own with ``.1``, ``.2``, ... appended."""
        base = _NOT_NAME_CHARACTER.sub("_", variable.name) or "v"
        name, suffix = base, 0
        while name in self.used:
            suffix += 1
            name = f"{base}.{suffix}"
        self.used.add(name)
        self.names[variable.uid] = name
        return f"%{name}"

    def var(self, variable: Var) -> str:
        # A variable used without a definition still prints (the parser will report it), so that broken
        # programs can be printed while debugging them.
        known = self.names.get(variable.uid)
        return f"%{known}" if known is not None else self.define(variable)

    def declaration(self, variable: Var) -> str:
        return f"{self.define(variable)}: {self.type_text(variable.type)}"

    # the program and its statements

    def program(self, program: Program) -> str:
        params = ", ".join(self.param(param.variable, param.divisibility) for param in program.params)
        name = program.name if _IDENTIFIER.fullmatch(program.name) else json.dumps(program.name)
        facts = self.keyword_fields(header_fields(), program, " ")
        self.lines.append(f"kernel {name}({params}) {facts} {{")
        self.body(program.body, 1)
        self.lines.append("}")
        return "\n".join(self.lines)

    def param(self, variable: Var, divisibility: int) -> str:
        text = self.declaration(variable)
        return text if divisibility == 1 else f"{text} divisibility={divisibility}"

    def body(self, body: tuple[Instruction, ...], depth: int) -> None:
        for instruction in body:
            comment = self.comments.get(instruction)
            if comment is not None:
                self.lines.append(f"{INDENT * depth}# {comment}")
            handler = _STATEMENT_PRINTERS.get(type(instruction), _Printer.instruction)
            handler(self, instruction, depth)

    def emit(self, depth: int, text: str, loc: SourceLocation | None = None) -> None:
        self.lines.append(f"{INDENT * depth}{text}{location_comment(loc)}")

    def instruction(self, instruction: Instruction, depth: int) -> None:
        form = self.forms.instructions.get(type(instruction))
        if form is None:
            raise TypeError(
                f"{type(instruction).__name__} is not an instruction of {self.forms.instruction_set.name}"
            )
        outputs = _outputs(form, instruction)
        declarations = ", ".join(self.declaration(output) for output in outputs)
        prefix = f"{declarations} = " if outputs else ""
        arguments = self.keyword_fields(form.fields, instruction, ", ")
        self.emit(depth, f"{prefix}{form.opname}({arguments})", instruction.loc)

    def keyword_fields(self, fields: tuple[FieldForm, ...], node: object, separator: str) -> str:
        """``name=value`` for each field of ``node`` (an instruction, a program) not at its default."""
        return separator.join(
            f"{field.name}={self.value(field.kind, getattr(node, field.name))}"
            for field in fields
            if not field.is_default(getattr(node, field.name))
        )

    def for_loop(self, loop: For, depth: int) -> None:
        bounds = ", ".join(self.expr(bound) for bound in (loop.start, loop.stop, loop.step))
        unroll = "" if loop.unroll is None else f" unroll={loop.unroll}"
        self.emit(depth, f"for {self.declaration(loop.variable)} in range({bounds}){unroll} {{", loop.loc)
        self.body(loop.body, depth + 1)
        self.emit(depth, "}")

    def while_loop(self, loop: While, depth: int) -> None:
        self.emit(depth, f"while {self.expr(loop.condition)} {{", loop.loc)
        self.body(loop.body, depth + 1)
        self.emit(depth, "}")

    def if_branch(self, branch: If, depth: int) -> None:
        self.emit(depth, f"if {self.expr(branch.condition)} {{", branch.loc)
        self.body(branch.then_body, depth + 1)
        if branch.else_body:
            self.emit(depth, "} else {")
            self.body(branch.else_body, depth + 1)
        self.emit(depth, "}")

    # field values

    def value(self, kind: FieldKind, value: object) -> str:
        if value is None:
            return "none"
        return _VALUE_PRINTERS[kind](self, value)

    # expressions

    def expr(self, expression: Expr) -> str:
        form = self.forms.expressions.get(type(expression))
        if form is None:
            raise TypeError(
                f"{type(expression).__name__} is not an expression of {self.forms.instruction_set.name}"
            )
        return _SYNTAX_PRINTERS[form.syntax](self, form, expression)

    def positional(self, fields: tuple[FieldForm, ...], node: Expr) -> str:
        """The values of ``fields``, comma-separated, leaving out the trailing ones at their defaults."""
        values = [getattr(node, field.name) for field in fields]
        while fields and fields[-1].is_default(values[-1]):
            fields, values = fields[:-1], values[:-1]
        return ", ".join(self.value(field.kind, value) for field, value in zip(fields, values))

    def call(self, form: ExpressionForm, expression: Expr) -> str:
        return f"{form.opname}({self.positional(form.operands, expression)})"

    def operator(self, form: ExpressionForm, expression: Expr) -> str:
        return f"{expression.op}({self.positional(form.operands, expression)})"

    def infix(self, form: ExpressionForm, expression: Expr) -> str:
        symbol = BINARY_SYMBOLS.get(expression.op)
        if symbol is None:
            return self.operator(form, expression)
        lhs, rhs = (self.operand(getattr(expression, field.name)) for field in form.operands)
        return f"{lhs} {symbol} {rhs}"

    def operand(self, expression: Expr) -> str:
        """An operand of an infix operator, parenthesized when itself infix: the text needs no precedence."""
        text = self.expr(expression)
        return f"({text})" if _is_infix(expression) else text

    def parameterized(self, form: ExpressionForm, expression: Expr) -> str:
        attributes = self.positional(form.attributes, expression)
        return f"{form.opname}<{attributes}>({self.positional(form.operands, expression)})"

    def exprs(self, expressions: tuple[Expr, ...]) -> str:
        return f"[{', '.join(self.expr(expression) for expression in expressions)}]"

    # types

    def type_text(self, value_type: Type) -> str:
        return _TYPE_PRINTERS[type(value_type)](self, value_type)

    def global_type(self, value_type: GlobalType) -> str:
        shape, strides = self.exprs(value_type.shape), self.exprs(value_type.strides)
        return f"global<{value_type.dtype}, {shape}, strides={strides}>"

    def tile_type(self, value_type: TileType) -> str:
        return str(value_type)


def _outputs(form: InstructionForm, instruction: Instruction) -> tuple[Var, ...]:
    if form.output_field is None:
        return ()
    value = getattr(instruction, form.output_field)
    return value if form.several_outputs else (value,)


def _is_infix(expression: Expr) -> bool:
    return type(expression).syntax is Syntax.INFIX and expression.op in BINARY_SYMBOLS


def _ints(values: tuple[int, ...]) -> str:
    return f"[{', '.join(str(value) for value in values)}]"


_STATEMENT_PRINTERS: dict[type[Instruction], Callable[[_Printer, Instruction, int], None]] = {
    For: _Printer.for_loop,
    While: _Printer.while_loop,
    If: _Printer.if_branch,
}

_SYNTAX_PRINTERS: dict[Syntax, Callable[[_Printer, ExpressionForm, Expr], str]] = {
    Syntax.VARIABLE: lambda printer, _, variable: printer.var(variable),
    Syntax.LITERAL: lambda _, __, constant: constant_text(constant),
    Syntax.CALL: _Printer.call,
    Syntax.OPERATOR: _Printer.operator,
    Syntax.INFIX: _Printer.infix,
    Syntax.PARAMETERIZED: _Printer.parameterized,
}

_TYPE_PRINTERS: dict[type, Callable[[_Printer, Type], str]] = {
    ScalarType: lambda _, scalar: str(scalar.dtype),
    PointerType: lambda _, pointer: str(pointer),
    VectorType: lambda _, vector: str(vector),
    GlobalType: _Printer.global_type,
    TileType: _Printer.tile_type,
}

_VALUE_PRINTERS: dict[FieldKind, Callable[[_Printer, object], str]] = {
    FieldKind.EXPR: _Printer.expr,
    FieldKind.VAR: _Printer.expr,
    FieldKind.EXPRS: _Printer.exprs,
    FieldKind.EXPR_OR_EXPRS: lambda printer, value: (
        printer.exprs(value) if isinstance(value, tuple) else printer.expr(value)
    ),
    FieldKind.INTS: lambda _, values: _ints(values),
    FieldKind.INT: lambda _, value: str(value),
    FieldKind.BOOL: lambda _, value: "true" if value else "false",
    FieldKind.STR: lambda _, value: json.dumps(value),
    FieldKind.DTYPE: lambda _, value: str(value),
    FieldKind.LAYOUT: lambda _, value: f"<{value}>",
}
