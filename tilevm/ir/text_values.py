"""Reading the values of IR text from its parse tree: expressions, types and fields, with the scopes that map
``%names`` to variables. ``tilevm.ir.parser`` reads the statements on top of this. Expressions are read by
their instruction set's forms (``tilevm.ir.text_forms``), so that each class's fields are read as printed.

>>> import lark
>>> from pathlib import Path
>>> grammar = (Path(__file__).parent / "grammar.lark").read_text()
>>> expr_parser = lark.Lark(grammar, parser="lalr", start="expr", propagate_positions=True)
>>> reader = ValueReader("(3 * 4:int64) + grid_size(0)")
>>> reader.expr(expr_parser.parse(reader.text))
BinaryExpr(op='add', lhs=BinaryExpr(op='mul', lhs=Const(value=3, dtype=tilevm.int32), \
rhs=Const(value=4, dtype=tilevm.int64)), rhs=GridSize(axis=0))
"""

from __future__ import annotations

import json
from collections.abc import Callable

import lark

from tilevm.dtypes import DType, boolean, dtype, float32, int32
from tilevm.errors import CompilationError, SourceLocation
from tilevm.ir.expr import Expr, Syntax, Var
from tilevm.ir.instruction_set import TILE_IR, InstructionSet
from tilevm.ir.text_forms import BINARY_SYMBOLS, ExpressionForm, FieldForm, FieldKind, text_forms
from tilevm.ir.types import (
    AddressSpace,
    GlobalType,
    PointerType,
    ScalarType,
    Scope,
    TileType,
    Type,
    VectorType,
)
from tilevm.layout import RegisterLayout, SharedLayout
from tilevm.layout import parse as parse_layout

__all__ = ["SOURCE_NAME", "ValueReader"]

#: the file name that errors in IR text report
SOURCE_NAME = "<tile ir>"

Node = lark.Tree | lark.Token

_OPS_OF_SYMBOLS = {symbol: op for op, symbol in BINARY_SYMBOLS.items()}
_LITERALS: dict[str, tuple[Callable[[str], object], DType]] = {
    "INT": (int, int32),
    "FLOAT": (float, float32),
    "TRUE": (lambda _: True, boolean),
    "FALSE": (lambda _: False, boolean),
}


