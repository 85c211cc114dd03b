"""ldmatrix register layouts against the PTX ISA's description of ldmatrix.sync.aligned.m8n8 .b16."""

import numpy as np
import pytest

from tilevm.layout import LayoutError, ldmatrix_layout, mma_fragments, parse


def isa_table(num_matrices, trans):
    """From the ISA: four consecutive threads share one 16-byte row of each 8x8 matrix; thread t receives
    elements 2 * (t % 4) and 2 * (t % 4) + 1 of row t // 4 of matrix j in register j (low half first);
    .trans delivers the matrix column-major, so those are rows of column t // 4 instead. Matrix j is stacked
    at rows [8 j, 8 j + 8) of the tile."""
    table = np.zeros((32, 2 * num_matrices, 2), dtype=np.int64)
    for thread in range(32):
        for register in range(num_matrices):
            for half in range(2):
                line, element = thread // 4, 2 * (thread % 4) + half
                row, col = (element, line) if trans else (line, element)
                table[thread, 2 * register + half] = (8 * register + row, col)
    return table


@pytest.mark.parametrize("num_matrices", [1, 2, 4])
@pytest.mark.parametrize("trans", [False, True])
def test_layout_matches_isa(num_matrices, trans):
    layout = ldmatrix_layout(num_matrices, trans)
    assert layout.shape == (8 * num_matrices, 8)
    np.testing.assert_array_equal(layout.table(), isa_table(num_matrices, trans))
    assert parse(str(layout)) == layout


def test_x4_feeds_the_m16n8k16_a_fragment():
    # With matrix j read from block (j % 2, j // 2) of the 16x16 A tile, register j of ldmatrix.x4 is
    # register j of the mma A operand: the reason ldmatrix exists.
    ldmatrix = ldmatrix_layout(4).table()
    block_row, block_col = (np.arange(8) // 2) % 2, (np.arange(8) // 2) // 2
    moved = ldmatrix.copy()
    moved[..., 0] = ldmatrix[..., 0] % 8 + 8 * block_row
    moved[..., 1] = ldmatrix[..., 1] + 8 * block_col
    np.testing.assert_array_equal(moved, mma_fragments("m16n8k16", "f16").a.table())


def test_errors():
    with pytest.raises(LayoutError, match=r"ldmatrix loads 1, 2 or 4 matrices \(.x1, .x2, .x4\), not 3"):
        ldmatrix_layout(3)
