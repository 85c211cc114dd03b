"""Helpers of the SIMT interpreter's tests: Thread IR text with source locations, run on torch tensors."""

from __future__ import annotations

import pytest

from tilevm.ir import Program, parse, verify
from tilevm.ir.thread import THREAD_IR
from tilevm.runtime.cpu import ExecutionError, execute

__all__ = ["assert_error_at", "program", "run"]


def program(text: str) -> Program:
    """Parse and verify Thread IR text, giving each instruction the location ``k.py:<its line>`` (the first
    line is line 1), so that tests can check where errors are reported."""
    located = []
    for number, line in enumerate(text.strip("\n").splitlines(), start=1):
        statement = line.strip()
        if statement and not statement.startswith(("}", "kernel")):
            line = f'{line}  # loc("k.py", {number}, 0)'
        located.append(line)
    return verify(parse("\n".join(located), THREAD_IR), THREAD_IR)


def run(text: str, arguments: list[object], grid: tuple[int, ...] = (1,), **options: object) -> Program:
    """Parse ``text`` and run it; returns the program."""
    parsed = program(text)
    execute(parsed, arguments, grid, **options)
    return parsed


def assert_error_at(
    text: str, arguments: list[object], line: int, message: str, grid: tuple[int, ...] = (1,)
) -> None:
    """Running ``text`` raises an ``ExecutionError`` at ``k.py:<line>`` whose message matches ``message``."""
    with pytest.raises(ExecutionError, match=message) as caught:
        run(text, arguments, grid)
    assert caught.value.location is not None, caught.value
    assert (caught.value.location.file, caught.value.location.line) == ("k.py", line), str(caught.value)
