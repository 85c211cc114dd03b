"""The module globals and closure variables that compiling a kernel read, with the values it read: the
compiled program holds while each still has its value (the launcher compiles again when one changed).

Values compare by what they are: ints, bools, strings, bytes, None and tuples of them by type and value
(``BLOCK = 64`` assigned again is the same), floats by their bits (``-0.0`` is not ``0.0``, and a NaN is
itself, as constexprs are keyed); anything else by identity: a module, a ``tv.func`` (defined
again, it is another object, so the kernel compiles again with the new body), a dtype, a class. A list or a
tensor changed in place is not noticed (its identity stays): make such values launch arguments. A name read
from Python's builtins is recorded as absent from the module, so that a global defined later over it counts
as a change. Attributes read through a module (``config.BLOCK``) are not tracked, only the names themselves.

>>> namespace = {"SHAPE": (64, 2**40)}
>>> captures = Captures()
>>> captures.read_global(namespace, "SHAPE")
(64, 1099511627776)
>>> namespace["SHAPE"] = (64, int("1099511627776")); captures.unchanged()  # another object, equal
True
>>> namespace["SHAPE"] = (128, 2**40); captures.unchanged()
False
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable
from types import CellType

__all__ = ["ABSENT", "Captures"]

#: what a name not defined in a module reads as
ABSENT = object()
VALUE_TYPES = (int, bool, str, bytes, type(None))
#: the globals read from one namespace: its ``get``, the names, as many ``ABSENT``, the values read
_Group = tuple[Callable[[str, object], object], tuple[str, ...], tuple[object, ...], tuple[object, ...]]


def same(old: object, new: object) -> bool:
    """Whether ``new`` is the value ``old`` was, as ``Captures`` compares them."""
    if old is new:
        return True
    if type(old) is not type(new):
        return False
    if isinstance(old, VALUE_TYPES):
        return old == new
    if isinstance(old, (float, complex)):
        return _bits(old) == _bits(new)
    if isinstance(old, tuple):
        return len(old) == len(new) and all(same(left, right) for left, right in zip(old, new))
    return False


class Captures:
    """What a compilation read from outside the kernel's arguments (see the module docstring)."""

    def __init__(self) -> None:
        self.globals: dict[tuple[int, str], tuple[dict, str, object]] = {}
        self.cells: dict[int, tuple[CellType, object]] = {}
        #: the globals read, by namespace (``_grouped``), made at the first ``unchanged`` after a read
        self._by_namespace: list[_Group] | None = None

    def read_global(self, namespace: dict, name: str) -> object:
        """``namespace[name]`` (``ABSENT`` if it has none), recorded."""
        value = namespace.get(name, ABSENT)
        self.globals[(id(namespace), name)] = (namespace, name, value)
        self._by_namespace = None
        return value

    def read_cell(self, cell: CellType) -> object:
        """A closure variable's value (``ABSENT`` while it has none), recorded."""
        try:
            value = cell.cell_contents
        except ValueError:
            value = ABSENT
        self.cells[id(cell)] = (cell, value)
        return value

    def unchanged(self) -> bool:
        """Whether every name read still has the value it had."""
        groups = self._by_namespace
        if groups is None:
            groups = self._by_namespace = self._grouped()
        # on every launch: each namespace's names looked up and compared by identity in C (map), the
        # values compared as ``same`` does only where one is not the object it was
        for get, names, absent, values in groups:
            if not all(map(operator.is_, map(get, names, absent), values)):
                if not self._globals_unchanged():
                    return False
                # values replaced by the same values (another object): identity holds for them from now on
                self._by_namespace = [
                    (get, names, absent, tuple(map(get, names, absent))) for get, names, absent, _ in groups
                ]
                break
        return not self.cells or self._cells_unchanged()

    def _grouped(self) -> list[_Group]:
        by_namespace: dict[int, tuple[dict, list[str], list[object]]] = {}
        for namespace, name, value in self.globals.values():
            _, names, values = by_namespace.setdefault(id(namespace), (namespace, [], []))
            names.append(name)
            values.append(value)
        return [
            (namespace.get, tuple(names), (ABSENT,) * len(names), tuple(values))
            for namespace, names, values in by_namespace.values()
        ]

    def _globals_unchanged(self) -> bool:
        for namespace, name, value in self.globals.values():
            current = namespace.get(name, ABSENT)
            if current is not value and not same(value, current):
                return False
        return True

    def _cells_unchanged(self) -> bool:
        for cell, value in self.cells.values():
            try:
                current = cell.cell_contents
            except ValueError:
                current = ABSENT
            if not same(value, current):
                return False
        return True


def _bits(number: float | complex) -> bytes:
    parts = (number.real, number.imag) if isinstance(number, complex) else (number,)
    return struct.pack(f"<{len(parts)}d", *parts)
