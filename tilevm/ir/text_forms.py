"""The text form of each class of an instruction set, derived once from its dataclass fields; the printer and
the parser share this table, so a new instruction or expression class needs no change to either.

An instruction prints as ``%out: <type> = opname(field=value, ...)`` (``%a: <t1>, %b: <t2> = ...`` for one
with several ``outputs``); each field's annotation picks how its value is written and read back (its
``FieldKind``). Only ``For``, ``While`` and ``If``, which hold nested bodies, have syntax of their own. An
expression prints in its class's ``syntax`` (``tilevm.ir.expr.Syntax``), its fields written by the same kinds.
The program header's facts (``num_threads=128 target="sm_90"``) are ``Program``'s fields, written likewise.

>>> from tilevm.ir.shared_tiles import AllocRegister
>>> form = text_forms().instructions[AllocRegister]
>>> form.opname, form.output_field, [(field.name, field.kind.value, field.optional) for field in form.fields]
('alloc_register', 'output', [('dtype', 'dtype', False), ('shape', 'ints', False), ('init', 'expr', True)])
>>> from tilevm.ir.expr import CastExpr
>>> [(field.name, field.kind.value) for field in text_forms().expressions[CastExpr].fields]
[('operand', 'expr'), ('dtype', 'dtype'), ('rounding', 'str')]
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from dataclasses import dataclass

from tilevm.dtypes import DType
from tilevm.ir.expr import Expr, Syntax, Var
from tilevm.ir.inst import Instruction
from tilevm.ir.instruction_set import TILE_IR, InstructionSet
from tilevm.ir.program import Program
from tilevm.ir.stmt import For, If, While
from tilevm.layout import RegisterLayout, SharedLayout

__all__ = [
    "BINARY_SYMBOLS",
    "STRUCTURED_CLASSES",
    "ExpressionForm",
    "FieldForm",
    "FieldKind",
    "InstructionForm",
    "TextForms",
    "header_fields",
    "instruction_forms",
    "text_forms",
]

#: infix spelling of the binary operators (INFIX syntax); the others (max, min) print as calls ``max(a, b)``
BINARY_SYMBOLS = {
    "add": "+", "sub": "-", "mul": "*", "div": "/", "floordiv": "//", "mod": "%",
    "and": "&", "or": "|", "xor": "^", "shl": "<<", "shr": ">>",
    "eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">=",
}  # fmt: skip

#: instructions with nested bodies: each has dedicated syntax in the printer and the grammar
STRUCTURED_CLASSES: tuple[type[Instruction], ...] = (For, While, If)

#: the fields an instruction defines its results in: one variable, or several (an mma's four registers)
_OUTPUT_FIELDS = (("output", Var), ("outputs", tuple[Var, ...]))

#: the program's fields written otherwise than as header facts ``name=value``
_PROGRAM_SPECIAL_FIELDS = ("name", "params", "body")


class FieldKind(enum.Enum):
    """How a field's value is written: chosen from the field's type annotation."""

    EXPR = "expr"  # a scalar or tile expression: %x, 3, (%i * 64) + 3
    VAR = "var"  # a value that must be a variable: %x
    EXPRS = "exprs"  # [%n, 64]
    EXPR_OR_EXPRS = "expr_or_exprs"  # either: %desc, or [%a0, %a1, %a2, %a3] (wgmma's a)
    INTS = "ints"  # [16, 64]
    INT = "int"  # 3
    BOOL = "bool"  # true
    STR = "str"  # "add"
    DTYPE = "dtype"  # float16
    LAYOUT = "layout"  # <spatial(8, 4).local(2, 2)>


_KIND_OF_ANNOTATION: dict[object, FieldKind] = {
    Var: FieldKind.VAR,
    Expr: FieldKind.EXPR,
    tuple[Expr, ...]: FieldKind.EXPRS,
    tuple[int, ...]: FieldKind.INTS,
    int: FieldKind.INT,
    bool: FieldKind.BOOL,
    str: FieldKind.STR,
    DType: FieldKind.DTYPE,
    RegisterLayout: FieldKind.LAYOUT,
    SharedLayout: FieldKind.LAYOUT,
}

#: the field kinds of union annotations whose choices each have a kind (``Expr | tuple[Expr, ...]``)
_UNION_KINDS = {frozenset((FieldKind.EXPR, FieldKind.EXPRS)): FieldKind.EXPR_OR_EXPRS}

#: the kinds a PARAMETERIZED expression writes between ``<`` and ``>``; its other fields are its operands
_ATTRIBUTE_KINDS = (FieldKind.DTYPE, FieldKind.STR, FieldKind.INT, FieldKind.BOOL)


@dataclass(frozen=True)
class FieldForm:
    """One field of a text form: ``name=value`` in an instruction, a positional value in an expression."""

    name: str
    kind: FieldKind
    types: tuple[object, ...]  # the annotation's choices besides None, e.g. (RegisterLayout,)
    optional: bool  # None is a valid value (written ``none``)
    default: object  # dataclasses.MISSING when the field must be written

    @property
    def required(self) -> bool:
        return self.default is dataclasses.MISSING

    def is_default(self, value: object) -> bool:
        """Whether ``value`` is the field's default, so that the printer may leave the field out."""
        if self.default is dataclasses.MISSING:
            return False
        if self.default is None or value is None:
            return value is self.default
        return type(value) is type(self.default) and value == self.default


