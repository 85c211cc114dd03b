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
from collections.abc import Callable, KeysView
from types import CellType

__all__ = ["ABSENT", "Captures"]

#: what a name not defined in a module reads as
ABSENT = object()
VALUE_TYPES = (int, bool, str, bytes, type(None))
#: the globals read from one namespace (``_group``)
_Group = tuple[dict, KeysView, frozenset, Callable[[dict], tuple] | None, tuple]


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
        #: the globals read, by namespace, made at the first ``unchanged`` after a read
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
            groups = self._by_namespace = [_group(namespace, reads) for namespace, reads in self._reads()]
        # on every launch: identity first, in C (see ``_Group``), then ``same``
        for namespace, keys, absent, get, values in groups:
            try:
                identical = (not absent or keys.isdisjoint(absent)) and (
                    get is None or all(map(operator.is_, get(namespace), values))
                )
            except KeyError:  # a name deleted from the namespace
                identical = False
            if not identical:
                if not self._globals_unchanged():
                    return False
                # values replaced by the same values (other objects): identity holds for them from now on
                self._by_namespace = [_group(namespace, reads) for namespace, reads in self._current()]
                break
        return not self.cells or self._cells_unchanged()

    def _reads(self) -> list[tuple[dict, dict[str, object]]]:
        """The globals read, by namespace: (namespace, {name: value read})."""
        by_namespace: dict[int, tuple[dict, dict[str, object]]] = {}
        for namespace, name, value in self.globals.values():
            by_namespace.setdefault(id(namespace), (namespace, {}))[1][name] = value
        return list(by_namespace.values())

    def _current(self) -> list[tuple[dict, dict[str, object]]]:
        """``_reads`` with the namespaces' current values."""
        return [
            (namespace, {name: namespace.get(name, ABSENT) for name in reads})
            for namespace, reads in self._reads()
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


def _group(namespace: dict, reads: dict[str, object]) -> _Group:
    """The globals read from one namespace, as ``unchanged`` checks them by identity in C: the namespace,
    its keys, the names it lacked (read as ``ABSENT``: builtins, which must stay absent), and the names it
    had, looked up at once (``operator.itemgetter``) and compared with the values read."""
    present = [name for name, value in reads.items() if value is not ABSENT]
    if len(present) == 1:  # itemgetter of one name gives the value, of several a tuple
        present.append(present[0])
    absent = frozenset(name for name, value in reads.items() if value is ABSENT)
    get = operator.itemgetter(*present) if present else None
    return namespace, namespace.keys(), absent, get, tuple(reads[name] for name in present)


def _bits(number: float | complex) -> bytes:
    parts = (number.real, number.imag) if isinstance(number, complex) else (number,)
    return struct.pack(f"<{len(parts)}d", *parts)
