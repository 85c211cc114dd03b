"""The text form of each instruction class, derived once from its dataclass fields; the printer and the
parser share this table, so a new instruction class needs no change to either.

An instruction prints as ``%out: <type> = opname(field=value, ...)``; each field's annotation picks how its
value is written and read back (its ``FieldKind``). Only ``For``, ``While`` and ``If``, which hold nested
bodies, have syntax of their own.

>>> from tilevm.ir.memory import AllocRegister
>>> form = instruction_forms()[AllocRegister]
>>> form.opname, form.has_output, [(field.name, field.kind.value, field.optional) for field in form.fields]
('alloc_register', True, [('dtype', 'dtype', False), ('shape', 'ints', False), ('init', 'expr', True)])
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from dataclasses import dataclass

from tilevm.dtypes import DType
from tilevm.ir.expr import Expr, Var
from tilevm.ir.inst import Instruction
from tilevm.ir.stmt import For, If, While
from tilevm.layout import RegisterLayout, SharedLayout

__all__ = [
    "BINARY_SYMBOLS",
    "STRUCTURED_CLASSES",
    "FieldForm",
    "FieldKind",
    "InstructionForm",
    "forms_by_opname",
    "instruction_forms",
]

#: infix spelling of the scalar binary operators; the others (max, min) print as calls ``max(a, b)``
BINARY_SYMBOLS = {
    "add": "+", "sub": "-", "mul": "*", "div": "/", "floordiv": "//", "mod": "%",
    "and": "&", "or": "|", "xor": "^", "shl": "<<", "shr": ">>",
    "eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">=",
}  # fmt: skip

#: instructions with nested bodies: each has dedicated syntax in the printer and the grammar
STRUCTURED_CLASSES: tuple[type[Instruction], ...] = (For, While, If)

# Fields every instruction has that are not written as ``name=value``: the output and the source location.
_SPECIAL_FIELDS = ("output", "loc")


class FieldKind(enum.Enum):
    """How a field's value is written: chosen from the field's type annotation."""

    EXPR = "expr"  # a scalar or tile expression: %x, 3, (%i * 64) + 3
    VAR = "var"  # a value that must be a variable: %x
    EXPRS = "exprs"  # [%n, 64]
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


@dataclass(frozen=True)
class FieldForm:
    """One ``name=value`` field of an instruction's text form."""

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
    """The text form of an instruction class: its name, whether it defines an output, and its fields."""

    cls: type[Instruction]
    opname: str
    has_output: bool
    fields: tuple[FieldForm, ...]


@functools.cache
def instruction_forms() -> dict[type[Instruction], InstructionForm]:
    """The form of every class in ``INSTRUCTION_CLASSES`` except the structured ones, built once.

    Raises TypeError for a field whose annotation has no text form, so a new instruction with such a
    field fails the round-trip test instead of printing something unreadable.
    """
    from tilevm.ir import INSTRUCTION_CLASSES  # the package imports this module; read its table lazily

    return {cls: _form_of(cls) for cls in INSTRUCTION_CLASSES if cls not in STRUCTURED_CLASSES}


@functools.cache
def forms_by_opname() -> dict[str, InstructionForm]:
    """The same table keyed by ``opname``, for the parser."""
    return {form.opname: form for form in instruction_forms().values()}


def _form_of(cls: type[Instruction]) -> InstructionForm:
    hints = typing.get_type_hints(cls)
    fields = tuple(
        _field_form(cls, item, hints[item.name])
        for item in dataclasses.fields(cls)
        if item.name not in _SPECIAL_FIELDS
    )
    names = {item.name for item in dataclasses.fields(cls)}
    return InstructionForm(cls, cls.opname, "output" in names, fields)


def _field_form(cls: type[Instruction], item: dataclasses.Field, annotation: object) -> FieldForm:
    is_union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    choices = typing.get_args(annotation) if is_union else ()
    optional = type(None) in choices
    rest = [choice for choice in choices if choice is not type(None)] or [annotation]
    kinds = {_KIND_OF_ANNOTATION.get(choice) for choice in rest}
    if len(kinds) != 1 or None in kinds:
        raise TypeError(f"{cls.__name__}.{item.name}: no text form for a field of type {annotation}")
    default = item.default
    if default is dataclasses.MISSING and item.default_factory is not dataclasses.MISSING:
        default = item.default_factory()
    return FieldForm(item.name, kinds.pop(), tuple(rest), optional, default)
