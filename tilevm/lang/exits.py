"""``break`` and ``continue`` in a kernel, lowered by the front end to loop-carried bool flags, so that
Tile IR keeps only structured control flow (``for``, ``while``, ``if``) and needs no jump instruction.

In a runtime loop whose body breaks, a ``broke`` flag is declared before the loop and set by ``break``; a
``while`` loop's condition becomes ``condition and not broke``; a ``for`` loop keeps counting to its bound,
with its body under ``if not broke`` (the iterations left after a break do nothing). A body that continues
declares a ``continued`` flag at the start of each iteration, set by ``continue``. The statements after one
that may break or continue run under ``if not (broke or continued)``.

In a loop unrolled at compile time (``tv.static_range``, a Python sequence, a compile-time ``while``),
``break`` and ``continue`` stop or skip the unrolling; inside a runtime branch of such a loop they are an
error (the branch is decided only when the kernel runs): loop with ``range(...)`` instead.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from tilevm.errors import CompilationError
from tilevm.ir import AssignScalar, BinaryExpr, Const, Expr, Var

__all__ = ["LoopExits", "RuntimeLoop", "UnrolledLoop", "exits_of"]


@dataclass(frozen=True)
class RuntimeLoop:
    """The flags of an IR loop: None where its body has no ``break`` (or no ``continue``)."""

    broke: Var | None
    continued: Var | None


@dataclass(frozen=True)
class UnrolledLoop:
    """A loop unrolled at compile time; ``regions``: the runtime regions open when it started."""

    regions: int


class UnrolledBreak(Exception):
    """A ``break`` in a loop unrolled at compile time: stops the unrolling."""


class UnrolledContinue(Exception):
    """A ``continue`` in a loop unrolled at compile time: goes on with the next item."""


def exits_of(statements: list[ast.stmt]) -> set[type]:
    """``ast.Break`` and ``ast.Continue`` if ``statements`` hold them for the loop around them (not in a loop
    nested inside them).

    >>> body = ast.parse("if a:\\n    break\\nfor i in b:\\n    continue").body
    >>> sorted(kind.__name__ for kind in exits_of(body))
    ['Break']
    """
    found, pending = set(), list(statements)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Break, ast.Continue)):
            found.add(type(node))
        elif not isinstance(node, (ast.For, ast.While, ast.FunctionDef, ast.Lambda)):
            pending.extend(ast.iter_child_nodes(node))
    return found


def not_set(flags: list[Var]) -> Expr:
    """``not (flag or ...)``."""
    stop = flags[0]
    for flag in flags[1:]:
        stop = BinaryExpr("or", stop, flag)
    return BinaryExpr("eq", stop, Const(False))


class LoopExits:
    """Mixed into the front end: the loop stack, ``break``/``continue`` and the guards they need."""

    def broke_flag(self, body: list[ast.stmt]) -> Var | None:
        """Before an IR loop around ``body``: its ``broke`` flag, declared here, if the body breaks."""
        return self.flag("broke") if ast.Break in exits_of(body) else None

    def flag(self, name: str) -> Var:
        return self.declare_scalar(name, Const(False))

    def runtime_loop_body(self, body: list[ast.stmt], broke: Var | None, guard_all: bool) -> None:
        """Compile a loop's body in the loop's region: declares ``continued`` for the iteration, and with
        ``guard_all`` (a ``for`` that breaks) runs the whole body under ``if not broke``."""
        continued = self.flag("continued") if ast.Continue in exits_of(body) else None
        self.loops.append(RuntimeLoop(broke, continued))
        try:
            if guard_all and broke is not None:
                self.guarded(body, [broke])
            else:
                self.statements(body)
        finally:
            self.loops.pop()

    def unrolled_iteration(self, body: list[ast.stmt]) -> bool:
        """Compile one iteration of a loop unrolled at compile time; False after a ``break``."""
        self.loops.append(UnrolledLoop(len(self.regions)))
        try:
            self.statements(body)
        except UnrolledContinue:
            return True
        except UnrolledBreak:
            return False
        finally:
            self.loops.pop()
        return True

    def break_statement(self, node: ast.Break) -> None:
        self.leave_iteration("break")

    def continue_statement(self, node: ast.Continue) -> None:
        self.leave_iteration("continue")

    def leave_iteration(self, keyword: str) -> None:
        loop = self.loops[-1]
        if isinstance(loop, UnrolledLoop):
            if len(self.regions) > loop.regions:
                raise CompilationError(
                    f"{keyword} under a kernel-value condition in a loop unrolled at compile time "
                    "(tv.static_range, a Python sequence or a compile-time while); "
                    "loop with range(...) instead"
                )
            raise UnrolledBreak if keyword == "break" else UnrolledContinue
        flag = loop.broke if keyword == "break" else loop.continued
        self.builder.emit(AssignScalar(variable=flag, value=Const(True)))

    def statements_then_guard(self, body: list[ast.stmt], position: int) -> bool:
        """After ``body[position]``: if it may break or continue a runtime loop, compile the statements after
        it under a guard and return True (the body is done)."""
        if position + 1 == len(body) or not self.loops or not isinstance(self.loops[-1], RuntimeLoop):
            return False
        if not exits_of([body[position]]):
            return False
        loop = self.loops[-1]
        self.guarded(
            body[position + 1 :], [flag for flag in (loop.broke, loop.continued) if flag is not None]
        )
        return True

    def guarded(self, body: list[ast.stmt], flags: list[Var]) -> None:
        """``body`` under ``if not (flag or ...)``, as a runtime branch."""
        self.builder.location = self.location(body[0])
        self.prepare_region(body)
        with self.builder.if_then(not_set(flags)):
            self.region_statements(body, self.location(body[0]).line)
