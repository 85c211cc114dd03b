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

__all__ = ["DeviceFunction", "func", "in_kernel", "kernel_meaning"]

IN_KERNEL_ATTRIBUTE = "__tilevm_in_kernel__"


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


def in_kernel(meaning: Callable) -> Callable[[Callable], Callable]:
    """Mark a host function as meaning ``meaning`` when a kernel calls it (``tv.view`` of a torch tensor on
    the host, of a register tile in a kernel): layers above the DSL name their functions' in-kernel
    meaning here, so that the DSL imports nothing of them."""

    def mark(host_function: Callable) -> Callable:
        setattr(host_function, IN_KERNEL_ATTRIBUTE, meaning)
        return host_function

    return mark


def kernel_meaning(function: object) -> Callable | None:
    """What a host function marked by ``in_kernel`` means in a kernel (None for any other object)."""
    return getattr(function, IN_KERNEL_ATTRIBUTE, None) if callable(function) else None
