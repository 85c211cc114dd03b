"""Register layouts: primitives, the Kronecker product, canonical equality and the text form, all checked
against tables computed independently in test_layout_register_helpers."""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_layout_register_helpers import (
    coordinates,
    factor_lists,
    general_layouts,
    kron_table,
    layouts,
    primitive_table,
    product_of,
    product_table,
)

from tilevm.layout import (
    LayoutError,
    RegisterLayout,
    column_local,
    column_spatial,
    local,
    parse,
    register_layout,
    replicated,
    spatial,
)


@pytest.mark.parametrize("shape", [(4,), (2, 3), (2, 1, 3), (1, 1)])
def test_primitive_tables_are_row_major(shape):
    expected = np.indices(shape).reshape(len(shape), -1).T
    assert np.array_equal(spatial(*shape).table()[:, 0, :], expected)
    assert np.array_equal(local(*shape).table()[0], expected)
    assert spatial(*shape).num_threads == local(*shape).local_size == np.prod(shape)


def test_column_primitives_vary_the_first_dim_fastest():
    expected = [(i, j) for j in range(3) for i in range(2)]
    assert column_spatial(2, 3).table()[:, 0].tolist() == [list(c) for c in expected]
    assert column_local(2, 3).table()[0].tolist() == [list(c) for c in expected]


def test_explicit_order_lists_dims_most_significant_first():
    table = spatial(2, 3, 4, order=[1, 2, 0]).table()[:, 0]
    expected = [(c0, c1, c2) for c1 in range(3) for c2 in range(4) for c0 in range(2)]
    assert [tuple(c) for c in table.tolist()] == expected


@settings(max_examples=60)
@given(st.sampled_from(["spatial", "local"]), st.lists(st.integers(1, 4), min_size=1, max_size=3), st.data())
def test_primitive_tables_with_any_order(kind, shape, data):
    order = tuple(data.draw(st.permutations(range(len(shape)))))
    layout = (spatial if kind == "spatial" else local)(*shape, order=order)
    assert np.array_equal(layout.table(), primitive_table(kind, tuple(shape), order))


