"""``@tilevm.func``: a helper that kernels call; each call is compiled in place (inlined) into the kernel.

>>> import tilevm as tv
>>> @tv.func
... def scaled(tile, factor):
...     return tile * factor
>>> scaled
<tilevm.func scaled>
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["DeviceFunction", "func"]


class DeviceFunction:
    """A Python function whose body is DSL code; called from a kernel, it takes kernel values and Python
    values alike (a Python value acts as a compile-time constant of that call)."""

    def __init__(self, function: Callable) -> None:
        self.function = function
        self.__doc__ = function.__doc__
        self.__name__ = function.__name__

    def __repr__(self) -> str:
        return f"<tilevm.func {self.function.__qualname__}>"

    def __call__(self, *args: object, **kwargs: object) -> object:
        raise TypeError(f"{self.__name__} is a tilevm.func: call it from a @tilevm.kernel function")


def func(function: Callable) -> DeviceFunction:
    """Make ``function`` callable from kernels, where each call is inlined."""
    return DeviceFunction(function)
