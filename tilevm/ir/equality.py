"""Structural equality of programs up to the renaming of variables (alpha-equivalence).

Instructions and variables compare by identity, so two programs built separately (for instance one parsed
back from the other's text) are compared here: field by field, with a one-to-one map between their variables
that is extended at each variable's first appearance.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

from tilevm.errors import SourceLocation
from tilevm.ir.expr import Var

if TYPE_CHECKING:
    from tilevm.ir.program import Program

__all__ = ["programs_equal"]


def programs_equal(left: Program, right: Program) -> bool:
    """True when the programs differ at most in the names of their variables and in source locations.

    >>> from tilevm.ir.program import Program
    >>> programs_equal(Program("k", (), 128, ()), Program("k", (), 128, ()))
    True
    """
    return _Matcher().equal(left, right)


class _Matcher:
    def __init__(self) -> None:
        self.left_to_right: dict[int, Var] = {}
        self.right_to_left: dict[int, Var] = {}

    def equal(self, left: object, right: object) -> bool:
        if isinstance(left, Var) or isinstance(right, Var):
            return isinstance(left, Var) and isinstance(right, Var) and self.equal_vars(left, right)
        if isinstance(left, SourceLocation) or isinstance(right, SourceLocation):
            return True
        if type(left) is not type(right):
            return False
        if isinstance(left, (tuple, list)):
            return len(left) == len(right) and all(self.equal(a, b) for a, b in zip(left, right))
        if dataclasses.is_dataclass(left) and not _is_value(left):
            return all(
                self.equal(getattr(left, item.name), getattr(right, item.name))
                for item in dataclasses.fields(left)
            )
        return _same_value(left, right)

    def equal_vars(self, left: Var, right: Var) -> bool:
        mapped = self.left_to_right.get(left.uid)
        if mapped is not None:
            return mapped is right
        if right.uid in self.right_to_left or not self.equal(left.type, right.type):
            return False
        self.left_to_right[left.uid] = right
        self.right_to_left[right.uid] = left
        return True


def _is_value(node: object) -> bool:
    """Values without variables inside (dtypes, layouts) compare by their own ``==``."""
    return type(node).__module__.startswith(("tilevm.dtypes", "tilevm.layout"))


def _same_value(left: object, right: object) -> bool:
    if isinstance(left, float) and isinstance(right, float):
        if math.isnan(left) or math.isnan(right):
            return math.isnan(left) and math.isnan(right)  # NaN constants are equal for our purpose
        return left == right and math.copysign(1.0, left) == math.copysign(1.0, right)  # -0.0 is not 0.0
    return left == right
