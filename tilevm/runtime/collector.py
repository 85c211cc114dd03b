"""Python's cyclic garbage collector held off while tilevm compiles.

Compiling a kernel allocates many small objects (IR nodes, LLVM IR builder objects, imported modules), and
every so many allocations CPython runs its cyclic collector; once in a while a full collection, which walks
every object of the process. In a process that has imported torch that is about a million objects: one
full collection costs 100-200 ms, more than the compilation of a whole kernel. Nothing that compiling makes
needs collecting before it ends (its objects are freed by reference counting, or live on in the caches), so
the compile path runs with the collector off (``collector_paused``) and gives it back as it found it.

>>> import gc
>>> with collector_paused():
...     gc.isenabled()
False
>>> gc.isenabled()
True
"""

from __future__ import annotations

import contextlib
import functools
import gc
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

__all__ = ["collector_paused", "without_collector"]

_Parameters = ParamSpec("_Parameters")
_Result = TypeVar("_Result")


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic collector off for the block, then on again if it was on (blocks nest)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def without_collector(function: Callable[_Parameters, _Result]) -> Callable[_Parameters, _Result]:
    """``function`` run inside ``collector_paused``."""

    @functools.wraps(function)
    def paused(*args: _Parameters.args, **kwargs: _Parameters.kwargs) -> _Result:
        with collector_paused():
            return function(*args, **kwargs)

    return paused
