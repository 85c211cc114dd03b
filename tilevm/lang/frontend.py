"""The front end: a kernel's Python AST to a Tile IR program (no tracing).

Control flow on compile-time values runs at compile time (``if CONSTANT:``, ``for x in tv.static_range(4)``);
on kernel values it becomes IR (``if i < n:``, ``for k in range(num_tiles):``). A scalar assignment binds
an immutable ``let``. A name assigned inside a runtime loop or branch and defined before it names one mutable
variable: the front end declares it before the region (the ``let`` that bound it becomes that ``declare``)
and assigns it inside. A name first defined inside a region is not visible after it.
"""

from __future__ import annotations

import ast
import builtins as python_builtins
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from tilevm.errors import CompilationError, SourceLocation
from tilevm.ir import (
    AllocRegister,
    AssignScalar,
    AssignTensor,
    Const,
    DeclareScalar,
    GlobalView,
    LetScalar,
    Program,
    ProgramBuilder,
    ScalarType,
    Scope,
    TileType,
    Var,
    verify,
)
from tilevm.lang.captures import ABSENT, Captures
from tilevm.lang.context import KernelContext, compiling
from tilevm.lang.exits import LoopExits, RuntimeLoop, UnrolledLoop
from tilevm.lang.expressions import ExpressionEvaluator
from tilevm.lang.functions import DeviceFunction
from tilevm.lang.parameters import ConstexprParameter, Parameter, TensorParameter, flat_parameters
from tilevm.lang.source import closure_cells, parse_function, signature_of
from tilevm.lang.statements import ControlFlow
from tilevm.lang.values import constant, describe_value, is_ir, literal_like, python_scalar

__all__ = ["compile_kernel"]

MAX_INLINE_DEPTH = 32


@dataclass(frozen=True)
class Region:
    """A runtime loop or branch: the names defined when it was entered."""

    outer_names: frozenset[str]
    line: int


class FunctionReturn(Exception):
    """A ``return`` in an inlined ``tv.func``: carries the value back to the call."""

    def __init__(self, value: object) -> None:
        super().__init__()
        self.value = value


