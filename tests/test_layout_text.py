"""The generic layout text grammar: literals, calls, method chains, arithmetic, errors with positions."""

from __future__ import annotations

import pytest

from tilevm.layout import LayoutError, parse, register_constructor, spatial


def _echo(*args, **kwargs):
    return args, kwargs


class _Chain:
    """A value whose class allows one layout method, to test the allow-list."""

    __layout_methods__ = ("twice",)

    def twice(self):
        return "twice"

    def secret(self):
        return "secret"


register_constructor("test_echo", _echo)
register_constructor("test_chain", _Chain)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("test_echo()", ((), {})),
        ("test_echo(1, -2)", ((1, -2), {})),
        ("test_echo((), (1,), (1, 2), [], [3, 4,])", (((), (1,), (1, 2), [], [3, 4]), {})),
        ("test_echo((7))", ((7,), {})),
        ("test_echo(1, key=[2, 3], other=-4)", ((1,), {"key": [2, 3], "other": -4})),
        ("test_echo(2 + 3 * 4, (2 + 3) * 4, 7 // 2, 1 - 2 - 3, --5)", ((14, 20, 3, -4, 5), {})),
        ("  test_echo(\n  1 ,\n )  ", ((1,), {})),
    ],
)
def test_generic_expressions(text, value):
    assert parse(text) == value


def test_method_calls_follow_the_allow_list():
    assert parse("test_chain().twice()") == "twice"
    with pytest.raises(LayoutError, match=r"_Chain has no layout method 'secret' at line 1, column 14"):
        parse("test_chain().secret()")
    with pytest.raises(LayoutError, match=r"int has no layout method 'bit_length' at line 1, column 3"):
        parse("3.bit_length()")


def test_star_is_python_multiplication():
    assert parse("spatial(2) * spatial(4)") == spatial(8)
    assert parse("2 * 3") == 6


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("test_echo(1", r"unexpected end of layout text at line 1, column 12: 'test_echo\(1'"),
        ("test_echo(1 2)", r"syntax error in layout text at line 1, column 13"),
        ("test_echo(1)\n  ) ", r"syntax error in layout text at line 2, column 3"),
        ("nope(1)", r"unknown layout constructor 'nope' \(known: .*spatial.*\) at line 1, column 1"),
        ("test_echo(1, spatial)", r"'spatial' is a layout constructor; call it: .* at line 1, column 14"),
        ("test_echo(x=1, x=2)", r"keyword 'x' given twice at line 1, column 16"),
        ("test_echo(1) + 1", r"arithmetic on a tuple at line 1, column 1"),
        ("test_echo(1 // 0)", r"cannot evaluate: integer division or modulo by zero at line 1, column 11"),
        ("test_echo(1, spatial(0))", r"spatial needs positive integer sizes, got \[0\] at line 1, column 14"),
        ("spatial(4) * 2", r"cannot evaluate: .* at line 1, column 1"),
        ("", r"unexpected end of layout text at line 1, column 1"),
    ],
)
def test_errors_name_the_position(text, message):
    with pytest.raises(LayoutError, match=message):
        parse(text)


def test_bare_names_are_errors_and_integer_arithmetic_is_python():
    with pytest.raises(LayoutError, match=r"unknown name 'n': .* at line 1, column 11"):
        parse("test_echo(n)")
    assert parse("test_echo(10 * 3, 10 // 3 + 1, 10 - 3)") == ((30, 4, 7), {})


def test_a_name_registers_once():
    register_constructor("test_echo", _echo)  # the same function again is fine (a reloaded module)
    with pytest.raises(LayoutError, match="layout constructor 'test_echo' is already registered"):
        register_constructor("test_echo", lambda: None)
