"""The error the block-level executor raises when a program goes wrong at run time.

>>> from tilevm.errors import SourceLocation
>>> str(ExecutionError("integer division by zero", SourceLocation("k.py", 7, 4))).splitlines()[0]
'k.py:7:4: integer division by zero'
"""

from __future__ import annotations

from tilevm.errors import LocatedError, SourceLocation

__all__ = ["ExecutionError"]


class ExecutionError(LocatedError):
    """A program that does something undefined while it runs: divides by zero, reads shared memory before its
    copy completed, touches memory outside a tensor's storage. Reported at the instruction's source line."""

    def at(self, location: SourceLocation | None) -> ExecutionError:
        """This error placed at ``location``, unless a more precise (inner) location is already set."""
        if self.location is not None or location is None:
            return self
        return ExecutionError(self.message, location)
