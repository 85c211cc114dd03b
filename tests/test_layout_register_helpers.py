"""Strategies and reference tables for the register layout tests (no tests here).

The reference tables are computed from numpy formulas, never from the layout code, so every test compares
the algebra against an independent description of what a layout means.
"""

from __future__ import annotations

import functools
import operator
from math import prod

import numpy as np
from hypothesis import strategies as st

from tilevm.layout import LayoutError, RegisterLayout, local, replicated, spatial

MAX_SIZE = 3


def primitive_table(kind: str, shape: tuple[int, ...], order: tuple[int, ...]) -> np.ndarray:
    """The ``[T, L, rank]`` table of ``spatial``/``local`` with dim ``order`` (most significant first)."""
    count = prod(shape)
    digits = np.array(np.unravel_index(np.arange(count), [shape[d] for d in order])).T.reshape(count, -1)
    coords = np.zeros_like(digits)
    coords[:, list(order)] = digits
    return coords[:, None, :] if kind == "spatial" else coords[None, :, :]


def pad_table(table: np.ndarray, rank: int, left: bool = True) -> np.ndarray:
    """``table`` with zero coordinates added for new dims of size 1."""
    zeros = np.zeros((*table.shape[:2], rank - table.shape[2]), dtype=table.dtype)
    return np.concatenate([zeros, table] if left else [table, zeros], axis=2)


def kron_table(a: np.ndarray, a_shape, b: np.ndarray, b_shape) -> np.ndarray:
    """Thread ``ta * TB + tb``, local ``ia * LB + ib`` holds ``ca * shape(B) + cb``."""
    rank = max(len(a_shape), len(b_shape))
    a, b = pad_table(a, rank), pad_table(b, rank)
    b_shape = (1,) * (rank - len(b_shape)) + tuple(b_shape)
    (ta, la, _), (tb, lb, _) = a.shape, b.shape
    out = a[:, None, :, None, :] * np.array(b_shape, dtype=np.int64) + b[None, :, None, :, :]
    return out.reshape(ta * tb, la * lb, rank)


def build(factor: tuple) -> RegisterLayout:
    """The layout of a factor description ``(kind, shape, order)`` or ``("replicated", k)``."""
    if factor[0] == "replicated":
        return replicated(factor[1])
    kind, shape, order = factor
    return (spatial if kind == "spatial" else local)(*shape, order=order)


def factor_table(factor: tuple) -> tuple[np.ndarray, tuple[int, ...]]:
    """The reference table and shape of a factor description."""
    if factor[0] == "replicated":
        return np.zeros((factor[1], 1, 0), dtype=np.int64), ()
    kind, shape, order = factor
    return primitive_table(kind, shape, order), shape


@st.composite
def factors(draw, rank: int = 2) -> tuple:
    """A primitive's description: spatial/local with sizes 1..MAX_SIZE and any order, or a replication."""
    if draw(st.integers(0, 5)) == 0:
        return ("replicated", draw(st.integers(2, 3)))
    shape = tuple(draw(st.lists(st.integers(1, MAX_SIZE), min_size=rank, max_size=rank)))
    order = tuple(draw(st.permutations(range(rank))))
    return (draw(st.sampled_from(["spatial", "local"])), shape, order)


def factor_lists(rank: int = 2, max_factors: int = 3):
    return st.lists(factors(rank), min_size=1, max_size=max_factors)


def product_of(factor_list: list[tuple]) -> RegisterLayout:
    return functools.reduce(operator.mul, [build(f) for f in factor_list])


def product_table(factor_list: list[tuple]) -> np.ndarray:
    table, shape = factor_table(factor_list[0])
    for factor in factor_list[1:]:
        other, other_shape = factor_table(factor)
        table = kron_table(table, shape, other, other_shape)
        rank = max(len(shape), len(other_shape))
        padded = (1,) * (rank - len(shape)) + shape, (1,) * (rank - len(other_shape)) + other_shape
        shape = tuple(int(x) * int(y) for x, y in zip(*padded, strict=True))
    return table


@st.composite
def layouts(draw, rank: int = 2, max_factors: int = 3) -> RegisterLayout:
    """A product of primitives of ``rank`` (the first factor fixes the rank; replication pads)."""
    first = draw(factors(rank).filter(lambda f: f[0] != "replicated"))
    return product_of([first, *draw(st.lists(factors(rank), max_size=max_factors - 1))])


@st.composite
def general_layouts(draw) -> RegisterLayout:
    """A product, then maybe permuted, reduced or reshaped: layouts that are not always products."""
    layout = draw(layouts())
    for _ in range(draw(st.integers(0, 2))):
        op = draw(st.sampled_from(["permute", "reduce", "flatten", "split"]))
        try:
            if op == "permute":
                layout = layout.permute(*draw(st.permutations(range(layout.rank))))
            elif op == "reduce":
                layout = layout.reduce(draw(st.integers(0, layout.rank - 1)))
            elif op == "flatten":
                layout = layout.reshape(-1)
            else:
                layout = layout.reshape(*draw(st.sampled_from([(2, -1), (-1, 2), (3, -1), (-1, 3)])))
        except LayoutError:
            pass
    return layout


def coordinates(table: np.ndarray) -> set[tuple[int, ...]]:
    return {tuple(c) for c in table.reshape(-1, table.shape[2]).tolist()}
