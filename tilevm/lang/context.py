"""The kernel being compiled: builtins called from a kernel's body find its builder here."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field

from tilevm.errors import CompilationError
from tilevm.ir import ProgramBuilder
from tilevm.lang.captures import Captures

__all__ = ["KernelContext", "compiling", "current"]


@dataclass
class KernelContext:
    builder: ProgramBuilder
    #: the Python name that the expression being compiled is bound to, given to the value it makes; None
    #: for a temporary, which the builder names by what it computes (``%exp``, ``%cast``, ``%lt``)
    name_hint: str | None = None
    #: the globals and closure variables that the kernel and the ``tv.func``s it calls have read
    captures: Captures = field(default_factory=Captures)


_current: contextvars.ContextVar[KernelContext | None] = contextvars.ContextVar("tilevm_kernel", default=None)


@contextlib.contextmanager
def compiling(context: KernelContext) -> Iterator[KernelContext]:
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def current(builtin: str) -> KernelContext:
    context = _current.get()
    if context is None:
        raise CompilationError(f"tilevm.{builtin} can only be called inside a @tilevm.kernel function")
    return context
