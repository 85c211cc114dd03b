"""Register layout operations (divide, reduce, permute, reshape, concat) against numpy formulas."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_layout_register_helpers import general_layouts, kron_table, layouts, pad_table

from tilevm.layout import LayoutError, column_spatial, local, parse, replicated, spatial


def _quotient_table(a, b):
    """The only table a quotient could have: c(t, i) = a(t * TB, i * LB) // shape(B) (b holds 0 at (0, 0))."""
    b_shape = (1,) * (a.rank - b.rank) + b.shape
    return a.table()[:: b.num_threads, :: b.local_size] // np.array(b_shape)


def _divisible(a, b):
    """Whether some table c has kron(c, b) == a, decided from the tables alone."""
    if b.rank > a.rank or a.num_threads % b.num_threads or a.local_size % b.local_size:
        return False
    b_shape = (1,) * (a.rank - b.rank) + b.shape
    if any(x % y for x, y in zip(a.shape, b_shape, strict=True)):
        return False
    candidate = _quotient_table(a, b)
    return np.array_equal(kron_table(candidate, a.shape, b.table(), b.shape), a.table())


@settings(max_examples=60)
@given(general_layouts(), layouts())
def test_product_then_divide_gives_back_the_left_factor(a, b):
    padded = local(*[1] * max(a.rank, b.rank)) * a  # the product has the larger rank, so the quotient has too
    assert (a * b) / b == padded
    assert (a * b).divide(b) == padded


@settings(max_examples=60)
@given(general_layouts(), layouts())
def test_divide_finds_a_quotient_exactly_when_the_tables_allow_one(a, b):
    quotient = a.divide(b)
    assert (quotient is not None) == _divisible(a, b)
    if quotient is not None:
        assert np.array_equal(quotient.table(), _quotient_table(a, b))
        assert np.array_equal((quotient * b).table(), a.table())


@settings(max_examples=60)
@given(layouts(), layouts(), layouts())
def test_divide_by_a_factor_of_the_right_factor(a, b, c):
    assert (a * b * c) / (b * c) == a
    assert (a * b * c) / c == a * b


@pytest.mark.parametrize(
    ("a", "b", "quotient"),
    [
        (spatial(8, 4).local(2, 4), local(1, 4), spatial(8, 4).local(2, 1)),
        (spatial(8, 4).local(2, 4), local(2), spatial(8, 4).local(2, 2)),
        (spatial(32), spatial(8), spatial(4)),
        (spatial(4).replicated(4), replicated(2), spatial(4).replicated(2)),
        (local(6), local(3), local(2)),
    ],
)
def test_divide_examples(a, b, quotient):
    assert a / b == quotient


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (spatial(4), local(2)),
        (spatial(4), spatial(3)),
        (local(2).spatial(2), local(2)),
        (spatial(2, 2), column_spatial(2, 2)),
        (spatial(4), spatial(1, 2)),
        (spatial(4).replicated(2), spatial(2)),
    ],
)
def test_divide_fails_clearly(a, b):
    assert a.divide(b) is None
    with pytest.raises(LayoutError, match=re.escape(f"{b} does not divide {a}")):
        a / b


@settings(max_examples=60)
@given(general_layouts(), st.data())
def test_permute_moves_coordinate_columns(layout, data):
    dims = data.draw(st.permutations(range(layout.rank)))
    permuted = layout.permute(*dims)
    assert permuted.shape == tuple(layout.shape[d] for d in dims)
    assert np.array_equal(permuted.table(), layout.table()[..., list(dims)])
    assert permuted.permute(*np.argsort(dims).tolist()) == layout


@settings(max_examples=60)
@given(general_layouts(), st.sampled_from([(-1,), (2, -1), (-1, 2), (3, -1), (1, -1, 1), (-1, 2, 2)]))
def test_reshape_is_row_major(layout, new_shape):
    try:
        reshaped = layout.reshape(new_shape)
    except LayoutError as err:
        assert "cannot reshape" in str(err)
        return
    flat = np.ravel_multi_index(tuple(np.moveaxis(layout.table(), -1, 0)), layout.shape)
    expected = np.stack(np.unravel_index(flat, reshaped.shape), axis=-1)
    assert np.array_equal(reshaped.table(), expected.reshape(reshaped.table().shape))
    assert reshaped.reshape(layout.shape) == layout