@dataclass(frozen=True)
class InstructionForm:
    """The text form of an instruction class: its name, the field holding its output(s), and its fields."""

    cls: type[Instruction]
    opname: str
    output_field: str | None  # "output" (one Var), "outputs" (a tuple of Vars) or None
    several_outputs: bool
    fields: tuple[FieldForm, ...]


@dataclass(frozen=True)
class ExpressionForm:
    """The text form of an expression class: its syntax, its call name, and its fields in order.

    For OPERATOR and INFIX syntax the first field is ``op``, which names the call or picks the symbol.
    """

    cls: type[Expr]
    syntax: Syntax
    opname: str
    fields: tuple[FieldForm, ...]

    @property
    def operands(self) -> tuple[FieldForm, ...]:
        """The fields written in the parentheses: all but ``op``, or all but a PARAMETERIZED's attributes."""
        if self.syntax in (Syntax.OPERATOR, Syntax.INFIX):
            return self.fields[1:]
        return tuple(field for field in self.fields if field not in self.attributes)

    @property
    def call_names(self) -> tuple[str, ...]:
        """The names that call this form in the text: its ops, its opname, or none (variables, literals)."""
        if self.syntax in (Syntax.OPERATOR, Syntax.INFIX):
            return self.cls.ops
        return () if self.syntax in (Syntax.VARIABLE, Syntax.LITERAL) else (self.opname,)

    @property
    def attributes(self) -> tuple[FieldForm, ...]:
        """The fields a PARAMETERIZED expression writes between ``<`` and ``>``."""
        if self.syntax is not Syntax.PARAMETERIZED:
            return ()
        return tuple(field for field in self.fields if field.kind in _ATTRIBUTE_KINDS)


@dataclass(frozen=True)
class TextForms:
    """Everything the printer and the parser need to know of one instruction set."""

    instruction_set: InstructionSet
    instructions: dict[type[Instruction], InstructionForm]  # the classes without syntax of their own
    by_opname: dict[str, InstructionForm]
    expressions: dict[type[Expr], ExpressionForm]
    calls: dict[str, ExpressionForm]  # call name -> the CALL, OPERATOR or INFIX form it reads
    by_syntax: dict[Syntax, tuple[ExpressionForm, ...]]


@functools.cache
def text_forms(instruction_set: InstructionSet = TILE_IR) -> TextForms:
    """The text forms of every class of ``instruction_set``, built once.

    Raises TypeError for a field whose annotation has no text form, an expression class whose syntax lacks
    what it needs (a name, an ``op`` field), or two classes that claim one name, so a new class with such a
    flaw fails the round-trip test instead of printing something unreadable.
    """
    instructions = {
        cls: _instruction_form(cls) for cls in instruction_set.instructions if cls not in STRUCTURED_CLASSES
    }
    expressions = {cls: _expression_form(cls) for cls in instruction_set.expressions}
    by_syntax = {
        syntax: tuple(form for form in expressions.values() if form.syntax is syntax) for syntax in Syntax
    }
    for syntax in (Syntax.VARIABLE, Syntax.LITERAL, Syntax.INFIX):
        if len(by_syntax[syntax]) > 1:
            raise TypeError(
                f"{instruction_set.name}: more than one expression class of {syntax.value} syntax"
            )
    calls: dict[str, ExpressionForm] = {}
    for form in expressions.values():
        for name in form.call_names:
            _claim(calls, name, form, instruction_set)
    by_opname: dict[str, InstructionForm] = {}
    for form in instructions.values():
        _claim(by_opname, form.opname, form, instruction_set)
    return TextForms(instruction_set, instructions, by_opname, expressions, calls, by_syntax)


