"""Walking and rewriting Tile IR, driven by the fields of its node classes.

Every instruction and expression class (of any instruction set) and every type class gets one ``NodeForm``,
``node_form(cls)``, built once from its dataclass fields: each field is a definition (named in
``defined_fields``), an operand (holds expressions), a nested body (holds instructions), a type, or an
attribute (anything else). Walking and rebuilding read these roles, so a new node class needs no change
here.

- ``operands``, ``bodies`` and ``defined_variables`` give what one node reads, nests and defines.
- ``walk_instructions`` and ``walk_expressions`` visit every instruction and every expression of a program.
- ``map_expressions`` and ``map_instructions`` rebuild a program bottom-up through a function.
- ``substitute`` replaces variables by expressions everywhere, the types of global views included: a
  variable whose type changes is defined anew, and its uses follow.

>>> from tilevm.ir.expr import Const
>>> from tilevm.ir.parser import parse
>>> program = parse('''kernel k(%x: ptr<float32>, %n: int32) num_threads=32 {
...   %v: global<float32, [%n], strides=[1]> = global_view(pointer=%x, shape=[%n], strides=[1])
...   %t: register<float32, [4]> = load_global(tensor=%v, offsets=[0], shape=[4], dims=[0])
... }''')
>>> print(substitute(program, {program.params[1].variable: Const(64)}))
kernel k(%x: ptr<float32>, %n: int32) num_threads=32 {
  %v: global<float32, [64], strides=[1]> = global_view(pointer=%x, shape=[64], strides=[1])
  %t: register<float32, [4]> = load_global(tensor=%v, offsets=[0], shape=[4], dims=[0])
}
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from tilevm.ir.expr import Expr, Var
from tilevm.ir.inst import Instruction
from tilevm.ir.program import Program
from tilevm.ir.types import GlobalType, PointerType, ScalarType, TileType, Type, VectorType

__all__ = [
    "TYPE_CLASSES",
    "FieldRole",
    "NodeForm",
    "Rewriter",
    "bodies",
    "defined_variables",
    "map_expressions",
    "map_instructions",
    "node_form",
    "operands",
    "rebuild",
    "substitute",
    "walk_expressions",
    "walk_instructions",
]

TYPE_CLASSES: tuple[type, ...] = (ScalarType, PointerType, VectorType, GlobalType, TileType)

ExpressionFunction = Callable[[Expr], Expr]
InstructionFunction = Callable[[Instruction], "Instruction | Sequence[Instruction]"]


class FieldRole(enum.Enum):
    """What a field of a node holds, read from its annotation (and ``defined_fields`` for instructions)."""

    DEFINITION = "definition"  # variables the instruction defines: ``output``, a loop's ``variable``
    OPERAND = "operand"  # expressions read: an ``Expr``, an optional one, or a tuple of them
    BODY = "body"  # a nested tuple of instructions
    TYPE = "type"  # a value's type (a variable's), which may hold expressions (GlobalType)
    ATTRIBUTE = "attribute"  # everything else: ints, names, dtypes, layouts, the source location


@dataclass(frozen=True)
class NodeForm:
    """The fields of one node class, each with its role, in declaration order."""

    cls: type
    roles: tuple[tuple[str, FieldRole], ...]
    #: operand fields that must hold a variable, not any expression (``set``'s variable, ``assign``'s
    #: destination): what an instruction writes
    variable_operands: tuple[str, ...] = ()

    def names(self, role: FieldRole) -> tuple[str, ...]:
        return tuple(name for name, field_role in self.roles if field_role is role)


@functools.cache
def node_form(cls: type) -> NodeForm:
    """The form of an instruction, expression or type class, built once.

    >>> from tilevm.ir.stmt import For
    >>> node_form(For).names(FieldRole.BODY), node_form(For).names(FieldRole.DEFINITION)
    (('body',), ('variable',))
    """
    if not (issubclass(cls, (Instruction, Expr)) or cls in TYPE_CLASSES) or not dataclasses.is_dataclass(cls):
        raise TypeError(
            f"{cls.__name__} is no instruction, expression or type dataclass, "
            "so it cannot be walked or rewritten"
        )
    # GlobalType names Expr only for type checkers; give it to the resolver.
    hints = typing.get_type_hints(cls, localns={"Expr": Expr})
    defined = getattr(cls, "defined_fields", ())
    roles = tuple(
        (item.name, FieldRole.DEFINITION if item.name in defined else _role_of(hints[item.name]))
        for item in dataclasses.fields(cls)
    )
    variable_operands = tuple(
        name for name, role in roles if role is FieldRole.OPERAND and hints[name] is Var
    )
    return NodeForm(cls, roles, variable_operands)


def _role_of(annotation: object) -> FieldRole:
    leaves = set(_leaf_types(annotation))
    if any(isinstance(leaf, type) and issubclass(leaf, Instruction) for leaf in leaves):
        return FieldRole.BODY
    if any(isinstance(leaf, type) and issubclass(leaf, Expr) for leaf in leaves):
        return FieldRole.OPERAND
    if leaves and leaves <= set(TYPE_CLASSES):
        return FieldRole.TYPE
    return FieldRole.ATTRIBUTE


def _leaf_types(annotation: object) -> Iterator[object]:
    """The classes named by an annotation, through unions, optionals and tuples."""
    arguments = typing.get_args(annotation)
    if not arguments:
        yield annotation
    for argument in arguments:
        if argument is not Ellipsis:
            yield from _leaf_types(argument)


def _form(node: object) -> NodeForm:
    return node_form(type(node))


def _map_value(value: object, function: Callable) -> object:
    """``function`` applied to each node in a field's value (a node, None, or a tuple of them)."""
    if value is None:
        return None
    if isinstance(value, tuple):
        mapped = tuple(function(element) for element in value)
        return value if all(new is old for new, old in zip(mapped, value)) else mapped
    return function(value)