class FunctionCompiler(ControlFlow, ExpressionEvaluator):
    """Compiles one Python function's body into the current program: the kernel itself, or a ``tv.func``
    that a kernel calls (inlined, with its own names, into the same builder)."""

    def __init__(self, function: Callable, context: KernelContext, depth: int = 0) -> None:
        self.function, self.depth = function, depth
        self.signature = signature_of(function)
        parsed = parse_function(function)
        self.definition, self.file, self.first_line, self.indent = (
            parsed.definition, parsed.file, parsed.first_line, parsed.indent,
        )  # fmt: skip
        self.cells = closure_cells(function)
        self.context, self.builder = context, context.builder
        #: value -> the name of this function that it was first bound to (a callee owns none of its caller's
        #: values: reassigning a parameter must not change the caller's variable)
        self.owner: dict[int, str] = {}
        self.env: dict[str, object] = {}
        self.regions: list[Region] = []
        self.hidden: dict[str, int] = {}
        #: the values that a name of this function may change in place (declared scalars, owned tiles)
        self.mutable: set[int] = set()
        self.loop_variables: set[str] = set()
        #: the loops around the statement being compiled, innermost last (see ``tilevm.lang.exits``)
        self.loops: list[RuntimeLoop | UnrolledLoop] = []
        #: (expression, name): the expression whose value the statement being compiled binds to a name
        self.bound: tuple[ast.expr, str | None] | None = None
        #: the name that the value of a ``return`` is bound to by the caller (None: a temporary)
        self.return_name: str | None = None

    def location(self, node: ast.AST) -> SourceLocation:
        return SourceLocation(self.file, self.first_line + node.lineno - 1, node.col_offset + self.indent)

    def compile_kernel(self, parameters: tuple[Parameter, ...]) -> Program:
        with compiling(self.context):
            self.builder.location = self.location(self.definition)
            self.declare_parameters(parameters)
            self.statements(self.definition.body)
        return verify(self.builder.build())

    def inline(self, function: DeviceFunction, arguments: tuple, keywords: dict) -> object:
        """Compile a call of ``function`` in place; its parameters are bound to the arguments as they are
        (kernel values or Python values), and its ``return`` value is the call's value."""
        if self.depth >= MAX_INLINE_DEPTH:
            raise CompilationError(f"tv.func calls nest deeper than {MAX_INLINE_DEPTH}; is it recursive?")
        callee = FunctionCompiler(function.function, self.context, self.depth + 1)
        try:
            bound = callee.signature.bind(*arguments, **keywords)
        except TypeError as error:
            raise CompilationError(f"{function.function.__name__}(): {error}") from None
        bound.apply_defaults()
        callee.env.update(bound.arguments)
        callee.return_name = self.context.name_hint  # the name the call's value is bound to, if any
        call_site = self.builder.location
        try:
            callee.statements(callee.definition.body)
        except FunctionReturn as returned:
            return returned.value
        except CompilationError as error:
            raise error.called_from(call_site) from None
        return None

    def declare_parameters(self, parameters: tuple[Parameter, ...]) -> None:
        """IR parameters for every launch value; a tensor's name is bound to its global view, a constexpr's
        to its Python value."""
        declared: dict[str, dict[str, Var]] = {parameter.name: {} for parameter in parameters}
        for flat in flat_parameters(parameters):
            declare = self.builder.pointer_param if flat.kind == "pointer" else self.builder.scalar_param
            declared[flat.owner][flat.name] = declare(flat.name, flat.dtype, flat.divisibility)
        for parameter in parameters:
            name = parameter.name
            if isinstance(parameter, TensorParameter):
                self.env[name] = self.tensor_view(parameter, declared[name])
            elif isinstance(parameter, ConstexprParameter):
                self.env[name] = parameter.value
            else:
                self.env[name] = declared[name][name]

    def tensor_view(self, tensor: TensorParameter, variables: dict[str, Var]) -> Var:
        name, dims = tensor.name, range(tensor.rank)
        return self.builder.emit_output(
            GlobalView,
            name,
            pointer=variables[name],
            shape=tuple(variables[f"{name}_size{dim}"] for dim in dims),
            strides=tuple(variables.get(f"{name}_stride{dim}", Const(1)) for dim in dims),
        )

    # names

    def lookup(self, name: str, node: ast.AST) -> object:
        if name in self.env:
            return self.env[name]
        if name in self.hidden:
            raise CompilationError(
                f"'{name}' is defined inside the loop or branch at line {self.hidden[name]} "
                "and cannot be used after it; define it before"
            )
        captures = self.context.captures
        value = captures.read_cell(self.cells[name]) if name in self.cells else ABSENT
        if value is ABSENT:
            value = captures.read_global(self.function.__globals__, name)
        if value is not ABSENT:
            return value
        if hasattr(python_builtins, name):
            return getattr(python_builtins, name)
        raise CompilationError(f"name '{name}' is not defined")

    def assign(self, name: str, value: object) -> None:
        if name in self.loop_variables:
            raise CompilationError(f"cannot assign to the loop variable '{name}'")
        if self.updates_in_place(name):
            self.update_outer(name, value)
            return
        self.hidden.pop(name, None)
        if is_ir(value) and isinstance(value.type, ScalarType) and not isinstance(value, Var):
            value = self.builder.emit_output(LetScalar, name, value=value)  # a variable is bound as it is
        if is_ir(value) and value.uid not in self.owner:
            self.owner[value.uid] = name
        self.env[name] = value

    def declare_scalar(self, name: str, init: object) -> object:
        variable = self.builder.emit_output(DeclareScalar, name, init=init)
        self.owner[variable.uid] = name
        self.mutable.add(variable.uid)
        return variable

    def update_outer(self, name: str, value: object) -> None:
        target = self.env[name]
        if isinstance(target, tuple):
            self.update_tuple(name, target, value)
            return
        self.keep_old_value(name, target)
        if is_ir(target) and isinstance(target.type, ScalarType):
            self.builder.emit(AssignScalar(variable=target, value=literal_like(value, target)))
        elif is_ir(target) and isinstance(target.type, TileType) and target.type.scope is Scope.REGISTER:
            if not is_ir(value):
                raise CompilationError(f"cannot assign {describe_value(value)} to the tile '{name}'")
            self.builder.emit(AssignTensor(destination=target, value=value))
        else:
            raise CompilationError(
                f"'{name}' holds {describe_value(target)} and is defined outside this runtime loop "
                "or branch; it cannot be reassigned inside it"
            )

    def update_tuple(self, name: str, target: tuple, value: object) -> None:
        """Assign the tuple ``value`` to ``name``'s tuple ``target`` of variables (``make_mutable``), part by
        part; a part that is not a variable (a global tensor, a layout) must be given the same value."""
        if not isinstance(value, (tuple, list)) or len(value) != len(target):
            raise CompilationError(
                f"'{name}' holds a tuple of {len(target)} and is defined outside this runtime loop or "
                f"branch; inside it, it can only be given another tuple of {len(target)}, not "
                f"{describe_value(value)}"
            )
        for index, (part, new) in enumerate(zip(target, value)):
            if isinstance(part, tuple):
                self.update_tuple(name, part, new)
            elif is_ir(part) and isinstance(part.type, ScalarType):
                self.keep_old_value(name, part)
                self.builder.emit(AssignScalar(variable=part, value=literal_like(new, part)))
            elif is_ir(part) and isinstance(part.type, TileType) and part.type.scope is Scope.REGISTER:
                if not is_ir(new):
                    raise CompilationError(
                        f"cannot assign {describe_value(new)} to the tile {index} of '{name}'"
                    )
                self.keep_old_value(name, part)
                self.builder.emit(AssignTensor(destination=part, value=new))
            elif new is not part:
                raise CompilationError(
                    f"part {index} of '{name}' holds {describe_value(part)} and is defined outside this "
                    f"runtime loop or branch; it cannot be given {describe_value(new)} inside it"
                )

    def keep_old_value(self, name: str, target: object) -> None:
        """Before ``name``'s variable ``target`` changes in place: the names of this region that hold it
        (``current = buffer`` before ``buffer = next_load``) are given a copy of its value now. (Names from
        before the region never hold it: ``make_mutable`` gave ``name`` a variable of its own.)"""
        holders = [key for key, held in self.env.items() if key != name and holds(held, target)]
        copy = self.copy_of(name, target) if holders else None
        if copy is None:
            return
        for key in holders:
            self.env[key] = replaced(self.env[key], target, copy)

    def copy_of(self, name: str, value: object) -> object | None:
        """A new variable holding ``value``'s value now (None for what is not a scalar or register tile)."""
        if not is_ir(value):
            return None
        if isinstance(value.type, ScalarType):
            return self.builder.emit_output(LetScalar, name, value=value)
        if isinstance(value.type, TileType) and value.type.scope is Scope.REGISTER:
            copy = self.builder.emit_output(
                AllocRegister, name, layout=value.type.layout, dtype=value.type.dtype, shape=value.type.shape
            )
            self.builder.emit(AssignTensor(destination=copy, value=value))
            return copy
        return None

    def unchanged_by(self, target: ast.expr, value: object) -> object:
        """``value`` (what an unpacking assignment to ``target`` binds) with a copy of each variable that
        one of the target's names will change in place before all are bound (``a, b = b, a`` in a loop that
        updates ``a``: ``b`` must get ``a``'s old value, as in Python, where the right side is evaluated
        first)."""
        names = {node.id for node in ast.walk(target) if isinstance(node, ast.Name)}
        in_place = [self.env[name] for name in names if self.updates_in_place(name) and name in self.env]

        def unchanged(item: object) -> object:
            if isinstance(item, (tuple, list)):
                return type(item)(unchanged(part) for part in item)
            if any(holds(held, item) for held in in_place):
                return self.copy_of("old", item) or item
            return item

        return unchanged(value) if in_place else value

    def updates_in_place(self, name: str) -> bool:
        """Whether assigning ``name`` now changes its variable in place (an outer name of a runtime
        region)."""
        return bool(self.regions) and name in self.regions[-1].outer_names

    # runtime regions

    def prepare_region(self, body: list[ast.stmt]) -> None:
        """Before a runtime loop or branch: every outer name that ``body`` reassigns gets a variable of its
        own, declared here, so that the region can assign it."""
        for name in sorted(assigned_names(body) & self.env.keys()):
            self.make_mutable(name, self.env[name])

    def make_mutable(self, name: str, value: object) -> None:
        if isinstance(value, tuple):
            self.env[name] = self.mutable_parts(name, value)
        elif python_scalar(value):
            self.env[name] = self.declare_scalar(name, constant(value))
        elif not is_ir(value):
            return
        elif value.uid in self.mutable and self.owner.get(value.uid) == name:
            # already ``name``'s variable, which an enclosing loop may carry: it must stay the one this
            # region assigns (a new one would drop the update), so the other names that hold it
            # (``current = buffer`` before ``if ...: buffer = next_load``) keep a copy of its value instead
            self.keep_old_value(name, value)
        elif self.owns_mutable(name, value):
            return
        elif isinstance(value.type, ScalarType):
            self.env[name] = self.declare_scalar(name, value)
        elif isinstance(value.type, TileType) and value.type.scope is Scope.REGISTER:
            self.env[name] = self.own_copy(name, value)

    def own_copy(self, name: str, tile: object) -> object:
        """A copy of the register ``tile`` that ``name`` owns and may change in place."""
        copy = self.copy_of(name, tile)
        self.owner[copy.uid] = name
        self.mutable.add(copy.uid)
        return copy

    def mutable_parts(self, name: str, value: tuple) -> tuple:
        """A tuple that ``name`` holds, with a variable of ``name``'s own for each part that a region may
        change (scalars and register tiles, in nested tuples too), so that the region can assign the tuple
        part by part (``update_tuple``)."""
        parts = []
        for part in value:
            if isinstance(part, tuple):
                parts.append(self.mutable_parts(name, part))
            elif python_scalar(part):
                parts.append(self.declare_scalar(name, constant(part)))
            elif is_ir(part) and part.uid in self.mutable and self.owner.get(part.uid) == name:
                self.keep_old_value(name, part)  # the variable an enclosing region assigns: it stays
                parts.append(part)
            elif is_ir(part) and isinstance(part.type, ScalarType):
                parts.append(self.declare_scalar(name, part))
            elif is_ir(part) and isinstance(part.type, TileType) and part.type.scope is Scope.REGISTER:
                parts.append(self.own_copy(name, part))
            else:
                parts.append(part)
        return tuple(parts)

    def owns_mutable(self, name: str, value: object) -> bool:
        """Whether ``name`` may change ``value`` in place: the value is ``name``'s own, already mutable, or
        made mutable now (a register tile, or a ``let`` of this body turned into a ``declare``). A value that
        another name or a tuple also holds is not changed in place: they must keep seeing the old value."""
        if self.owner.get(value.uid) != name:
            return False
        if any(holds(other, value) for key, other in self.env.items() if key != name):
            return False
        if value.uid in self.mutable:
            return True
        if isinstance(value.type, ScalarType) and not self.builder.make_mutable(value):
            return False
        self.mutable.add(value.uid)
        return True

    def leave_region(self, region: Region) -> None:
        self.regions.pop()
        for name in list(self.env):
            if name not in region.outer_names:
                del self.env[name]
                self.hidden[name] = region.line

    def region_statements(
        self, body: list[ast.stmt], region_line: int, broke: Var | None = None, guard_all: bool | None = None
    ) -> None:
        """Compile a runtime branch (``guard_all`` None) or loop body (``broke``: its break flag, if any)."""
        region = Region(frozenset(self.env), region_line)
        self.regions.append(region)
        try:
            if guard_all is None:
                self.statements(body)
            else:
                self.runtime_loop_body(body, broke, guard_all)
        finally:
            self.leave_region(region)

    # statements

    def statements(self, body: list[ast.stmt]) -> None:
        for position, node in enumerate(body):
            self.statement(node)
            if self.statements_then_guard(body, position):
                return

    def statement(self, node: ast.stmt) -> None:
        handler = self._statement_handlers.get(type(node))
        if handler is None:
            raise CompilationError(
                f"unsupported Python statement in a kernel: {type(node).__name__}", self.location(node)
            )
        self.builder.location = self.location(node)
        self.bound = None
        try:
            handler(self, node)
        except CompilationError as error:
            if error.location is None:
                raise CompilationError(error.message, self.location(node)) from None
            raise

    def assign_statement(self, node: ast.Assign) -> None:
        targets = node.targets
        if len(targets) == 1 and isinstance(targets[0], ast.Name):
            self.bound = (node.value, targets[0].id)
        value = self.evaluate(node.value)
        for target in targets:
            self.bind_target(target, value)

    def bind_target(self, target: ast.expr, value: object) -> None:
        if isinstance(target, ast.Name):
            self.assign(target.id, value)
        elif isinstance(target, (ast.Tuple, ast.List)):
            if is_ir(value) or not isinstance(value, (tuple, list)) or len(value) != len(target.elts):
                raise CompilationError(f"cannot unpack {describe_value(value)} into {len(target.elts)} names")
            value = self.unchanged_by(target, value)
            for element, item in zip(target.elts, value):
                self.bind_target(element, item)
        else:
            raise CompilationError(
                "only names can be assigned in a kernel (tiles are written with tv.store_*)"
            )

    def annotated_assign_statement(self, node: ast.AnnAssign) -> None:
        if node.value is None or not isinstance(node.target, ast.Name):
            raise CompilationError("an annotated assignment in a kernel needs a name and a value")
        self.assign_statement(ast.Assign(targets=[node.target], value=node.value))

    def augmented_assign_statement(self, node: ast.AugAssign) -> None:
        if not isinstance(node.target, ast.Name):
            raise CompilationError("only names can be assigned in a kernel")
        current = ast.copy_location(ast.Name(node.target.id, ast.Load()), node.target)
        combined = ast.copy_location(ast.BinOp(left=current, op=node.op, right=node.value), node)
        self.bound = (combined, node.target.id)
        self.assign(node.target.id, self.evaluate(combined))

    def expression_statement(self, node: ast.Expr) -> None:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return  # a docstring
        self.evaluate(node.value)

    def pass_statement(self, node: ast.Pass) -> None:
        return

    def return_statement(self, node: ast.Return) -> None:
        if self.regions:
            raise CompilationError("return inside a runtime loop or branch; assign a variable instead")
        if self.depth == 0:
            if node.value is not None or node is not self.definition.body[-1]:
                raise CompilationError("a kernel returns nothing; write results with tv.store_global")
            return
        if node.value is None:
            raise FunctionReturn(None)
        self.bound = (node.value, self.return_name)
        raise FunctionReturn(self.evaluate(node.value))

    def assert_statement(self, node: ast.Assert) -> None:
        condition = self.evaluate(node.test)
        if is_ir(condition):
            raise CompilationError("assert needs a compile-time condition (of constexprs)")
        if not condition:
            message = self.evaluate(node.msg) if node.msg is not None else "assertion failed"
            raise CompilationError(str(message))

    _statement_handlers: ClassVar[dict[type, Callable]] = {
        ast.Assign: assign_statement, ast.AnnAssign: annotated_assign_statement,
        ast.AugAssign: augmented_assign_statement, ast.Expr: expression_statement, ast.Pass: pass_statement,
        ast.Return: return_statement, ast.Assert: assert_statement, ast.If: ControlFlow.if_statement,
        ast.For: ControlFlow.for_statement, ast.While: ControlFlow.while_statement,
        ast.Break: LoopExits.break_statement, ast.Continue: LoopExits.continue_statement,
    }  # fmt: skip


