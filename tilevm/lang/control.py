"""Loops in the DSL: ``range`` (an IR loop, with an optional unroll hint) and ``static_range`` (unrolled
when the kernel is compiled)."""

from __future__ import annotations

from dataclasses import dataclass

from tilevm.errors import CompilationError
from tilevm.lang.values import describe_value

__all__ = ["TileRange", "static_range", "tile_range"]


@dataclass(frozen=True)
class TileRange:
    """What ``tv.range(...)`` returns: the bounds of an IR loop, read by the front end."""

    start: object
    stop: object
    step: object
    unroll: int | None


def tile_range(start: object, stop: object = None, step: object = 1, unroll: int | None = None) -> TileRange:
    """An IR loop ``for i in tv.range(start, stop, step, unroll=4)``; Python's ``range`` is the same with no
    unroll hint. Bounds may be kernel values."""
    if stop is None:
        start, stop = 0, start
    if unroll is not None and (not isinstance(unroll, int) or unroll < 1):
        raise CompilationError(f"unroll must be a positive compile-time int, got {describe_value(unroll)}")
    return TileRange(start, stop, step, unroll)


def static_range(*arguments: int) -> range:
    """A loop unrolled at compile time: its bounds must be compile-time ints.

    >>> list(static_range(0, 6, 2))
    [0, 2, 4]
    """
    return range(*arguments)
