"""Errors in Tile IR text: CompilationError with the message, the line and column, and a caret."""

from __future__ import annotations

import pytest

from tilevm.errors import CompilationError
from tilevm.ir import parse

HEADER = "kernel k(%n: int32) num_threads=32 {\n"


@pytest.mark.parametrize(
    ("body", "line", "at", "message"),
    [
        ("  %x: int32 = declare(init=%m)\n}", 2, "%m", "%m is not defined"),
        ("  %x: int32 = declare(init=%n +)\n}", 2, ")", "unexpected ')'; expected %value or '(' or float"),
        ("  %x: int32 = declare(init=%n + %n + %n)\n}", 2, "+ %n)", "operators do not chain: parenthesize"),
        ("  %x: int32 = declar(init=%n)\n}", 2, "declar", "unknown instruction 'declar'"),
        ("  %x: int32 = declare(init=%n, foo=3)\n}", 2, "foo", "'declare' has no field 'foo'"),
        ("  %x: int32 = declare(init=1, init=2)\n}", 2, "init=2", "field 'init' given twice"),
        ("  %x: int32 = declare()\n}", 2, "declare", "'declare' needs field 'init'"),
        ("  %x: int32 = declare(init=[1])\n}", 2, "[1]", "expected an expression"),
        ("  %x: int3x = declare(init=1)\n}", 2, "int3x", "unknown dtype 'int3x'"),
        ("  %n: int32 = declare(init=1)\n}", 2, "%n", "%n is already defined"),
        ("  %x: int32 = sync()\n}", 2, "sync", "'sync' has no output"),
        ("  copy_async_wait(pending=1.5)\n}", 2, "1.5", "expected an integer"),
        ("  copy_async_wait(pending=none)\n}", 2, "none", "field 'pending' cannot be none"),
        ("  %x: int32 = declare(init=foo(1))\n}", 2, "foo", "unknown function 'foo'"),
        ("  %x: int32 = declare(init=cost<int32>(%n))\n}", 2, "cost", "unknown function 'cost'"),
        ("  %x: int32 = declare(init=block_index<int32>(0))\n}", 2, "block_", "is written block_index(...)"),
        ("  %x: int32 = declare(init=cast(%n))\n}", 2, "cast", "'cast' is written cast<...>(...)"),
        ("  %x: int32 = declare(init=cast<int32, 2>(%n))\n}", 2, "2>", "field 'rounding' expects a string"),
        ("  %x: int32 = declare(init=cast<int32>(%n, %n))\n}", 2, "cast", "'cast' takes 1 argument(s)"),
        ("  %x: int32 = declare(init=cast<>(%n))\n}", 2, ">(", "unexpected '>'"),
        ("  %x: int32 = declare(init=max(%n))\n}", 2, "max", "'max' takes 2 argument(s), got 1"),
        ("  %x: int32 = declare(init=block_index(%n))\n}", 2, "%n))", "expected an integer"),
        ("  %x: int32, %y: int32 = declare(init=1)\n}", 2, "declare", "'declare' defines one output, got 2"),
        ("  declare(init=1)\n}", 2, "declare", "'declare' defines one output, got 0"),
        ('  %x: int32 = declare(init=1)  # loc("a\\q", 1, 2)\n}', 2, "# loc", 'bad string "a\\q"'),
        ("  %x: int32 = declare(init=1)\n", 2, None, "unexpected end of text"),
        ("  sync() ; \n}", 2, ";", "unexpected"),
        ("  sync()\n}\n}", 4, "}", "unexpected '}'; expected end of text"),
        (
            "  for %i: int32 in range(0, 4, 1) {\n  }\n  %z: int32 = declare(init=%i)\n}",
            4,
            "%i",
            "%i is not defined",
        ),
        (
            "  %x: register<int32, [4], spatial(> = alloc_register(dtype=int32, shape=[4])\n}",
            2,
            "spatial(",
            "bad layout 'spatial(': unexpected end of layout text",
        ),
        ("  store_shared(tensor=%n, value=int32)\n}", 2, "int32", "expected an expression"),
        (
            "  atomic_global(op=add, tensor=%n, value=%n, offsets=[], dims=[])\n}",
            2,
            "add",
            "field 'op' expects a string",
        ),
    ],
)
def test_errors_point_at_the_line_and_column(body, line, at, message):
    with pytest.raises(CompilationError) as caught:
        parse(HEADER + body)
    error = caught.value
    source_line = (HEADER + body).splitlines()[line - 1]
    column = len(source_line) if at is None else source_line.index(at)  # 0-based, as in every SourceLocation
    assert message in error.message
    assert (error.location.file, error.location.line, error.location.column) == ("<tile ir>", line, column)
    excerpt, caret = str(error).splitlines()[1:3]
    assert excerpt == f"    {source_line}"
    assert caret == " " * (4 + column) + "^"


@pytest.mark.parametrize(
    ("header", "at", "message"),
    [
        ("kernel k() {", "k()", "'kernel' needs field 'num_threads'"),
        ("kernel k() num_threads=32 threads=4 {", "threads=4", "'kernel' has no field 'threads'"),
        ("kernel k() num_threads=32 target=90 {", "90", "field 'target' expects a string"),
        ("kernel k() num_threads=32 num_threads=64 {", "num_threads=64", "field 'num_threads' given twice"),
        ("kernel k() num_threads=32 shared_bytes=1.5 {", "1.5", "expected an integer"),
        ('kernel "k\\q"() num_threads=32 {', '"k', 'bad string "k\\q"'),
    ],
)
def test_header_errors_point_at_the_fact(header, at, message):
    with pytest.raises(CompilationError) as caught:
        parse(header + "\n}")
    assert message in caught.value.message
    assert (caught.value.location.line, caught.value.location.column) == (1, header.index(at))


def test_a_parameter_must_be_a_pointer_or_a_scalar():
    with pytest.raises(CompilationError, match="a parameter is a pointer or a scalar") as caught:
        parse("kernel k(%t: register<int32, [4]>) num_threads=32 {\n}")
    assert caught.value.location.line == 1