def test_reshape_examples_and_errors():
    assert spatial(4).local(2).reshape(2, 4) == spatial(2, 2).local(1, 2)
    assert spatial(8, 4).reshape(32) == spatial(32)
    assert spatial(2).local(3).reshape([6]) == spatial(2).local(3)
    with pytest.raises(LayoutError, match=r"reshape \[6, 2\] to \[4, 3\]: a mode of size 6 does not split"):
        local(6, 2).reshape(4, 3)
    with pytest.raises(LayoutError, match=r"reshape \[6\] to \[3, 2\]: a mode of size 2 does not split at 3"):
        spatial(2).local(3).reshape(3, 2)
    with pytest.raises(LayoutError, match=r"cannot reshape 6 elements to \[4\]"):
        local(6).reshape(4)
    with pytest.raises(LayoutError, match="at most one -1"):
        local(6).reshape(-1, -1)


def _unique_rows_in_order(rows):
    seen = []
    for row in map(tuple, rows.tolist()):
        if row not in seen:
            seen.append(row)
    return seen


@settings(max_examples=60)
@given(general_layouts(), st.data())
def test_reduce_zeroes_the_dims_and_keeps_local_order(layout, data):
    dims = data.draw(st.sets(st.integers(0, layout.rank - 1), min_size=1))
    reduced = layout.reduce(sorted(dims))
    assert reduced.shape == tuple(1 if d in dims else s for d, s in enumerate(layout.shape))
    assert reduced.num_threads == layout.num_threads
    zeroed = layout.table().copy()
    zeroed[..., sorted(dims)] = 0
    for thread in range(layout.num_threads):
        assert [tuple(c) for c in reduced.table()[thread].tolist()] == _unique_rows_in_order(zeroed[thread])
    dropped = layout.reduce(sorted(dims), keepdim=False)
    kept = [d for d in range(layout.rank) if d not in dims]
    assert np.array_equal(dropped.table(), reduced.table()[..., kept])


def test_reduce_examples():
    assert spatial(4, 8).local(1, 2).reduce(1) == spatial(4, 1).replicated(8)
    assert spatial(4, 8).local(2, 2).reduce(0, keepdim=False) == replicated(4).spatial(8).local(2)
    assert str(spatial(4, 8).reduce(0)) == "replicated(4).spatial(1, 8)"
    with pytest.raises(LayoutError, match=r"dims \[2\] are not distinct dims of a rank-2 layout"):
        spatial(4, 8).reduce(2)
    with pytest.raises(LayoutError, match=r"dims \[0, 0\] are not distinct"):
        spatial(4, 8).reduce(0, 0)


@settings(max_examples=60)
@given(general_layouts(), general_layouts())
def test_concat_puts_the_dims_side_by_side(a, b):
    result = a.concat(b)
    expected = kron_table(pad_table(a.table(), a.rank + b.rank, left=False), a.shape + (1,) * b.rank,
                          b.table(), b.shape)  # fmt: skip
    assert result.shape == a.shape + b.shape
    assert np.array_equal(result.table(), expected)
    ta, tb = a.table(), b.table()
    thread, index = a.num_threads * b.num_threads - 1, a.local_size * b.local_size - 1
    assert result.table()[thread, index].tolist() == ta[-1, -1].tolist() + tb[-1, -1].tolist()


def test_permute_errors():
    with pytest.raises(LayoutError, match=r"permute needs a permutation of range\(2\), got \[0\]"):
        spatial(2, 2).permute(0)


def test_ops_chain_in_text():
    assert parse("spatial(4, 8).local(2, 2).reduce(1).permute(1, 0)") == (
        spatial(4, 8).local(2, 2).reduce(1).permute(1, 0)
    )
    assert parse("spatial(4).local(2).reshape(2, 4)") == spatial(4).local(2).reshape(2, 4)
    assert parse("spatial(2).concat(local(3))") == spatial(2).concat(local(3))
