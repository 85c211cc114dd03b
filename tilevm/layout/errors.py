"""The one exception the layout package raises: a layout that cannot be built, combined or parsed."""

from __future__ import annotations

__all__ = ["LayoutError"]


class LayoutError(ValueError):
    """A layout operation with no answer, or layout text that does not parse.

    It is a ``ValueError`` (the layout package imports nothing else from tilevm), so callers that only know
    Python's exceptions still catch it.

    >>> try:
    ...     raise LayoutError("spatial(4) does not divide local(2)")
    ... except ValueError as err:
    ...     print(err)
    spatial(4) does not divide local(2)
    """