def holds(container: object, value: object) -> bool:
    """Whether ``container`` is ``value`` or a tuple or list with ``value`` inside it."""
    if container is value:
        return True
    return isinstance(container, (tuple, list)) and any(holds(item, value) for item in container)


def replaced(container: object, old: object, new: object) -> object:
    """``container`` with ``new`` wherever it holds ``old`` (itself, or inside tuples and lists)."""
    if container is old:
        return new
    if isinstance(container, (tuple, list)):
        return type(container)(replaced(item, old, new) for item in container)
    return container


def assigned_names(body: list[ast.stmt]) -> set[str]:
    """Names that ``body`` assigns anywhere inside it (nested loops and branches included)."""
    names = set()
    for statement in body:
        for node in ast.walk(statement):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return names


def compile_kernel(
    function: Callable,
    parameters: tuple[Parameter, ...],
    num_threads: int,
    captures: Captures | None = None,
    max_registers: int | None = None,
) -> Program:
    """Compile ``function`` for the described launch values (tensors, scalars, constexprs), given in the
    order of its signature; ``captures``, if given, records the globals and closure variables it read."""
    context = KernelContext(ProgramBuilder(function.__name__, num_threads, max_registers))
    if captures is not None:
        context.captures = captures
    return FunctionCompiler(function, context).compile_kernel(parameters)
