"""Pictures of layouts, to PNG: one cell per element of a rank-1 or rank-2 tile.

- A register layout (anything with ``shape`` and ``table() -> [threads, locals, rank]``) labels each cell
  ``t{thread}:{local}``, one line per (thread, local) that holds it, and colours it by its lowest thread.
- A :class:`~tilevm.layout.shared.SharedLayout` labels each cell with its offset and colours it by the
  bank its first byte falls in (32 banks of 4 bytes).

Geometry, fixed so that pictures of the same layout are identical and tests can find the cells: row 0 and
column 0 are white headers with the coordinates; every cell is :data:`CELL_WIDTH` pixels wide and
``LINE_HEIGHT * lines + CELL_PADDING`` high, where ``lines`` is the most labels any cell has; cells are
separated by a 1-pixel white border at their right and bottom edges. A rank-1 tile is drawn as one row.

matplotlib is imported only when drawing (``pip install 'tilevm[draw]'``); it draws through its Agg
canvas directly, so pyplot's global state and the user's backend are left alone.

>>> from tilevm.layout.shared import SharedLayout
>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "shared.png"
>>> draw(SharedLayout.row_major(4, 8), path) == path, path.exists()
(True, True)
"""

from __future__ import annotations

import colorsys
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tilevm.layout.errors import LayoutError
from tilevm.layout.shared import SharedLayout

__all__ = ["CELL_PADDING", "CELL_WIDTH", "LINE_HEIGHT", "draw"]

CELL_WIDTH = 64
LINE_HEIGHT = 14
CELL_PADDING = 6
_DPI = 100
_FONT_SIZE = 8  # points: 11 pixels at 100 dpi, so a 14-pixel line leaves room between lines
_WHITE = (255, 255, 255)
_NUM_BANKS, _BANK_BYTES = 32, 4


class DrawableRegisterLayout(Protocol):
    """What :func:`draw` needs of a register layout."""

    shape: tuple[int, ...]

    def table(self) -> np.ndarray: ...


def draw(layout: SharedLayout | DrawableRegisterLayout, path: str | Path, *, dtype_bits: int = 16) -> Path:
    """Write a PNG picture of ``layout`` to ``path`` and return the path.

    ``dtype_bits`` (shared layouts only) is the element width that turns offsets into banks.

    >>> import tempfile, pathlib
    >>> from tilevm.layout.shared import SharedLayout
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "int8.png"
    >>> draw(SharedLayout.row_major(2, 16), path, dtype_bits=8).stat().st_size > 0
    True
    """
    if isinstance(layout, SharedLayout):
        labels, colour_ids, num_colours = _shared_cells(layout, dtype_bits)
    else:
        labels, colour_ids, num_colours = _register_cells(layout)
    path = Path(path)
    _render(labels, colour_ids, _palette(num_colours), path)
    return path


def _as_rows(shape: tuple[int, ...]) -> tuple[int, int]:
    """The (rows, cols) grid of a rank-1 or rank-2 tile."""
    if len(shape) == 1:
        return 1, shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    raise LayoutError(f"only rank-1 and rank-2 layouts can be drawn, got shape {shape}")


def _register_cells(layout: DrawableRegisterLayout) -> tuple[list[list[list[str]]], np.ndarray, int]:
    """Labels ``t{thread}:{local}`` per cell, and each cell's lowest thread as its colour."""
    rows, cols = _as_rows(tuple(layout.shape))
    table = np.asarray(layout.table())
    labels: list[list[list[str]]] = [[[] for _ in range(cols)] for _ in range(rows)]
    colour_ids = np.full((rows, cols), -1, dtype=np.int64)
    num_threads, local_size = table.shape[:2]
    # Threads in increasing order, so the first label of a cell is its lowest thread.
    for thread in range(num_threads):
        for local in range(local_size):
            row, col = (0, *table[thread, local])[-2:]  # a rank-1 coordinate (c,) is cell (0, c)
            labels[row][col].append(f"t{thread}:{local}")
            if colour_ids[row, col] < 0:
                colour_ids[row, col] = thread
    return labels, colour_ids, num_threads


def _shared_cells(layout: SharedLayout, dtype_bits: int) -> tuple[list[list[list[str]]], np.ndarray, int]:
    """Each cell's offset as its label and the bank of its first byte as its colour."""
    rows, cols = _as_rows(layout.shape)
    offsets = layout.table().reshape(rows, cols)
    banks = (offsets * dtype_bits // 8 // _BANK_BYTES) % _NUM_BANKS
    labels = [[[str(offset)] for offset in row] for row in offsets.tolist()]
    return labels, banks, _NUM_BANKS


def _palette(count: int) -> np.ndarray:
    """``count`` distinct light RGB colours: hues around the circle, neighbours alternating in brightness."""
    colours = [colorsys.hsv_to_rgb(i / count, 0.45, 1.0 if i % 2 == 0 else 0.8) for i in range(count)]
    return np.round(np.asarray(colours) * 255).astype(np.uint8).reshape(count, 3)


def _render(labels: list[list[list[str]]], colour_ids: np.ndarray, palette: np.ndarray, path: Path) -> None:
    """Paint the cells into a pixel array, put the labels on top, and save it as a PNG."""
    rows, cols = colour_ids.shape
    lines = max(len(cell) for row in labels for cell in row)
    cell_height = LINE_HEIGHT * lines + CELL_PADDING
    image = np.full(((rows + 1) * cell_height, (cols + 1) * CELL_WIDTH, 3), 255, dtype=np.uint8)
    for row in range(rows):
        for col in range(cols):
            top, left = (row + 1) * cell_height, (col + 1) * CELL_WIDTH
            # The last pixel row and column of each cell stay white: the grid lines.
            image[top : top + cell_height - 1, left : left + CELL_WIDTH - 1] = palette[colour_ids[row, col]]
    texts = [(0, col + 1, str(col)) for col in range(cols)] + [(row + 1, 0, str(row)) for row in range(rows)]
    texts += [(r + 1, c + 1, "\n".join(labels[r][c])) for r in range(rows) for c in range(cols)]
    _save(image, texts, cell_height, path)


def _save(image: np.ndarray, texts: list[tuple[int, int, str]], cell_height: int, path: Path) -> None:
    """Write ``image`` with each text centred in its (grid row, grid column) cell, pixel for pixel."""
    figure_module, canvas_module = _matplotlib()
    height, width = image.shape[:2]
    figure = figure_module.Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI)
    canvas_module.FigureCanvasAgg(figure)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.imshow(image, interpolation="nearest", extent=(0, width, height, 0), aspect="auto")
    axes.set_xlim(0, width)
    axes.set_ylim(height, 0)
    axes.set_axis_off()
    for row, col, text in texts:
        x, y = (col + 0.5) * CELL_WIDTH, (row + 0.5) * cell_height
        axes.text(x, y, text, ha="center", va="center", fontsize=_FONT_SIZE, family="monospace")
    figure.savefig(path, dpi=_DPI, format="png")


def _matplotlib() -> tuple[Any, Any]:
    """matplotlib's figure and Agg canvas modules, or an error that says how to install it."""
    try:
        from matplotlib import figure
        from matplotlib.backends import backend_agg
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            "drawing layouts needs matplotlib: pip install 'tilevm[draw]' (or pip install matplotlib)"
        ) from err
    return figure, backend_agg
