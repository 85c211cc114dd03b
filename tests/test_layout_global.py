"""Global layouts and symbolic sizes: folding, evaluation against integer arithmetic, text round trip."""

import operator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tilevm.layout import GlobalLayout, LayoutError, Symbol, global_strided, parse
from tilevm.layout.symbolic import Add, FloorDiv, Mul, evaluate

m, k, n = Symbol("m"), Symbol("k"), Symbol("n")
ENV = {"m": 5, "k": 7, "n": 3}


def test_constants_fold_and_move_right():
    assert (m * 2) * 3 == Mul(m, 6)
    assert 3 + m == Add(m, 3)
    assert (m + 1) + 2 == Add(m, 3)
    assert m + 0 is m and m * 1 is m and m // 1 is m
    assert m * 0 == 0
    assert (m * 8) // 4 == Mul(m, 2)
    assert (m * 6) // 4 == FloorDiv(Mul(m, 6), 4)
    assert m - m == Add(m, Mul(m, -1))  # no algebra beyond constants: equal trees, not equal values


def test_equal_trees_hash_equal():
    assert {m * k + 1: "a"}[Symbol("m") * Symbol("k") + 1] == "a"


def test_missing_symbol_and_division_by_zero():
    with pytest.raises(LayoutError, match="no value for symbol 'k'"):
        (m * k).evaluate({"m": 1})
    with pytest.raises(LayoutError, match="division by zero"):
        m // 0
    with pytest.raises(LayoutError, match="division by zero in 'm // k'"):
        (m // k).evaluate({"m": 1, "k": 0})


OPERATORS = [operator.add, operator.sub, operator.mul, operator.floordiv]


def _leaves():
    names = st.sampled_from(sorted(ENV)).map(lambda name: (Symbol(name), ENV[name]))
    constants = st.integers(-9, 9).map(lambda value: (value, value))
    return names | constants


def _combine(children):
    def build(op, left, right):
        # Keep the integer reference free of division by zero; the expression would raise LayoutError.
        if op is operator.floordiv and right[1] == 0:
            right = (1, 1)
        return op(left[0], right[0]), op(left[1], right[1])

    return st.builds(build, st.sampled_from(OPERATORS), children, children)


EXPRESSIONS = st.recursive(_leaves(), _combine, max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(EXPRESSIONS)
def test_evaluation_matches_integer_arithmetic_and_text_round_trips(pair):
    expression, expected = pair
    assert evaluate(expression, ENV) == expected
    assert parse(str(expression)) == expression
    assert str(parse(str(expression))) == str(expression)


def test_row_major_matches_numpy_strides():
    layout = GlobalLayout.row_major(m, k, n)
    assert layout.strides == (k * n, n, 1)
    assert layout.symbols() == {"m", "k", "n"}
    reference = np.empty((5, 7, 3), dtype=np.int8)  # itemsize 1: numpy strides are element strides
    assert layout.evaluate(ENV).strides == reference.strides
    np.testing.assert_array_equal(layout.table(ENV), np.arange(5 * 7 * 3).reshape(5, 7, 3))


def test_column_major_matches_numpy_fortran_strides():
    layout = GlobalLayout.column_major(m, k, n)
    assert layout.strides == (1, m, m * k)
    reference = np.asfortranarray(np.empty((5, 7, 3), dtype=np.int8))
    assert layout.evaluate(ENV).strides == reference.strides
    np.testing.assert_array_equal(layout.table(ENV), np.arange(105).reshape(5, 7, 3, order="F"))


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 4), st.integers(0, 6), st.integers(0, 2))
def test_symbolic_offset_evaluates_to_the_table_entry(i, j, h):
    layout = GlobalLayout.row_major(m, k, n)
    offset = layout.offset((i, j, h))
    assert evaluate(offset, ENV) == layout.table(ENV)[i, j, h] == (i * 7 + j) * 3 + h


def test_offset_with_symbolic_coordinate():
    i = Symbol("i")
    offset = GlobalLayout.row_major(m, k).offset((i, 2))
    assert str(offset) == "i * k + 2"
    assert offset.evaluate({"i": 3, "k": 7}) == 23


@pytest.mark.parametrize(
    "layout",
    [
        global_strided((m, k), strides=(k, 1)),
        global_strided((m,), strides=(2,)),
        GlobalLayout.row_major(m // 2, k * 4 + 1, 16),
        global_strided((4, 8), strides=(1, 4)),
    ],
)
def test_text_round_trip(layout):
    assert parse(str(layout)) == layout
    assert str(parse(str(layout))) == str(layout)


def test_text_form():
    assert str(GlobalLayout.row_major(m, k)) == "global_strided((m, k), strides=(k, 1))"
    assert str(global_strided((m,), (1,))) == "global_strided((m,), strides=(1,))"


def test_errors():
    with pytest.raises(LayoutError, match="rank 2 given 1 strides"):
        global_strided((m, k), strides=(1,))
    with pytest.raises(LayoutError, match="sizes must be positive"):
        GlobalLayout.row_major(0, k)
    with pytest.raises(LayoutError, match=r"coordinate \(4, 0\) is outside shape \(4, k\)"):
        GlobalLayout.row_major(4, k).offset((4, 0))
    with pytest.raises(LayoutError, match="has rank 1, layout has rank 2"):
        GlobalLayout.row_major(m, k).offset((0,))
    with pytest.raises(LayoutError, match="must be ints or symbolic sizes"):
        global_strided((m, 2.5), strides=(1, 1))
    with pytest.raises(LayoutError, match="rank 1 given 2 strides at line 1, column 1"):
        parse("global_strided((m,), strides=(1, 1))")
