"""Layout pictures: size of the PNG, and cell colours decoded back from its pixels."""

import sys

import numpy as np
import pytest
from matplotlib import image as mpimg

from tilevm.layout import LayoutError, SharedLayout, choose_swizzle, mma_fragments, replicated, spatial
from tilevm.layout.draw import CELL_PADDING, CELL_WIDTH, LINE_HEIGHT, draw


def cell_colours(path, rows, cols, lines):
    """The colour of every tile cell, read from a pixel near its top-left corner (away from the label)."""
    pixels = mpimg.imread(path)
    cell_height = LINE_HEIGHT * lines + CELL_PADDING
    assert pixels.shape[:2] == ((rows + 1) * cell_height, (cols + 1) * CELL_WIDTH)
    rgb = np.round(pixels[..., :3] * 255).astype(int)
    return {
        (row, col): tuple(rgb[(row + 1) * cell_height + 2, (col + 1) * CELL_WIDTH + 2])
        for row in range(rows)
        for col in range(cols)
    }


def assert_one_colour_per_key(colours, key_of_cell, num_keys):
    """Cells with the same key share a colour, and there are exactly ``num_keys`` distinct colours."""
    colour_of_key = {}
    for cell, colour in colours.items():
        assert colour_of_key.setdefault(key_of_cell[cell], colour) == colour
    assert len(set(colours.values())) == len(colour_of_key) == num_keys


def test_mma_fragment_has_one_colour_per_thread(tmp_path):
    layout = mma_fragments("m16n8k16", "f16").a
    path = draw(layout, tmp_path / "a.png")
    colours = cell_colours(path, 16, 16, lines=1)
    owner = {
        tuple(coord): thread for thread, coords in enumerate(layout.table().tolist()) for coord in coords
    }
    assert_one_colour_per_key(colours, owner, 32)


def test_replicated_cells_have_one_line_per_holder(tmp_path):
    layout = replicated(2) * spatial(2, 4)  # threads t and t + 8 hold the same element
    path = draw(layout, tmp_path / "replicated.png")
    colours = cell_colours(path, 2, 4, lines=2)
    lowest_holder = {(row, col): row * 4 + col for row in range(2) for col in range(4)}
    assert_one_colour_per_key(colours, lowest_holder, 8)


def test_rank_one_is_one_row(tmp_path):
    path = draw(spatial(8), tmp_path / "row.png")
    colours = cell_colours(path, 1, 8, lines=1)
    assert len(set(colours.values())) == 8


def test_shared_layout_is_coloured_by_bank(tmp_path):
    layout = choose_swizzle((8, 64), 16, "ldmatrix")
    path = layout.draw(tmp_path / "shared.png", dtype_bits=16)
    colours = cell_colours(path, 8, 64, lines=1)
    bank = {(row, col): (layout.offset((row, col)) * 2 // 4) % 32 for row in range(8) for col in range(64)}
    assert_one_colour_per_key(colours, bank, 32)


def test_errors(tmp_path, monkeypatch):
    with pytest.raises(
        LayoutError, match=r"only rank-1 and rank-2 layouts can be drawn, got shape \(2, 2, 2\)"
    ):
        draw(SharedLayout.row_major(2, 2, 2), tmp_path / "cube.png")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(
        ModuleNotFoundError, match=r"drawing layouts needs matplotlib: pip install 'tilevm\[draw\]'"
    ):
        draw(spatial(4), tmp_path / "none.png")
