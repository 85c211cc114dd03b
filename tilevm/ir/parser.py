"""Reading the text form of Tile IR (or of another instruction set) back into a program:
``parse(print_program(p)) == p``.

The grammar is ``grammar.lark`` (LALR); values, types and expressions are read by
``tilevm.ir.text_values``; this module reads the program and its statements. Syntax errors, undefined
``%names`` and malformed instructions raise ``CompilationError`` at their line and column in the text.

>>> program = parse('''
... kernel copy(%x: ptr<int4> divisibility=16) num_threads=32 {
...   %t: register<int4, [32]> = alloc_register(dtype=int4, shape=[32], init=-8:int4)  # loc("k.py", 3, 4)
... }''')
>>> program.name, program.body[0].init, str(program.body[0].loc)
('copy', Const(value=-8, dtype=tilevm.int4), 'k.py:3:4')
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lark

from tilevm.errors import CompilationError, SourceLocation
from tilevm.ir.inst import Instruction
from tilevm.ir.instruction_set import TILE_IR, InstructionSet
from tilevm.ir.printer import print_program
from tilevm.ir.program import Param, Program
from tilevm.ir.stmt import For, If, While
from tilevm.ir.text_forms import BINARY_SYMBOLS, FieldForm, InstructionForm, header_fields
from tilevm.ir.text_values import ValueReader, error_at

__all__ = ["check_round_trip", "parse"]

_PARSER = lark.Lark(
    (Path(__file__).parent / "grammar.lark").read_text(),
    parser="lalr",
    propagate_positions=True,
    maybe_placeholders=True,
)

# How syntax errors name what was expected, for the grammar's named terminals.
_TERMINAL_NAMES = {
    "VAR": "%value",
    "NAME": "name",
    "INT": "integer",
    "FLOAT": "float",
    "LAYOUT": "layout",
    "LOC": "location",
    "ESCAPED_STRING": "string",
    "TRUE": "'true'",
    "FALSE": "'false'",
    "SCOPE_SHARED": "'shared'",
    "SCOPE_REGISTER": "'register'",
    "$END": "end of text",
    "<END-OF-FILE>": "end of text",  # what lark expects after the text's last token
}
_OPERATOR_SYMBOLS = frozenset(BINARY_SYMBOLS.values())


def parse(text: str, instruction_set: InstructionSet = TILE_IR) -> Program:
    """The program written as ``text`` (the form ``print_program`` writes) in ``instruction_set``.

    Raises ``CompilationError`` with the line and column in ``text`` of a syntax error, an undefined or
    redefined ``%name``, an unknown instruction or field, or a value of the wrong kind.
    """
    try:
        tree = _PARSER.parse(text)
    except lark.exceptions.UnexpectedInput as failure:
        raise _syntax_error(text, failure) from None
    return _ProgramReader(text, instruction_set).program(tree)


def check_round_trip(program: Program, instruction_set: InstructionSet = TILE_IR) -> Program:
    """The program parsed back from ``program``'s text, after checking that it equals ``program`` and prints
    to the same text; raises ``AssertionError`` showing the text otherwise. Every IR's tests run it.

    >>> check_round_trip(Program("k", (), 32, (), target="sm_90")).target
    'sm_90'
    """
    text = print_program(program, instruction_set)
    parsed = parse(text, instruction_set)
    if parsed != program:
        raise AssertionError(f"the text of {program.name} parses back to another program:\n{text}")
    if print_program(parsed, instruction_set) != text:
        raise AssertionError(f"the text of {program.name} prints back differently:\n{text}")
    return parsed


def _syntax_error(text: str, failure: lark.exceptions.UnexpectedInput) -> CompilationError:
    if isinstance(failure, lark.exceptions.UnexpectedCharacters):
        return error_at(text, failure.line, failure.column, f"unexpected character {failure.char!r}")
    token = getattr(failure, "token", None)
    if token is None or token.type == "$END":
        lines = text.splitlines() or [""]
        return error_at(text, len(lines), len(lines[-1]) + 1, "unexpected end of text")
    expected = sorted({_terminal_name(name) for name in getattr(failure, "expected", ())})
    message = f"unexpected '{token}'; expected {' or '.join(expected)}"
    if token in _OPERATOR_SYMBOLS:
        message += " (operators do not chain: parenthesize, as in (a + b) + c)"
    return error_at(text, failure.line, failure.column, message)


def _terminal_name(name: str) -> str:
    if name in _TERMINAL_NAMES:
        return _TERMINAL_NAMES[name]
    pattern = _PARSER.get_terminal(name).pattern
    return f"'{pattern.value}'"


class _ProgramReader(ValueReader):
    """Reads the statements of one program, keeping one scope of ``%names`` per nested body."""

    def program(self, tree: lark.Tree) -> Program:
        name, *header, body = tree.children
        kernel_name = self.string(name) if name.type == "ESCAPED_STRING" else str(name)
        params = tuple(self.param(node) for node in header if node is not None and node.data == "param")
        facts = [node for node in header if node is not None and node.data == "argument"]
        values = self.keyword_fields(header_fields(), "kernel", name, facts)
        return Program(kernel_name, params, body=self.body(body), **values)

    def param(self, node: lark.Tree) -> Param:
        token, type_node, divisibility = node.children
        variable = self.define(token, self.type(type_node))
        try:
            return Param(variable, 1 if divisibility is None else int(divisibility))
        except TypeError as failure:
            raise self.error(token, str(failure)) from None

    def body(self, node: lark.Tree) -> tuple[Instruction, ...]:
        """The statements of a nested body, whose ``%names`` are not seen after it."""
        self.scopes.append({})
        try:
            return tuple(_STATEMENT_READERS[child.data](self, child) for child in node.children)
        finally:
            self.scopes.pop()

    def location(self, token: lark.Token | None) -> SourceLocation | None:
        if token is None:
            return None
        # '# loc("file", line, column)': the file is a JSON string, the rest two integers.
        file_text, _, numbers = token[len("# loc(") : -1].rpartition('",')
        line, column = (int(number) for number in numbers.split(","))
        return SourceLocation(self.string(token, file_text + '"'), line, column)

    def instruction(self, node: lark.Tree) -> Instruction:
        outputs, opname, *arguments, loc = node.children
        form = self.forms.by_opname.get(str(opname))
        if form is None:
            raise self.error(opname, f"unknown instruction '{opname}'")
        fields = self.keyword_fields(form.fields, opname, opname, arguments)
        declarations = () if outputs is None else [declaration.children for declaration in outputs.children]
        self.check_output_count(form, opname, len(declarations))
        defined = tuple(self.define(variable, self.type(type_node)) for variable, type_node in declarations)
        if form.output_field is not None:
            fields[form.output_field] = defined if form.several_outputs else defined[0]
        return form.cls(loc=self.location(loc), **fields)

    def check_output_count(self, form: InstructionForm, opname: lark.Token, count: int) -> None:
        if form.output_field is None and count:
            raise self.error(opname, f"'{opname}' has no output")
        if form.output_field is not None and not form.several_outputs and count != 1:
            raise self.error(opname, f"'{opname}' defines one output, got {count}")

    def keyword_fields(
        self, fields: tuple[FieldForm, ...], what: str, anchor: lark.Token, nodes: list[lark.Tree | None]
    ) -> dict[str, Any]:
        """The values of ``fields`` written as ``name=value`` nodes of an instruction or the header."""
        by_name = {field.name: field for field in fields}
        values: dict[str, Any] = {}
        for node in nodes:
            if node is None:
                continue
            name, value = node.children
            field = by_name.get(str(name))
            if field is None:
                raise self.error(name, f"'{what}' has no field '{name}'")
            if field.name in values:
                raise self.error(name, f"field '{name}' given twice")
            values[field.name] = self.field(field, value)
        missing = [field.name for field in fields if field.required and field.name not in values]
        if missing:
            raise self.error(anchor, f"'{what}' needs field {', '.join(map(repr, missing))}")
        return values

    def for_loop(self, node: lark.Tree) -> For:
        variable, variable_type, *bounds, unroll, loc, body = node.children
        start, stop, step = (self.expr(bound) for bound in bounds)
        self.scopes.append({})  # the loop variable is seen only in the body
        try:
            loop_variable = self.define(variable, self.type(variable_type))
            statements = self.body(body)
        finally:
            self.scopes.pop()
        unroll_factor = None if unroll is None else int(unroll)
        return For(
            variable=loop_variable, start=start, stop=stop, step=step, body=statements, unroll=unroll_factor,
            loc=self.location(loc),
        )  # fmt: skip

    def while_loop(self, node: lark.Tree) -> While:
        condition, loc, body = node.children
        return While(condition=self.expr(condition), body=self.body(body), loc=self.location(loc))

    def if_branch(self, node: lark.Tree) -> If:
        condition, loc, then_body, else_body = node.children
        read_condition, then_statements = self.expr(condition), self.body(then_body)
        else_statements = () if else_body is None else self.body(else_body)
        return If(
            condition=read_condition,
            then_body=then_statements,
            else_body=else_statements,
            loc=self.location(loc),
        )


_STATEMENT_READERS: dict[str, Callable[[_ProgramReader, lark.Tree], Instruction]] = {
    "instruction": _ProgramReader.instruction,
    "for_loop": _ProgramReader.for_loop,
    "while_loop": _ProgramReader.while_loop,
    "if_branch": _ProgramReader.if_branch,
}