class ValueReader:
    """Turns parse-tree nodes into IR values; raises ``CompilationError`` at the node's line and column."""

    def __init__(self, text: str, instruction_set: InstructionSet = TILE_IR) -> None:
        self.text = text
        self.forms = text_forms(instruction_set)
        self.scopes: list[dict[str, Var]] = [{}]

    # errors

    def error(self, node: Node | None, message: str) -> CompilationError:
        """A ``CompilationError`` at ``node``, with the line of IR text and a caret under the column."""
        line, column = _position(node)
        return error_at(self.text, line, column, message)

    # variables and scopes

    def define(self, token: lark.Token, value_type: Type) -> Var:
        name = token[1:]
        if self.find(name) is not None:
            raise self.error(token, f"%{name} is already defined")
        variable = Var(name, value_type)
        self.scopes[-1][name] = variable
        return variable

    def find(self, name: str) -> Var | None:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        return None

    def lookup(self, token: lark.Token) -> Var:
        variable = self.find(token[1:])
        if variable is None:
            raise self.error(token, f"{token} is not defined")
        return variable

    # dtypes, types and layouts

    def dtype(self, token: lark.Token) -> DType:
        try:
            return dtype(str(token))
        except ValueError:
            raise self.error(token, f"unknown dtype '{token}'") from None

    def type(self, node: lark.Tree) -> Type:
        return _TYPE_READERS[node.data](self, node)

    def tile_type(self, node: lark.Tree) -> TileType:
        scope, dtype_name, shape, layout = node.children
        layout_value = None if layout is None else self.layout(layout, (RegisterLayout, SharedLayout))
        return TileType(self.dtype(dtype_name), self.ints(shape), Scope(str(scope)), layout_value)

    def pointer_type(self, node: lark.Tree) -> PointerType:
        dtype_name, space = node.children
        if space is None:
            return PointerType(self.dtype(dtype_name))
        spaces = [item.value for item in AddressSpace]
        if str(space) not in spaces:
            raise self.error(space, f"unknown address space '{space}'; expected one of {', '.join(spaces)}")
        return PointerType(self.dtype(dtype_name), AddressSpace(str(space)))

    def layout(self, token: lark.Token, kinds: tuple[type, ...]) -> RegisterLayout | SharedLayout:
        try:
            layout = parse_layout(token.strip())
        except Exception as failure:  # LayoutError, or whatever a constructor raised on bad arguments
            raise self.error(token, f"bad layout '{token.strip()}': {failure}") from None
        if not isinstance(layout, kinds):
            expected = " or ".join(kind.__name__ for kind in kinds)
            raise self.error(token, f"'{token.strip()}' is not a {expected}")
        return layout

    def ints(self, node: lark.Tree) -> tuple[int, ...]:
        return tuple(int(token) for token in node.children if token is not None)

    def exprs(self, node: lark.Tree) -> tuple[Expr, ...]:
        return tuple(self.expr(child) for child in node.children if child is not None)

    # expressions

    def expr(self, node: Node) -> Expr:
        reader = _EXPR_READERS.get(node.data)
        if reader is None:
            raise self.error(node, "expected an expression")
        return reader(self, node)

    def syntax_form(self, syntax: Syntax, node: Node) -> ExpressionForm:
        """The set's one expression class written in ``syntax`` (variables, literals, infix operators)."""
        forms = self.forms.by_syntax[syntax]
        if not forms:
            raise self.error(node, f"{self.forms.instruction_set.name} has no {syntax.value} expressions")
        return forms[0]

    def variable(self, node: lark.Tree) -> Expr:
        self.syntax_form(Syntax.VARIABLE, node)
        return self.lookup(node.children[0])

    def constant(self, node: lark.Tree) -> Expr:
        literal, dtype_name = node.children
        convert, default = _LITERALS[literal.type]
        read_dtype = default if dtype_name is None else self.dtype(dtype_name)
        return self.syntax_form(Syntax.LITERAL, node).cls(convert(str(literal)), read_dtype)

    def infix(self, node: lark.Tree) -> Expr:
        lhs, symbol, rhs = node.children
        form = self.syntax_form(Syntax.INFIX, symbol)
        op_field, lhs_field, rhs_field = form.fields
        op = _OPS_OF_SYMBOLS[str(symbol.children[0])]
        return form.cls(**{op_field.name: op, lhs_field.name: self.expr(lhs), rhs_field.name: self.expr(rhs)})

    def call(self, node: lark.Tree) -> Expr:
        name, *arguments = node.children
        form = self.call_form(name, Syntax.CALL, Syntax.OPERATOR, Syntax.INFIX)
        values = self.positional(form.operands, name, arguments)
        if form.syntax is not Syntax.CALL:
            values[form.fields[0].name] = str(name)
        return form.cls(**values)

    def parameterized(self, node: lark.Tree) -> Expr:
        name, attributes, *operands = node.children
        form = self.call_form(name, Syntax.PARAMETERIZED)
        values = self.positional(form.attributes, name, attributes.children)
        return form.cls(**values, **self.positional(form.operands, name, operands))

    def call_form(self, name: lark.Token, *syntaxes: Syntax) -> ExpressionForm:
        form = self.forms.calls.get(str(name))
        if form is None:
            raise self.error(name, f"unknown function '{name}'")
        if form.syntax not in syntaxes:
            brackets = "<...>" if form.syntax is Syntax.PARAMETERIZED else ""
            raise self.error(name, f"'{name}' is written {name}{brackets}(...)")
        return form

    def positional(self, fields: tuple[FieldForm, ...], name: lark.Token, nodes: list[Node | None]) -> dict:
        """The values of ``fields`` written in order as ``nodes``; trailing ones may be left at default."""
        nodes = [node for node in nodes if node is not None]
        required = sum(field.required for field in fields)
        if not required <= len(nodes) <= len(fields):
            count = str(required) if required == len(fields) else f"{required} to {len(fields)}"
            raise self.error(name, f"'{name}' takes {count} argument(s), got {len(nodes)}")
        return {field.name: self.field(field, node) for field, node in zip(fields, nodes)}

    # instruction fields

    def field(self, form: FieldForm, node: Node) -> object:
        """The value of field ``form`` written as ``node``, checked against the field's kind."""
        if node.data == "none_value":
            if not form.optional:
                raise self.error(node, f"field '{form.name}' cannot be none")
            return None
        return _FIELD_READERS[form.kind](self, form, node)

    def expect(self, condition: bool, node: Node, form: FieldForm, what: str) -> None:
        if not condition:
            raise self.error(node, f"field '{form.name}' expects {what}")

    def int(self, node: Node) -> int:
        if node.data != "constant" or node.children[0].type != "INT" or node.children[1] is not None:
            raise self.error(node, "expected an integer")
        return int(node.children[0])

    def bool(self, node: Node) -> bool:
        if node.data != "constant" or node.children[0].type not in ("TRUE", "FALSE") or node.children[1]:
            raise self.error(node, "expected true or false")
        return node.children[0].type == "TRUE"

    def list_field(self, form: FieldForm, node: Node, item: Callable[[Node], object]) -> tuple:
        self.expect(node.data == "list_value", node, form, "a list [...]")
        return tuple(item(child) for child in node.children if child is not None)

    def expr_or_exprs_field(self, form: FieldForm, node: Node) -> Expr | tuple[Expr, ...]:
        """A field that holds an expression or a tuple of them: the tuple is written as a list [...]."""
        if node.data == "list_value":
            return self.list_field(form, node, self.expr)
        return self.expr(node)

    def var_field(self, form: FieldForm, node: Node) -> Var:
        self.expect(node.data == "var", node, form, "a %value")
        return self.lookup(node.children[0])

    def string_field(self, form: FieldForm, node: Node) -> str:
        self.expect(node.data == "string_value", node, form, 'a string "..."')
        return self.string(node.children[0])

    def string(self, token: lark.Token, text: str | None = None) -> str:
        """The JSON string ``text`` (by default the whole ``token``), or an error at ``token``."""
        try:
            return json.loads(token if text is None else text)
        except json.JSONDecodeError:
            raise self.error(token, f"bad string {token if text is None else text}") from None

    def dtype_field(self, form: FieldForm, node: Node) -> DType:
        self.expect(node.data == "name_value", node, form, "a dtype")
        return self.dtype(node.children[0])

    def layout_field(self, form: FieldForm, node: Node) -> RegisterLayout | SharedLayout:
        self.expect(node.data == "layout_value", node, form, "a layout <...>")
        return self.layout(node.children[0], form.types)


