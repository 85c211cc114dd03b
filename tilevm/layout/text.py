"""The text form of layouts: one generic grammar, evaluated through a registry of constructors.

Each layout kind registers its top-level names (``spatial``, ``shared``, ``swizzle``, ...) with
:func:`register_constructor`; method chains call methods the value's class allows in ``__layout_methods__``;
``*`` is Python's ``*``; ``+ - * //`` on integers are Python's operators. A name that is not a constructor
is an error (sizes in layouts are static; the IR's global tensors hold runtime sizes as IR expressions).

>>> register_constructor("pair", lambda a, b=0: (a, b))
>>> parse("pair(2 * 3, b=-1)")
(6, -1)
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lark

from tilevm.layout.errors import LayoutError

__all__ = ["parse", "register_constructor"]

_PARSER = lark.Lark(
    (Path(__file__).parent / "grammar.lark").read_text(),
    parser="lalr",
    propagate_positions=True,
    maybe_placeholders=True,
)

_CONSTRUCTORS: dict[str, Callable[..., Any]] = {}

_BINARY = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "floordiv": operator.floordiv}


def register_constructor(name: str, fn: Callable[..., Any]) -> None:
    """Make ``name(args, key=value)`` in layout text call ``fn(*args, **kwargs)``.

    Registering a name twice with different functions is an error: two modules would fight over it.

    >>> register_constructor("triple", lambda x: (x, x, x))
    >>> parse("triple(1)")
    (1, 1, 1)
    """
    known = _CONSTRUCTORS.get(name)
    # The same function reached twice (a module reloaded) is no conflict; two different ones are.
    if known is not None and _qualified(known) != _qualified(fn):
        raise LayoutError(f"layout constructor {name!r} is already registered")
    _CONSTRUCTORS[name] = fn


def _qualified(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}"


def parse(text: str) -> Any:
    """Evaluate the layout expression ``text``; errors are :class:`LayoutError` with line and column.

    >>> parse("(1, [2, -3])")
    (1, [2, -3])
    >>> parse("1 +")
    Traceback (most recent call last):
    ...
    tilevm.layout.errors.LayoutError: unexpected end of layout text at line 1, column 4: '1 +'
    """
    try:
        tree = _PARSER.parse(text)
    except lark.exceptions.UnexpectedInput as err:
        raise _syntax_error(text, err) from None
    return _Evaluator(text).eval(tree)


def _syntax_error(text: str, err: lark.exceptions.UnexpectedInput) -> LayoutError:
    token = getattr(err, "token", None)
    if isinstance(err, lark.exceptions.UnexpectedEOF) or (token is not None and token.type == "$END"):
        return LayoutError(f"unexpected end of layout text{_at(text, len(text))}: {text!r}")
    return LayoutError(f"syntax error in layout text{_at(text, err.pos_in_stream)}: {text!r}")


def _at(text: str, offset: int | None) -> str:
    """' at line L, column C' (both 1-based) for a character offset into ``text``."""
    if offset is None:
        return ""
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f" at line {line}, column {column}"


def _arithmetic_operand(value: Any) -> Any:
    """``value``, unless it is a tuple or list (Python's ``+`` and ``*`` would silently concatenate them)."""
    if isinstance(value, (tuple, list)):
        raise LayoutError(f"arithmetic on a {type(value).__name__}")
    return value


class _Evaluator:
    """Evaluates a parse tree bottom-up; each rule's meaning is one method, found by the rule's name."""

    def __init__(self, text: str) -> None:
        self.text = text

    def eval(self, node: lark.Tree | lark.Token) -> Any:
        """The value of ``node``; a failing constructor or operator is re-raised with the position."""
        rule = getattr(self, f"_{node.data}")
        try:
            return rule(node)
        except LayoutError as err:
            if getattr(err, "_positioned", False):
                raise
            raise self._error(node, str(err)) from err
        except (TypeError, ValueError, ZeroDivisionError) as err:
            raise self._error(node, f"cannot evaluate: {err}") from err

    def _error(self, node: lark.Tree, message: str) -> LayoutError:
        offset = node.meta.start_pos if not node.meta.empty else None
        return self._error_at(offset, message)

    def _error_at(self, offset: int | None, message: str) -> LayoutError:
        error = LayoutError(f"{message}{_at(self.text, offset)}: {self.text!r}")
        error._positioned = True  # the innermost node gives the position; outer nodes pass it on unchanged
        return error

    def _arguments(self, node: lark.Tree | None) -> tuple[list[Any], dict[str, Any]]:
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for child in node.children if node is not None else ():
            if isinstance(child, lark.Tree) and child.data == "keyword":
                name, value = child.children
                if str(name) in kwargs:
                    raise self._error_at(name.start_pos, f"keyword {str(name)!r} given twice")
                kwargs[str(name)] = self.eval(value)
            elif child is not None:
                args.append(self.eval(child))
        return args, kwargs

    def _int(self, node: lark.Tree) -> int:
        return int(node.children[0])

    def _name(self, node: lark.Tree) -> Any:
        name = str(node.children[0])
        if name in _CONSTRUCTORS:
            raise LayoutError(f"{name!r} is a layout constructor; call it: {name}(...)")
        raise LayoutError(f"unknown name {name!r}: layout sizes are integers")

    def _call(self, node: lark.Tree) -> Any:
        name, arguments = node.children
        fn = _CONSTRUCTORS.get(str(name))
        if fn is None:
            known = ", ".join(sorted(_CONSTRUCTORS))
            raise LayoutError(f"unknown layout constructor {str(name)!r} (known: {known})")
        args, kwargs = self._arguments(arguments)
        return fn(*args, **kwargs)

    def _method(self, node: lark.Tree) -> Any:
        receiver, name, arguments = node.children
        value = self.eval(receiver)
        allowed = getattr(type(value), "__layout_methods__", ())
        if str(name) not in allowed:
            message = f"{type(value).__name__} has no layout method {str(name)!r}"
            raise self._error_at(name.start_pos, message)
        args, kwargs = self._arguments(arguments)
        return getattr(value, str(name))(*args, **kwargs)

    def _binary(self, node: lark.Tree) -> Any:
        left, right = (_arithmetic_operand(self.eval(child)) for child in node.children)
        return _BINARY[node.data](left, right)

    _add = _sub = _mul = _floordiv = _binary

    def _neg(self, node: lark.Tree) -> Any:
        return -_arithmetic_operand(self.eval(node.children[0]))

    def _tuple(self, node: lark.Tree) -> tuple[Any, ...]:
        return tuple(self.eval(child) for child in node.children if child is not None)

    def _list(self, node: lark.Tree) -> list[Any]:
        return [self.eval(child) for child in node.children if child is not None]