def instruction_forms(instruction_set: InstructionSet = TILE_IR) -> dict[type[Instruction], InstructionForm]:
    """The form of every instruction class of the set except the structured ones."""
    return text_forms(instruction_set).instructions


@functools.cache
def header_fields() -> tuple[FieldForm, ...]:
    """The program's facts written in its header as ``name=value``: every field of ``Program`` but its name,
    parameters and body, so that a new fact (a target, a shared-memory size) is a new field."""
    hints = typing.get_type_hints(Program)
    return tuple(
        _field_form(Program, item, hints[item.name])
        for item in dataclasses.fields(Program)
        if item.name not in _PROGRAM_SPECIAL_FIELDS
    )


def _claim(table: dict, name: str, form: object, instruction_set: InstructionSet) -> None:
    if not name or name in table:
        raise TypeError(f"{instruction_set.name}: the name {name!r} of {form.cls.__name__} is empty or taken")
    table[name] = form


def _instruction_form(cls: type[Instruction]) -> InstructionForm:
    hints = typing.get_type_hints(cls)
    names = [item.name for item in dataclasses.fields(cls)]
    defined = [name for name in cls.defined_fields if name in names]
    if len(defined) > 1 or any((name, hints[name]) not in _OUTPUT_FIELDS for name in defined):
        raise TypeError(
            f"{cls.__name__}: no text form for outputs {defined}; 'output: Var' or 'outputs: tuple[Var, ...]'"
        )
    fields = tuple(
        _field_form(cls, item, hints[item.name])
        for item in dataclasses.fields(cls)
        if item.name not in (*defined, "loc")
    )
    output = defined[0] if defined else None
    several = output == "outputs"
    return InstructionForm(cls, cls.opname, output, several, fields)


def _expression_form(cls: type[Expr]) -> ExpressionForm:
    if cls.syntax in (Syntax.VARIABLE, Syntax.LITERAL):
        return ExpressionForm(cls, cls.syntax, "", ())  # written as %name or a literal, not by fields
    hints = typing.get_type_hints(cls)
    form = ExpressionForm(
        cls,
        cls.syntax,
        cls.opname,
        tuple(_field_form(cls, item, hints[item.name]) for item in dataclasses.fields(cls)),
    )
    uses_op = cls.syntax in (Syntax.OPERATOR, Syntax.INFIX)
    if uses_op and not (
        form.fields and form.fields[0].name == "op" and form.fields[0].kind is FieldKind.STR and cls.ops
    ):
        raise TypeError(f"{cls.__name__}: {cls.syntax.value} syntax needs a first field 'op: str' and ops")
    if cls.syntax is Syntax.INFIX and len(form.operands) != 2:
        raise TypeError(f"{cls.__name__}: infix syntax needs two operand fields after 'op'")
    if not uses_op and not cls.opname:
        raise TypeError(f"{cls.__name__}: {cls.syntax.value} syntax needs an opname")
    if cls.syntax is Syntax.PARAMETERIZED and not form.attributes:
        raise TypeError(f"{cls.__name__}: parameterized syntax needs a dtype, str, int or bool field")
    return form


def _field_form(cls: type, item: dataclasses.Field, annotation: object) -> FieldForm:
    is_union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    choices = typing.get_args(annotation) if is_union else ()
    optional = type(None) in choices
    rest = [choice for choice in choices if choice is not type(None)] or [annotation]
    kinds = frozenset(_KIND_OF_ANNOTATION.get(choice) for choice in rest)
    kind = _UNION_KINDS.get(kinds, next(iter(kinds)) if len(kinds) == 1 else None)
    if kind is None:
        raise TypeError(f"{cls.__name__}.{item.name}: no text form for a field of type {annotation}")
    default = item.default
    if default is dataclasses.MISSING and item.default_factory is not dataclasses.MISSING:
        default = item.default_factory()
    return FieldForm(item.name, kind, tuple(rest), optional, default)
