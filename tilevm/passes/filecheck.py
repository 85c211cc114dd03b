"""A FileCheck-style checker for pass tests: check lines matched in order against a printed program.

Check lines (anything before ``CHECK`` on a line, like ``#``, is ignored; so are lines without a check):

- ``CHECK: pattern``: the pattern occurs at or after the end of the previous match;
- ``CHECK-NEXT: pattern``: on the line right after the previous match's line;
- ``CHECK-SAME: pattern``: on the previous match's line, after it;
- ``CHECK-NOT: pattern``: nowhere between the previous match and the next one (or the end of the text);
- ``CHECK-EMPTY:``: the line after the previous match's is empty.

A pattern matches a substring of a line; runs of spaces match runs of spaces. ``%name`` matches any variable
the first time and binds ``name`` to it, so later uses of ``%name`` match only that variable: checks
survive the printer's renaming (``%x`` may print as ``%x.1``). Two names never bind one variable. ``{{re}}``
is a regular expression.

>>> text = '''%a.1: int32 = declare(init=3)
... %b: int32 = declare(init=%a.1 + 1)'''
>>> filecheck(text, '''
...     CHECK: %A: int32 = declare(init=3)
...     CHECK-NEXT: declare(init=%A + {{[0-9]+}})
...     CHECK-NOT: %B
... ''')
>>> try:
...     filecheck(text, "CHECK: %A: int32 = declare\\nCHECK-NEXT: init=%A * 2")
... except FileCheckError as error:
...     print(str(error).splitlines()[0])
check line 2, CHECK-NEXT: init=%A * 2
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from tilevm.ir import Program, parse, print_program, verify

__all__ = ["FileCheckError", "check_pass", "filecheck"]

_CHECK_LINE = re.compile(r"\b(CHECK(?:-[A-Z]+)?):(.*)$")
_KINDS = ("CHECK", "CHECK-NEXT", "CHECK-SAME", "CHECK-NOT", "CHECK-EMPTY")
_TOKEN = re.compile(r"\{\{(.*?)\}\}|%([A-Za-z0-9_][A-Za-z0-9_.]*)|([ \t]+)")
_NAME_TAIL = "(?![A-Za-z0-9_.])"
_CONTEXT_BEFORE, _CONTEXT_AFTER = 5, 15


class FileCheckError(AssertionError):
    """A check line that did not hold; the message shows the check, where it was looked for, and the text."""


@dataclass(frozen=True)
class _Check:
    kind: str
    pattern: str
    number: int  # the line of the check text, from 1

    def __str__(self) -> str:
        return f"check line {self.number}, {self.kind}: {self.pattern}"


@dataclass(frozen=True)
class _Match:
    line: int
    start: int
    end: int
    bindings: dict[str, str]


def filecheck(text: str, checks: str) -> None:
    """Raise ``FileCheckError`` unless the check lines of ``checks`` hold in ``text`` (see the module doc)."""
    parsed = _parse_checks(checks)
    if not parsed:
        raise FileCheckError("no CHECK lines in the checks")
    _Checker(text.splitlines()).run(parsed)


def check_pass(pass_function: Callable[[Program], Program], source: str, checks: str) -> Program:
    """Parse ``source`` (Tile IR text), run ``pass_function`` on it, verify the result and ``filecheck`` its
    text against ``checks``; return the result."""
    result = verify(pass_function(verify(parse(source))))
    filecheck(print_program(result), checks)
    return result


def _parse_checks(checks: str) -> list[_Check]:
    found = []
    for number, line in enumerate(checks.splitlines(), start=1):
        match = _CHECK_LINE.search(line)
        if match is not None and match.group(1) not in _KINDS:
            raise FileCheckError(
                f"check line {number}: unknown check {match.group(1)}; use one of {', '.join(_KINDS)}"
            )
        if match is not None:
            found.append(_Check(match.group(1), match.group(2).strip(), number))
    return found


class _Checker:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.bindings: dict[str, str] = {}
        self.line, self.column = 0, 0  # where the previous match ended
        self.matched_any = False
        self.pending_nots: list[_Check] = []

    def run(self, checks: list[_Check]) -> None:
        for check in checks:
            if check.kind == "CHECK-NOT":
                self.pending_nots.append(check)
                continue
            match = self.find(check)
            self.check_nots(match.line, match.start)
            self.bindings.update(match.bindings)
            self.line, self.column, self.matched_any = match.line, match.end, True
        self.check_nots(len(self.lines), 0)

    def find(self, check: _Check) -> _Match:
        if check.kind == "CHECK":
            for line in range(self.line, len(self.lines)):
                match = self.search(check.pattern, line, self.column if line == self.line else 0, True)
                if match is not None:
                    return match
            self.fail(check, f"no match from line {self.line + 1} to the end", self.line)
        if not self.matched_any:
            self.fail(check, f"{check.kind} needs a match before it", 0)
        if check.kind == "CHECK-SAME":
            where = self.line, self.column
        else:
            where = self.line + 1, 0
            if where[0] >= len(self.lines):
                self.fail(check, f"the text ends after line {self.line + 1}", self.line)
        if check.kind == "CHECK-EMPTY":
            if self.lines[where[0]].strip():
                self.fail(check, f"line {where[0] + 1} is not empty", where[0])
            return _Match(where[0], 0, 0, {})
        match = self.search(check.pattern, where[0], where[1], True)
        if match is None:
            self.fail(check, f"it must match on line {where[0] + 1}", where[0])
        return match

    def search(self, pattern: str, line: int, start: int, bind: bool) -> _Match | None:
        regex, new_names = _compile(pattern, self.bindings, bind)
        text = self.lines[line]
        taken = set(self.bindings.values())
        for found in regex.finditer(text, start):
            bound = {name: found.group(group) for name, group in new_names.items()}
            # One variable per name and one name per variable: %A and %B never match the same %x.
            if len(set(bound.values())) == len(bound) and not taken & set(bound.values()):
                return _Match(line, found.start(), found.end(), bound)
        return None

    def check_nots(self, line: int, column: int) -> None:
        """No pending CHECK-NOT matches between the previous match and (line, column)."""
        for check in self.pending_nots:
            for index in range(self.line, min(line + 1, len(self.lines))):
                start = self.column if index == self.line else 0
                match = self.search(check.pattern, index, start, False)
                if match is not None and (index < line or match.end <= column):
                    self.fail(check, f"it matches on line {index + 1}, where it must not", index)
        self.pending_nots = []

    def fail(self, check: _Check, reason: str, line: int) -> NoReturn:
        variables = ", ".join(f"%{name} = %{value}" for name, value in sorted(self.bindings.items()))
        first, last = max(0, line - _CONTEXT_BEFORE), min(len(self.lines), line + _CONTEXT_AFTER)
        excerpt = "\n".join(
            f"{'>>' if index == line else '  '} {index + 1:4} | {self.lines[index]}"
            for index in range(first, last)
        )
        raise FileCheckError(
            f"{check}\n{reason}\nvariables: {variables or 'none bound'}\n"
            f"text (lines {first + 1} to {last}):\n{excerpt}"
        )


def _compile(pattern: str, bindings: dict[str, str], bind: bool) -> tuple[re.Pattern, dict[str, str]]:
    """The regular expression of a pattern, and the group of each name it binds (name -> group)."""
    parts, new_names, position = [], {}, 0
    for token in _TOKEN.finditer(pattern):
        parts.append(re.escape(pattern[position : token.start()]))
        position = token.end()
        regex, name, spaces = token.groups()
        if regex is not None:
            parts.append(f"(?:{regex})")
        elif spaces is not None:
            parts.append(r"[ \t]+")
        elif name in bindings:
            parts.append(f"%{re.escape(bindings[name])}{_NAME_TAIL}")
        elif name in new_names:
            parts.append(f"%(?P={new_names[name]}){_NAME_TAIL}")
        elif bind:
            new_names[name] = f"name{len(new_names)}"
            parts.append(f"%(?P<{new_names[name]}>[A-Za-z0-9_][A-Za-z0-9_.]*){_NAME_TAIL}")
        else:
            parts.append(f"%[A-Za-z0-9_][A-Za-z0-9_.]*{_NAME_TAIL}")
    parts.append(re.escape(pattern[position:]))
    return re.compile("".join(parts)), new_names
