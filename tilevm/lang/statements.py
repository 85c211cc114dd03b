"""``if``, ``for`` and ``while`` in a kernel: decided at compile time on Python values, IR control flow on
kernel values. Mixed into the front end, whose region bookkeeping these use."""

from __future__ import annotations

import ast

from tilevm.errors import CompilationError
from tilevm.ir import BinaryExpr, ScalarType
from tilevm.lang.control import TileRange, tile_range
from tilevm.lang.exits import LoopExits, not_set
from tilevm.lang.values import describe_value, index_expr, is_ir, literal_like

__all__ = ["ControlFlow"]

MAX_COMPILE_TIME_ITERATIONS = 100_000


class ControlFlow(LoopExits):
    def if_statement(self, node: ast.If) -> None:
        condition = self.evaluate(node.test)
        if not is_ir(condition):
            self.statements(node.body if condition else node.orelse)
            return
        self.expect_bool_scalar(condition, "an if condition")
        self.prepare_region([*node.body, *node.orelse])
        with self.builder.if_then(condition):
            self.region_statements(node.body, self.location(node).line)
        if node.orelse:
            with self.builder.otherwise():
                self.region_statements(node.orelse, self.location(node).line)

    def expect_bool_scalar(self, condition: object, what: str) -> None:
        if not isinstance(condition.type, ScalarType) or condition.type.dtype.kind != "bool":
            raise CompilationError(
                f"{what} must be a bool scalar, got {describe_value(condition)}; compare it"
            )

    def for_statement(self, node: ast.For) -> None:
        if node.orelse:
            raise CompilationError("for ... else is not supported in a kernel")
        iterable = self.evaluate_iterable(node.iter)
        if isinstance(iterable, TileRange):
            self.runtime_for(node, iterable)
            return
        try:
            items = list(iterable)
        except TypeError:
            raise CompilationError(f"cannot iterate over {describe_value(iterable)}") from None
        for item in items:
            self.bind_target(node.target, item)
            if not self.unrolled_iteration(node.body):
                break

    def evaluate_iterable(self, node: ast.expr) -> object:
        """``range(...)`` in a for header is an IR loop, even with constant bounds; ``tv.static_range``
        and Python sequences unroll."""
        if isinstance(node, ast.Call) and self.evaluate(node.func) is range:
            arguments = [self.evaluate(argument) for argument in node.args]
            if node.keywords or not 1 <= len(arguments) <= 3:
                raise CompilationError("range takes 1 to 3 positional arguments")
            return tile_range(*arguments)
        return self.evaluate(node)

    def runtime_for(self, node: ast.For, bounds: TileRange) -> None:
        if not isinstance(node.target, ast.Name):
            raise CompilationError("a runtime loop's variable must be a single name")
        start, stop, step = self.loop_bounds(bounds)
        name = node.target.id
        self.prepare_region(node.body)
        broke = self.broke_flag(node.body)
        with self.builder.for_range(name, start, stop, step, bounds.unroll) as variable:
            self.env_with_loop_variable(name, variable, node, broke)

    def loop_bounds(self, bounds: TileRange) -> tuple:
        anchor = next((value for value in (bounds.start, bounds.stop, bounds.step) if is_ir(value)), None)
        if anchor is None:
            if bounds.step == 0:
                raise CompilationError("range's step must not be zero")
            values = [
                index_expr(value, name)
                for value, name in zip((bounds.start, bounds.stop, bounds.step), ("start", "stop", "step"))
            ]
            return tuple(values)
        index_expr(anchor, "a loop bound")
        return tuple(literal_like(value, anchor) for value in (bounds.start, bounds.stop, bounds.step))

    def env_with_loop_variable(self, name: str, variable: object, node: ast.For, broke: object) -> None:
        """The loop variable is visible in the body only: after the loop its value is not known at compile
        time, so the name is hidden there, even if it named something before the loop."""
        self.env[name] = variable
        self.loop_variables.add(name)
        try:
            self.region_statements(node.body, self.location(node).line, broke, guard_all=True)
        finally:
            self.loop_variables.discard(name)
            self.env.pop(name, None)
            self.hidden[name] = self.location(node).line

    def while_statement(self, node: ast.While) -> None:
        if node.orelse:
            raise CompilationError("while ... else is not supported in a kernel")
        emitted = len(self.builder.bodies[-1])
        condition = self.evaluate(node.test)
        if not is_ir(condition):
            self.compile_time_while(node, condition)
            return
        if len(self.builder.bodies[-1]) != emitted:
            raise CompilationError(
                "a runtime while condition must be a scalar expression (no tile operations)"
            )
        self.prepare_region(node.body)
        broke = self.broke_flag(node.body)
        condition = self.evaluate(node.test)  # again: the names it reads may now be loop variables
        self.expect_bool_scalar(condition, "a while condition")
        if broke is not None:
            condition = BinaryExpr("and", condition, not_set([broke]))
        with self.builder.while_loop(condition):
            self.region_statements(node.body, self.location(node).line, broke, guard_all=False)

    def compile_time_while(self, node: ast.While, condition: object) -> None:
        iterations = 0
        while condition:
            iterations += 1
            if iterations > MAX_COMPILE_TIME_ITERATIONS:
                raise CompilationError(
                    f"a compile-time while loop ran over {MAX_COMPILE_TIME_ITERATIONS} times"
                )
            if not self.unrolled_iteration(node.body):
                return
            condition = self.evaluate(node.test)
            if is_ir(condition):
                raise CompilationError(
                    "this while condition became a kernel value inside the loop; make it one before the loop"
                )
