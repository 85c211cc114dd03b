"""A kernel's or a ``tv.func``'s Python source, parsed once per function: compiling a kernel again (another
specialization) or inlining a helper again reads no file and parses nothing.

>>> def twice(x):
...     return x * 2
>>> parsed = parse_function(twice)
>>> parsed.definition.name, parse_function(twice) is parsed
('twice', True)
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from types import CellType, CodeType

from tilevm.errors import CompilationError

__all__ = ["ParsedFunction", "closure_cells", "parse_function", "signature_of"]


@dataclass(frozen=True)
class ParsedFunction:
    """The ``def`` of a function's source, and where it is: source locations are computed from these."""

    definition: ast.FunctionDef
    file: str
    first_line: int
    #: the columns that dedenting removed (a function nested in a class or another function)
    indent: int


# Keyed by code object: a function defined again (a kernel inside a test function, say) shares its source.
_parsed: weakref.WeakKeyDictionary[CodeType, ParsedFunction] = weakref.WeakKeyDictionary()
_signatures: weakref.WeakKeyDictionary[Callable, inspect.Signature] = weakref.WeakKeyDictionary()


def parse_function(function: Callable) -> ParsedFunction:
    """The parsed source of ``function`` (cached per code object; the AST is shared, never modified)."""
    code = function.__code__
    parsed = _parsed.get(code)
    if parsed is None:
        parsed = _parsed[code] = _parse(function)
    return parsed


def _parse(function: Callable) -> ParsedFunction:
    try:
        lines, first_line = inspect.getsourcelines(function)
    except OSError:
        raise CompilationError(
            f"the source of {function.__qualname__} cannot be read (defined in "
            f"{function.__code__.co_filename}): tilevm compiles a kernel or tv.func from its source, so "
            "define it in a .py file, or compile() its text under a file name whose lines are in "
            "linecache.cache (as IPython does)"
        ) from None
    source = "".join(lines)
    dedented = textwrap.dedent(source)
    indent = len(source.splitlines()[0]) - len(dedented.splitlines()[0])
    definition = next(node for node in ast.parse(dedented).body if isinstance(node, ast.FunctionDef))
    return ParsedFunction(definition, inspect.getsourcefile(function) or "<unknown>", first_line, indent)


def signature_of(function: Callable) -> inspect.Signature:
    """``function``'s signature, its annotations evaluated (they may be strings: PEP 563); cached."""
    signature = _signatures.get(function)
    if signature is None:
        signature = _signatures[function] = inspect.signature(function, eval_str=True)
    return signature


def closure_cells(function: Callable) -> dict[str, CellType]:
    """The cells of the enclosing functions' variables that ``function`` reads, by name."""
    return dict(zip(function.__code__.co_freevars, function.__closure__ or ()))
