"""tilevm's own exceptions, and the source location that compile errors point at."""

from __future__ import annotations

import linecache
from dataclasses import dataclass

__all__ = ["CompilationError", "CudaError", "LaunchError", "LocatedError", "SourceLocation", "TilevmError"]


@dataclass(frozen=True)
class SourceLocation:
    """A position in a user's Python file: 1-based line, 0-based column (as Python's ``ast`` gives them)."""

    file: str
    line: int
    column: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    def excerpt(self) -> str:
        """The source line and a caret under the column, or '' when the file cannot be read."""
        text = linecache.getline(self.file, self.line).rstrip("\n")
        if not text:
            return ""
        return f"    {text}\n    {' ' * self.column}^"


class TilevmError(Exception):
    """Base class of every error tilevm raises on purpose."""


class LocatedError(TilevmError):
    """An error at a line of the user's source, shown as ``file:line:column: message`` and the line."""

    def __init__(self, message: str, location: SourceLocation | None = None) -> None:
        self.message = message
        self.location = location
        super().__init__(self._render())

    def _render(self) -> str:
        if self.location is None:
            return self.message
        head = f"{self.location}: {self.message}"
        excerpt = self.location.excerpt()
        return f"{head}\n{excerpt}" if excerpt else head


class CompilationError(LocatedError):
    """A kernel that breaks a rule of the DSL or of the IR, reported at the user's source line.

    An error inside a ``tv.func`` also names the calls that led to it, innermost first, as a Python
    traceback does in reverse: ``call_sites``, each shown as ``called from file:line:column``.

    >>> err = CompilationError("unknown name 'x'", SourceLocation("k.py", 3, 4))
    >>> print(str(err).splitlines()[0])
    k.py:3:4: unknown name 'x'
    >>> print(err.called_from(SourceLocation("k.py", 9, 8)))
    k.py:3:4: unknown name 'x'
      called from k.py:9:8
    """

    def __init__(
        self,
        message: str,
        location: SourceLocation | None = None,
        call_sites: tuple[SourceLocation, ...] = (),
    ) -> None:
        self.call_sites = call_sites
        super().__init__(message, location)

    def _render(self) -> str:
        lines = [super()._render()]
        for site in self.call_sites:
            excerpt = site.excerpt()
            lines.append(f"  called from {site}\n{excerpt}" if excerpt else f"  called from {site}")
        return "\n".join(lines)

    def called_from(self, site: SourceLocation) -> CompilationError:
        """This error, raised in a function called at ``site``."""
        return CompilationError(self.message, self.location, (*self.call_sites, site))


class LaunchError(TilevmError):
    """Arguments that do not fit a kernel (dtype, shape, device, stride, alignment), raised before launch."""


class CudaError(TilevmError):
    """A failed CUDA driver call (naming the call, the kernel and the error), or a missing driver."""
