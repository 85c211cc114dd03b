"""Every node has a text form: the printer's and parser's dispatch tables cover every instruction, expression,
syntax, type and field kind, and every instruction class round-trips with any values of its fields."""

from __future__ import annotations

import dataclasses
import re
import typing

import pytest

from tilevm.dtypes import float16, int4, int32
from tilevm.ir import (
    EXPRESSION_CLASSES,
    INSTRUCTION_CLASSES,
    TILE_IR,
    Const,
    Expr,
    Instruction,
    Param,
    Program,
    Var,
    parse,
    parser,
    print_program,
    printer,
    text_values,
)
from tilevm.ir import expr as expr_module
from tilevm.ir.expr import Syntax
from tilevm.ir.text_forms import (
    STRUCTURED_CLASSES,
    FieldForm,
    FieldKind,
    InstructionSet,
    _instruction_form,
    instruction_forms,
    text_forms,
)
from tilevm.ir.types import PointerType, ScalarType, Scope, TileType, Type
from tilevm.layout import RegisterLayout, SharedLayout, spatial


def _subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _subclasses(sub)
    return found


def test_every_instruction_class_has_a_text_form():
    assert INSTRUCTION_CLASSES is TILE_IR.instructions and EXPRESSION_CLASSES is TILE_IR.expressions
    generic = set(instruction_forms())
    assert generic | set(STRUCTURED_CLASSES) == set(INSTRUCTION_CLASSES)
    assert set(printer._STATEMENT_PRINTERS) == set(STRUCTURED_CLASSES)
    assert len({form.opname for form in instruction_forms().values()}) == len(generic)
    assert {"instruction", "for_loop", "while_loop", "if_branch"} == set(parser._STATEMENT_READERS)


def test_every_expression_class_syntax_type_and_field_kind_has_handlers():
    expression_classes = {cls for cls in _subclasses(Expr) if cls.__module__ == expr_module.__name__}
    assert expression_classes == set(EXPRESSION_CLASSES) == set(text_forms().expressions)
    assert set(printer._SYNTAX_PRINTERS) == set(Syntax)
    assert set(typing.get_args(Type)) == set(printer._TYPE_PRINTERS)
    assert set(text_values._TYPE_READERS) == {
        "scalar_type",
        "pointer_type",
        "vector_type",
        "global_type",
        "tile_type",
    }
    assert set(text_values._EXPR_READERS) == {"var", "constant", "binary", "call", "parameterized"}
    assert set(printer._VALUE_PRINTERS) == set(FieldKind) == set(text_values._FIELD_READERS)


@dataclasses.dataclass(frozen=True)
class Nameless(Expr):
    axis: int


@dataclasses.dataclass(frozen=True)
class OperatorWithoutOp(Expr):
    operand: Expr
    syntax = Syntax.OPERATOR
    ops = ("frob",)


@dataclasses.dataclass(frozen=True)
class Select(Expr):
    op: str
    condition: Expr
    on_true: Expr
    on_false: Expr
    syntax = Syntax.INFIX
    ops = ("select",)


@dataclasses.dataclass(frozen=True)
class SecondInfix(Expr):
    op: str
    lhs: Expr
    rhs: Expr
    syntax = Syntax.INFIX
    ops = ("plus",)


@dataclasses.dataclass(frozen=True)
class Floating(Expr):
    scale: float
    opname = "floating"


@dataclasses.dataclass(frozen=True)
class Clashing(Expr):
    operand: Expr
    opname = "exp"  # an op of UnaryExpr


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (Nameless, "Nameless: call syntax needs an opname"),
        (OperatorWithoutOp, "OperatorWithoutOp: operator syntax needs a first field 'op: str' and ops"),
        (Select, "Select: infix syntax needs two operand fields after 'op'"),
        (SecondInfix, "broken: more than one expression class of infix syntax"),
        (Floating, "Floating.scale: no text form for a field of type <class 'float'>"),
        (Clashing, "the name 'exp' of Clashing is empty or taken"),
    ],
)
def test_an_expression_class_without_a_text_form_is_reported(cls, message):
    instruction_set = InstructionSet("broken", TILE_IR.instructions, (*TILE_IR.expressions, cls))
    with pytest.raises(TypeError, match=re.escape(message)):
        text_forms(instruction_set)


def _sample(field: FieldForm, pointer: Var, scalar: Var) -> object:
    """Some value of the field's kind; the type rules are not checked, only the text form."""
    samples = {
        FieldKind.EXPR: scalar,
        FieldKind.VAR: scalar,
        FieldKind.EXPRS: (Const(1), scalar),
        FieldKind.INTS: (2, 3),
        FieldKind.INT: 3,
        FieldKind.BOOL: True,
        FieldKind.STR: "add",
        FieldKind.DTYPE: int4,
        FieldKind.LAYOUT: spatial(32) if RegisterLayout in field.types else SharedLayout.row_major(4, 8),
    }
    return pointer if field.name == "pointer" else samples[field.kind]


@pytest.mark.parametrize("cls", sorted(instruction_forms(), key=lambda cls: cls.__name__))
def test_every_instruction_class_round_trips_with_any_field_values(cls: type[Instruction]):
    pointer, scalar = Var("p", PointerType(float16)), Var("s", ScalarType(int32))
    form = instruction_forms()[cls]
    fields = {field.name: _sample(field, pointer, scalar) for field in form.fields}
    output = Var("out", TileType(float16, (16, 8), Scope.REGISTER, spatial(8, 4).local(2, 2)))
    if form.output_field is not None:
        fields[form.output_field] = output
    program = Program("k", (Param(pointer), Param(scalar)), 32, (cls(**fields),))
    text = print_program(program)
    assert parse(text) == program, text
    assert print_program(parse(text)) == text


def test_a_field_type_without_a_text_form_is_reported():
    @dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
    class Scaled(Instruction):
        factor: float
        opname = "scaled"

    with pytest.raises(TypeError, match=r"Scaled.factor: no text form for a field of type <class 'float'>"):
        _instruction_form(Scaled)


def test_an_expression_or_a_list_of_them_is_one_field_kind_and_other_unions_none():
    @dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
    class Either(Instruction):
        operand: Expr | tuple[Expr, ...]
        opname = "either"

    @dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
    class Mixed(Instruction):
        operand: Expr | int
        opname = "mixed"

    assert [field.kind for field in _instruction_form(Either).fields] == [FieldKind.EXPR_OR_EXPRS]
    with pytest.raises(TypeError, match=r"Mixed.operand: no text form for a field of type"):
        _instruction_form(Mixed)


def test_outputs_are_one_output_or_a_tuple_of_outputs():
    @dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
    class Split(Instruction):
        results: tuple[Var, ...]
        opname = "split"
        defined_fields = ("results",)

    with pytest.raises(TypeError, match=re.escape("Split: no text form for outputs ['results']")):
        _instruction_form(Split)