def _flatten(value: object) -> Iterator[object]:
    if isinstance(value, tuple):
        yield from value
    elif value is not None:
        yield value


def operands(node: object) -> tuple[Expr, ...]:
    """The expressions ``node`` reads directly: an instruction's operands (not its outputs, not its bodies'
    instructions), an expression's sub-expressions, a global type's extents; flattened, in field order.

    >>> from tilevm.ir.expr import BinaryExpr, Const
    >>> [operand.value for operand in operands(BinaryExpr("add", Const(1), Const(2)))]
    [1, 2]
    """
    return tuple(
        expression
        for name in _form(node).names(FieldRole.OPERAND)
        for expression in _flatten(getattr(node, name))
    )


def bodies(instruction: Instruction) -> tuple[tuple[Instruction, ...], ...]:
    """The nested instruction lists of a control-flow statement, in field order (none for others)."""
    return tuple(getattr(instruction, name) for name in _form(instruction).names(FieldRole.BODY))


def defined_variables(instruction: Instruction) -> tuple[Var, ...]:
    """Every variable ``instruction`` defines: its outputs and its bodies' variables (a loop counter)."""
    return tuple(
        variable
        for name in _form(instruction).names(FieldRole.DEFINITION)
        for variable in _flatten(getattr(instruction, name))
    )


def rebuild(
    node: object,
    operand: Callable[[Expr], Expr] = lambda expression: expression,
    body: Callable[[tuple[Instruction, ...]], tuple[Instruction, ...]] = lambda instructions: instructions,
    definition: Callable[[Var], Var] = lambda variable: variable,
) -> object:
    """``node`` (an instruction, a non-variable expression or a type) with each field of a role mapped.

    ``operand`` maps each expression held by an operand field (or child field of an expression), ``body``
    each nested body, ``definition`` each defined variable. The node itself is returned when nothing changed.

    >>> from tilevm.ir.expr import BinaryExpr, Const
    >>> print(rebuild(BinaryExpr("add", Const(1), Const(2)), operand=lambda e: Const(e.value * 10)).rhs.value)
    20
    """
    role_functions = {FieldRole.OPERAND: operand, FieldRole.BODY: body, FieldRole.DEFINITION: definition}
    changes = {}
    for name, role in _form(node).roles:
        function = role_functions.get(role)
        if function is None:
            continue
        old = getattr(node, name)
        new = function(old) if role is FieldRole.BODY else _map_value(old, function)
        if new is not old:
            changes[name] = new
    return dataclasses.replace(node, **changes) if changes else node


