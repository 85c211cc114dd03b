"""The autotuner's progress bar: one line on stderr, redrawn in place, with no dependency.

It is drawn only where someone watches: when the stream is a terminal and ``TILEVM_AUTOTUNE_QUIET`` is not
``1``.

>>> bar_text("qgemm m=1 n=4096 k=4096", 3, 8, "best 12.5 µs", width=16)
'qgemm m=1 n=4096 k=4096 [######----------] 3/8 best 12.5 µs'
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

__all__ = ["QUIET_VARIABLE", "ProgressBar", "bar_text"]

#: set to 1 to silence the bar even on a terminal
QUIET_VARIABLE = "TILEVM_AUTOTUNE_QUIET"


def bar_text(label: str, done: int, total: int, note: str = "", width: int = 24) -> str:
    """The bar's line after ``done`` of ``total`` steps (``note`` follows the count)."""
    filled = width * done // total if total else width
    line = f"{label} [{'#' * filled}{'-' * (width - filled)}] {done}/{total}"
    return f"{line} {note}" if note else line


class ProgressBar:
    """A bar over ``total`` steps on ``stream`` (stderr by default); ``enabled`` None means: only on a
    terminal and when ``TILEVM_AUTOTUNE_QUIET`` is not ``1``."""

    def __init__(
        self, label: str, total: int, stream: TextIO | None = None, enabled: bool | None = None
    ) -> None:
        self.label = label
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = os.environ.get(QUIET_VARIABLE) != "1" and _is_terminal(self.stream)
        self.enabled = enabled
        self._width = 0  # the length of the last line drawn, to blank what a shorter line leaves

    def update(self, done: int, note: str = "") -> None:
        """Redraw the line for ``done`` steps finished."""
        if not self.enabled:
            return
        line = bar_text(self.label, done, self.total, note)
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)

    def close(self) -> None:
        """End the line (the last state stays visible)."""
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