def error_at(text: str, line: int, column: int, message: str) -> CompilationError:
    """A ``CompilationError`` at the 1-based ``line`` and ``column`` of IR ``text``, showing that line.

    The location keeps Python's convention of 0-based columns, like every ``SourceLocation``.
    """
    lines = text.splitlines()
    source = lines[line - 1] if 0 < line <= len(lines) else ""
    excerpt = f"\n    {source}\n    {' ' * (column - 1)}^" if source else ""
    return CompilationError(f"{message}{excerpt}", SourceLocation(SOURCE_NAME, line, max(column - 1, 0)))


def _position(node: Node | None) -> tuple[int, int]:
    if isinstance(node, lark.Token):
        return node.line or 0, node.column or 0
    if isinstance(node, lark.Tree) and not node.meta.empty:
        return node.meta.line, node.meta.column
    return 0, 0


_TYPE_READERS: dict[str, Callable[[ValueReader, lark.Tree], Type]] = {
    "scalar_type": lambda reader, node: ScalarType(reader.dtype(node.children[0])),
    "pointer_type": ValueReader.pointer_type,
    "vector_type": lambda reader, node: VectorType(reader.dtype(node.children[0]), int(node.children[1])),
    "global_type": lambda reader, node: GlobalType(
        reader.dtype(node.children[0]), reader.exprs(node.children[1]), reader.exprs(node.children[2])
    ),
    "tile_type": ValueReader.tile_type,
}

_EXPR_READERS: dict[str, Callable[[ValueReader, lark.Tree], Expr]] = {
    "var": ValueReader.variable,
    "constant": ValueReader.constant,
    "binary": ValueReader.infix,
    "call": ValueReader.call,
    "parameterized": ValueReader.parameterized,
}

_FIELD_READERS: dict[FieldKind, Callable[[ValueReader, FieldForm, Node], object]] = {
    FieldKind.EXPR: lambda reader, form, node: reader.expr(node),
    FieldKind.VAR: ValueReader.var_field,
    FieldKind.EXPRS: lambda reader, form, node: reader.list_field(form, node, reader.expr),
    FieldKind.EXPR_OR_EXPRS: ValueReader.expr_or_exprs_field,
    FieldKind.INTS: lambda reader, form, node: reader.list_field(form, node, reader.int),
    FieldKind.INT: lambda reader, form, node: reader.int(node),
    FieldKind.BOOL: lambda reader, form, node: reader.bool(node),
    FieldKind.STR: ValueReader.string_field,
    FieldKind.DTYPE: ValueReader.dtype_field,
    FieldKind.LAYOUT: ValueReader.layout_field,
}