class Rewriter:
    """Rebuilds a program bottom-up: every expression through ``expression``, then every instruction through
    ``instruction`` (which may return several instructions, or none), after its operands and bodies.

    ``replacements`` maps variables (by identity) to the expressions that replace their uses. A defined
    variable whose type changes (a global view whose size was substituted) is replaced by a new variable of
    the new type, and its uses follow.
    """

    def __init__(
        self,
        expression: ExpressionFunction | None = None,
        instruction: InstructionFunction | None = None,
        replacements: Mapping[Var, Expr] | None = None,
    ) -> None:
        self.expression_function = expression
        self.instruction_function = instruction
        self.replacements: dict[int, Expr] = {
            variable.uid: value for variable, value in (replacements or {}).items()
        }

    def program(self, program: Program) -> Program:
        params = tuple(
            dataclasses.replace(param, variable=self.definition(param.variable)) for param in program.params
        )
        return dataclasses.replace(program, params=params, body=self.body(program.body))

    def body(self, body: tuple[Instruction, ...]) -> tuple[Instruction, ...]:
        rebuilt = tuple(new for old in body for new in self.instruction(old))
        return body if len(rebuilt) == len(body) and all(a is b for a, b in zip(rebuilt, body)) else rebuilt

    def instruction(self, instruction: Instruction) -> tuple[Instruction, ...]:
        rebuilt = rebuild(instruction, operand=self.expression, body=self.body, definition=self.definition)
        if self.instruction_function is None:
            return (rebuilt,)
        result = self.instruction_function(rebuilt)
        return (result,) if isinstance(result, Instruction) else tuple(result)

    def expression(self, expression: Expr) -> Expr:
        if isinstance(expression, Var):
            rebuilt = self.replacements.get(expression.uid, expression)
        else:
            rebuilt = rebuild(expression, operand=self.expression)
        return rebuilt if self.expression_function is None else self.expression_function(rebuilt)

    def type(self, value_type: Type) -> Type:
        return rebuild(value_type, operand=self.expression)

    def definition(self, variable: Var) -> Var:
        new_type = self.type(variable.type)
        if new_type is variable.type:
            return variable
        renewed = Var(variable.name, new_type)
        self.replacements[variable.uid] = renewed
        return renewed


def map_expressions(program: Program, function: ExpressionFunction) -> Program:
    """``program`` with every expression ``e`` (operands, sub-expressions, global types) replaced by
    ``function(e)``, bottom-up: ``function`` sees an expression after its children were mapped."""
    return Rewriter(expression=function).program(program)


def map_instructions(program: Program, function: InstructionFunction) -> Program:
    """``program`` with every instruction replaced by ``function(instruction)`` (an instruction or a
    sequence of them), bottom-up: ``function`` sees a control-flow statement after its bodies were mapped."""
    return Rewriter(instruction=function).program(program)


def substitute(program: Program, mapping: Mapping[Var, Expr]) -> Program:
    """``program`` with each use of a variable in ``mapping`` replaced by its expression (see the module
    doc). A variable that an instruction writes (``set``, ``assign``) must map to a variable."""
    for variable, value in mapping.items():
        if value.type != variable.type:
            raise TypeError(f"cannot substitute a {value.type} value for {variable.name}: {variable.type}")
    rewritten = Rewriter(replacements=mapping).program(program)
    for instruction in walk_instructions(rewritten.body):
        _check_variable_fields(instruction)
    return rewritten


def _check_variable_fields(instruction: Instruction) -> None:
    for name in _form(instruction).variable_operands:
        if not isinstance(getattr(instruction, name), Var):
            raise TypeError(
                f"{instruction.opname}'s {name} must stay a variable; "
                f"substitute gave it {type(getattr(instruction, name)).__name__}"
            )


def walk_instructions(body: tuple[Instruction, ...]) -> Iterator[Instruction]:
    """Every instruction of ``body`` and of its nested bodies, in program order (a statement before its
    bodies)."""
    for instruction in body:
        yield instruction
        for nested in bodies(instruction):
            yield from walk_instructions(nested)


def walk_expressions(node: object) -> Iterator[Expr]:
    """Every expression in ``node`` (a program, a body, an instruction, an expression or a type), each
    before its sub-expressions. A variable's type is walked where the variable is defined (a parameter, an
    instruction's output), not where it is used.

    >>> from tilevm.ir.parser import parse
    >>> program = parse('kernel k(%n: int32) num_threads=32 { %x: int32 = declare(init=%n * 8) }')
    >>> [type(expression).__name__ for expression in walk_expressions(program)]
    ['BinaryExpr', 'Var', 'Const']
    """
    if isinstance(node, Program):
        for param in node.params:
            yield from walk_expressions(param.variable.type)
        yield from walk_expressions(node.body)
    elif isinstance(node, tuple):
        for element in node:
            yield from walk_expressions(element)
    elif isinstance(node, Var):
        yield node
    else:
        if isinstance(node, Expr):
            yield node
        yield from _walk_fields(node)


def _walk_fields(node: object) -> Iterator[Expr]:
    for name, role in _form(node).roles:
        value = getattr(node, name)
        if role is FieldRole.DEFINITION:
            for variable in _flatten(value):
                yield from walk_expressions(variable.type)
        elif role in (FieldRole.OPERAND, FieldRole.BODY, FieldRole.TYPE):
            yield from walk_expressions(tuple(_flatten(value)))