def test_replicated_has_rank_zero_and_pads_in_products():
    assert replicated(3).table().shape == (3, 1, 0)
    assert (replicated(2) * spatial(4)).table()[:, 0, 0].tolist() == [0, 1, 2, 3] * 2
    assert spatial(4).replicated(2).table()[:, 0, 0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_spatial_8_4_local_2_2_by_hand():
    layout = spatial(8, 4).local(2, 2)
    table = layout.table()
    assert (layout.shape, layout.num_threads, layout.local_size, layout.rank) == ((16, 8), 32, 4, 2)
    for thread, index in itertools.product(range(32), range(4)):
        expected = [thread // 4 * 2 + index // 2, thread % 4 * 2 + index % 2]
        assert table[thread, index].tolist() == expected


@settings(max_examples=60)
@given(factor_lists())
def test_product_table_is_the_kronecker_formula(factor_list):
    layout = product_of(factor_list)
    assert np.array_equal(layout.table(), product_table(factor_list))


@settings(max_examples=60)
@given(layouts(), layouts(rank=1))
def test_product_pads_the_lower_rank_operand(a, b):
    expected = kron_table(a.table(), a.shape, b.table(), b.shape)
    assert np.array_equal((a * b).table(), expected)
    assert np.array_equal((b * a).table(), kron_table(b.table(), b.shape, a.table(), a.shape))


@settings(max_examples=60)
@given(layouts(), layouts(), layouts())
def test_product_is_associative(a, b, c):
    left, right = (a * b) * c, a * (b * c)
    assert left == right and hash(left) == hash(right)
    assert np.array_equal(left.table(), right.table())


@settings(max_examples=60)
@given(general_layouts())
def test_every_coordinate_is_held(layout):
    assert coordinates(layout.table()) == set(np.ndindex(layout.shape))


def test_equal_tables_give_equal_layouts_examples():
    assert spatial(2).spatial(4) == spatial(8)
    assert local(2, 1).local(1, 3) == local(2, 3)
    assert local(1, 3).local(2, 1) == column_local(2, 3)
    assert spatial(2, 1) * spatial(1, 3) * spatial(4, 1) == spatial(2, 3, order=[0, 1]).spatial(4, 1)
    assert replicated(2).replicated(3) == replicated(6)
    assert hash(spatial(2).spatial(4)) == hash(spatial(8))
    assert spatial(4) != local(4) and spatial(2).local(2) != local(2).spatial(2)


def _small_layouts():
    """Every product of up to three primitives from a small set, then permuted and reduced."""
    atoms = [
        make(*shape)
        for make in (spatial, local, column_spatial, column_local)
        for shape in [(1, 2), (2, 1), (2, 2), (1, 4)]
    ] + [local(1, 1).replicated(2)]
    products = [spatial(1, 1)] + atoms + [a * b for a in atoms for b in atoms]
    products += [a * b * c for a in atoms[::3] for b in atoms for c in atoms[1::4]]
    return products + [x.permute(1, 0) for x in products] + [x.reduce(0) for x in products]


def test_layouts_are_equal_exactly_when_their_tables_are():
    groups = defaultdict(set)
    for layout in _small_layouts():
        table = layout.table()
        groups[(layout.shape, table.shape, table.tobytes())].add(layout)
    by_layout = defaultdict(set)
    for key, members in groups.items():
        assert len(members) == 1, f"layouts with one table differ: {members}"
        by_layout[next(iter(members))].add(key)
        assert len({hash(x) for x in members}) == 1
    assert all(len(keys) == 1 for keys in by_layout.values())


@settings(max_examples=60)
@given(general_layouts())
def test_text_round_trips(layout):
    text = str(layout)
    assert parse(text) == layout
    assert str(parse(text)) == text
    assert repr(layout) == text


@pytest.mark.parametrize(
    ("layout", "text"),
    [
        (spatial(8, 4).local(2, 2), "spatial(8, 4).local(2, 2)"),
        (local(2, 1).local(1, 3), "local(2, 3)"),
        (spatial(4).replicated(2), "spatial(4).replicated(2)"),
        (replicated(2), "replicated(2)"),
        (local(1, 1) * replicated(2), "local(1, 1).replicated(2)"),
        (local(), "local()"),
        (spatial(2, 3, 4, order=[1, 2, 0]), "spatial(2, 3, 4, order=[1, 2, 0])"),
        (column_spatial(2, 3).local(2, 2), "column_spatial(2, 3).local(2, 2)"),
    ],
)
def test_text_of_products(layout, text):
    assert str(layout) == text
    assert parse(text) == layout


def test_a_layout_that_is_no_product_prints_its_fields():
    # Thread digits of one dim in the opposite order to the dim's digits: no chain of primitives.
    layout = spatial(2).spatial(2).permute(0).reshape(2, 2).permute(1, 0).reshape(4)
    fields = "shape=[4], mode_shape=[2, 2], spatial_modes=[1, 0], local_modes=[]"
    assert str(layout) == f"register_layout({fields})"
    assert layout.table()[:, 0, 0].tolist() == [0, 2, 1, 3]
    assert parse(str(layout)) == layout


def test_parse_builds_products_with_star():
    assert parse("spatial(2, 1) * local(1, 3)") == spatial(2, 1).local(1, 3)
    assert parse("replicated(2) * spatial(4)") == replicated(2).spatial(4)


def test_tables_are_cached_and_read_only():
    layout = spatial(4, 4)
    assert layout.table() is layout.table()
    with pytest.raises(ValueError, match="read-only"):
        layout.table()[0, 0, 0] = 1


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: spatial(0), r"spatial needs positive integer sizes, got \[0\]"),
        (lambda: local(2, 2, order=[0, 0]), r"local order must be a permutation of range\(2\)"),
        (lambda: replicated(0), "replicated needs a positive number of replicas"),
        (lambda: register_layout([4], [4, 1], [0], []), r"mode sizes must be integers > 1"),
        (lambda: register_layout([4], [2, 2], [0], []), "every mode must be exactly one thread or local"),
        (lambda: register_layout([4], [3], [0], []), r"does not factor shape \[4\]"),
        (lambda: RegisterLayout((4,), (2, 2), (0, 1), ()), "is not a canonical form"),
    ],
)
def test_construction_errors(build, message):
    with pytest.raises(LayoutError, match=message):
        build()


def test_layout_methods_are_the_chainable_ones():
    assert set(RegisterLayout.__layout_methods__) == {
        "local", "spatial", "column_local", "column_spatial", "replicated", "reduce", "permute", "reshape",
        "concat",
    }  # fmt: skip
    with pytest.raises(LayoutError, match=r"has no layout method 'table' at line 1, column 12"):
        parse("spatial(4).table()")
