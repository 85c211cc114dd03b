"""How many iterations a runtime ``while`` loop may run before the executor calls it a hang.

The limit counts the iterations of one execution of one loop (a nested loop starts again at each entry).
It is ``execute``'s ``while_limit`` when given, else the environment variable ``TILEVM_WHILE_LIMIT``, read
once, at the first launch that needs it, else ``DEFAULT_WHILE_LIMIT``.

>>> while_limit_from({}) == DEFAULT_WHILE_LIMIT, while_limit_from({"TILEVM_WHILE_LIMIT": "500"})
(True, 500)
>>> while_limit_from({"TILEVM_WHILE_LIMIT": "lots"})
Traceback (most recent call last):
    ...
tilevm.errors.LaunchError: TILEVM_WHILE_LIMIT must be a positive int, got 'lots'
"""

from __future__ import annotations

import functools
import numbers
import os
from collections.abc import Mapping

from tilevm.errors import LaunchError

__all__ = ["DEFAULT_WHILE_LIMIT", "WHILE_LIMIT_VARIABLE", "check_while_limit", "while_limit_from"]

WHILE_LIMIT_VARIABLE = "TILEVM_WHILE_LIMIT"
#: about a minute of the reference executor for a loop of a few instructions: no real kernel comes close
DEFAULT_WHILE_LIMIT = 1_000_000


def while_limit_from(environment: Mapping[str, str]) -> int:
    """The limit that ``environment`` sets (``DEFAULT_WHILE_LIMIT`` when it sets none)."""
    text = environment.get(WHILE_LIMIT_VARIABLE)
    if text is None:
        return DEFAULT_WHILE_LIMIT
    limit = int(text) if text.strip().isdigit() else 0
    if limit < 1:
        raise LaunchError(f"{WHILE_LIMIT_VARIABLE} must be a positive int, got {text!r}")
    return limit


@functools.cache
def _environment_limit() -> int:
    return while_limit_from(os.environ)


def check_while_limit(limit: object) -> int:
    """``execute``'s ``while_limit`` argument checked, or the environment's limit when it is None."""
    if limit is None:
        return _environment_limit()
    if not isinstance(limit, numbers.Integral) or isinstance(limit, bool) or limit < 1:
        raise LaunchError(f"while_limit must be a positive int, got {limit!r}")
    return int(limit)
