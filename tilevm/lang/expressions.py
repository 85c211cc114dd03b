"""Evaluating the expressions of a kernel's body: Python values fold at compile time, IR values build IR."""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import ClassVar

from tilevm.errors import CompilationError, SourceLocation
from tilevm.ir import Const, GlobalType, TileType
from tilevm.lang import compute_builtins, math_builtins, memory_builtins
from tilevm.lang.control import tile_range
from tilevm.lang.functions import DeviceFunction, kernel_meaning
from tilevm.lang.operators import (
    BINARY_OPERATORS,
    COMPARE_OPERATORS,
    UNARY_OPERATORS,
    binary_operation,
    unary_operation,
)
from tilevm.lang.values import describe_value, from_numpy, is_ir

__all__ = ["ExpressionEvaluator"]

#: functions that accept kernel values (a host function marked with ``in_kernel`` has its own meaning too)
KERNEL_FUNCTIONS: dict[Callable, Callable] = {
    getattr(module, name): getattr(module, name)
    for module in (memory_builtins, compute_builtins, math_builtins)
    for name in module.__all__
}
KERNEL_FUNCTIONS[tile_range] = tile_range


class ExpressionEvaluator:
    """Mixed into the front end; needs ``lookup(name, node)``, ``location(node)``, ``context``, ``builder``
    and ``bound``, the expression whose value the statement binds to a name (with that name)."""

    def evaluate(self, node: ast.expr) -> object:
        handler = self._expression_handlers.get(type(node))
        if handler is None:
            raise CompilationError(
                f"unsupported Python expression in a kernel: {type(node).__name__}", self.location(node)
            )
        previous, previous_name = self.builder.location, self.context.name_hint
        self.builder.location = self.location(node)
        # only the value that the statement binds to a name gets that name; its operands are temporaries
        self.context.name_hint = self.bound[1] if self.bound is not None and self.bound[0] is node else None
        try:
            return handler(self, node)
        except CompilationError as error:
            if error.location is None:
                raise CompilationError(error.message, self.location(node)) from None
            raise
        finally:
            self.builder.location, self.context.name_hint = previous, previous_name

    def constant_node(self, node: ast.Constant) -> object:
        return node.value

    def name_node(self, node: ast.Name) -> object:
        return from_numpy(self.lookup(node.id, node))  # a global or captured np.int64 is a Python int

    def attribute_node(self, node: ast.Attribute) -> object:
        value = self.evaluate(node.value)
        if is_ir(value):
            return self.ir_attribute(value, node.attr)
        try:
            return from_numpy(getattr(value, node.attr))
        except AttributeError as error:
            raise CompilationError(str(error)) from None

    def ir_attribute(self, value: object, attribute: str) -> object:
        value_type = value.type
        if attribute == "dtype":
            return value_type.dtype
        if isinstance(value_type, TileType) and attribute in ("shape", "rank"):
            return getattr(value_type, attribute)
        if isinstance(value_type, TileType) and attribute == "T":
            if value_type.rank != 2:
                raise CompilationError(
                    f"'.T' of {describe_value(value)}; use tv.permute(tile, dims) for rank != 2"
                )
            return compute_builtins.permute(value, (1, 0))
        if isinstance(value_type, GlobalType) and attribute in ("shape", "strides", "rank"):
            if attribute == "rank":
                return value_type.rank
            extents = getattr(value_type, attribute)
            return tuple(extent.value if isinstance(extent, Const) else extent for extent in extents)
        raise CompilationError(f"{describe_value(value)} has no attribute '{attribute}'")

    def subscript_node(self, node: ast.Subscript) -> object:
        value, index = self.evaluate(node.value), self.evaluate(node.slice)
        if is_ir(value):
            raise CompilationError(
                "indexing a kernel value is not supported; use load_global/slice_shared windows"
            )
        try:
            return value[index]
        except (IndexError, KeyError, TypeError) as error:
            raise CompilationError(f"{type(error).__name__}: {error}") from None

    def slice_node(self, node: ast.Slice) -> slice:
        parts = [
            None if part is None else self.evaluate(part) for part in (node.lower, node.upper, node.step)
        ]
        return slice(*parts)

    def binary_node(self, node: ast.BinOp) -> object:
        op, python_function = BINARY_OPERATORS[type(node.op)]
        lhs, rhs = self.evaluate(node.left), self.evaluate(node.right)
        if not is_ir(lhs) and not is_ir(rhs):
            return self.fold(python_function, lhs, rhs)
        return binary_operation(op, lhs, rhs)

    def unary_node(self, node: ast.UnaryOp) -> object:
        op, python_function = UNARY_OPERATORS[type(node.op)]
        operand = self.evaluate(node.operand)
        if not is_ir(operand):
            return self.fold(python_function, operand)
        return unary_operation(op, operand)

    def compare_node(self, node: ast.Compare) -> object:
        result, lhs = None, self.evaluate(node.left)
        for comparison, right in zip(node.ops, node.comparators):
            if type(comparison) not in COMPARE_OPERATORS:
                raise CompilationError(f"unsupported comparison {type(comparison).__name__} in a kernel")
            op, python_function = COMPARE_OPERATORS[type(comparison)]
            rhs = self.evaluate(right)
            if is_ir(lhs) or is_ir(rhs):
                step = binary_operation(op, lhs, rhs)
            else:
                step = self.fold(python_function, lhs, rhs)
            result = step if result is None else self.logical("and", result, step)
            lhs = rhs
        return result

    def bool_node(self, node: ast.BoolOp) -> object:
        op = "and" if isinstance(node.op, ast.And) else "or"
        result = self.evaluate(node.values[0])
        for value_node in node.values[1:]:
            if not is_ir(result) and (not result if op == "and" else result):
                return result  # Python's short circuit, decided at compile time
            result = self.logical(op, result, self.evaluate(value_node))
        return result

    def logical(self, op: str, lhs: object, rhs: object) -> object:
        if not is_ir(lhs) and not is_ir(rhs):
            return (lhs and rhs) if op == "and" else (lhs or rhs)
        for side in (lhs, rhs):
            if is_ir(side) and side.type.dtype.kind != "bool":
                raise CompilationError(
                    f"'{op}' needs bool operands, got {describe_value(side)}; compare first"
                )
        return binary_operation(op, lhs, rhs)

    def if_expression_node(self, node: ast.IfExp) -> object:
        condition = self.evaluate(node.test)
        if is_ir(condition):
            raise CompilationError(
                "'a if c else b' needs a compile-time condition; use tv.where for kernel values"
            )
        return self.evaluate(node.body if condition else node.orelse)

    def sequence_node(self, node: ast.Tuple | ast.List) -> object:
        elements = []
        for element in node.elts:
            if isinstance(element, ast.Starred):
                elements.extend(self.evaluate(element.value))
            else:
                elements.append(self.evaluate(element))
        return tuple(elements) if isinstance(node, ast.Tuple) else elements

    def call_node(self, node: ast.Call) -> object:
        function = self.evaluate(node.func)
        arguments = self.sequence_node(ast.Tuple(elts=node.args))
        keywords = {}
        for keyword in node.keywords:
            if keyword.arg is None:
                raise CompilationError("'**' arguments are not supported in a kernel")
            keywords[keyword.arg] = self.evaluate(keyword.value)
        if isinstance(function, DeviceFunction):
            return self.inline(function, arguments, keywords)
        kernel_function = KERNEL_FUNCTIONS.get(function) if _hashable(function) else None
        kernel_function = kernel_function or kernel_meaning(function)
        if kernel_function is not None:
            return self.call_kernel_function(kernel_function, arguments, keywords)
        if any(is_ir(value) for value in (*arguments, *keywords.values())):
            raise CompilationError(
                f"{getattr(function, '__name__', function)!s}() cannot take kernel values; "
                "only tilevm's functions (tv.load_global, tv.exp, ...) can"
            )
        return self.fold(function, *arguments, **keywords)

    def call_kernel_function(self, function: Callable, arguments: tuple, keywords: dict) -> object:
        try:
            return function(*arguments, **keywords)
        except TypeError as error:
            raise CompilationError(f"tv.{function.__name__}: {error}") from None

    def fold(self, function: Callable, *arguments: object, **keywords: object) -> object:
        """Run a Python function on compile-time values, reporting its exception at the kernel's line."""
        try:
            return function(*arguments, **keywords)
        except CompilationError:
            raise
        except Exception as error:
            raise CompilationError(f"{type(error).__name__}: {error}") from None

    _expression_handlers: ClassVar[dict[type, Callable]] = {
        ast.Constant: constant_node, ast.Name: name_node, ast.Attribute: attribute_node,
        ast.Subscript: subscript_node, ast.Slice: slice_node, ast.BinOp: binary_node,
        ast.UnaryOp: unary_node, ast.Compare: compare_node, ast.BoolOp: bool_node,
        ast.IfExp: if_expression_node, ast.Tuple: sequence_node, ast.List: sequence_node,
        ast.Call: call_node,
    }  # fmt: skip

    def location(self, node: ast.AST) -> SourceLocation:
        raise NotImplementedError


def _hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True
