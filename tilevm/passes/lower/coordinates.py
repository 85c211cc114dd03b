"""Where a thread's elements of a register tile lie: the coordinate of (thread, local) split into a part that
depends only on the thread and a part that depends only on the local index.

A register layout writes each dim as mixed-radix digits (``tilevm.layout.register_modes``); every digit is
either a digit of the thread index or a digit of the local index. So ``coordinate[d] = thread_part[d](t) +
local_part[i, d]``: the thread part is a scalar expression of the thread index (computed once per thread),
the local part a table of constants known at compile time. Lowering addresses memory and masks bounds with
these two parts instead of a table per thread.

>>> from tilevm.layout import spatial
>>> layout = spatial(4, 8).local(2, 1)
>>> local_coordinates(layout).tolist()
[[0, 0], [1, 0]]
>>> bool((coordinate_table(layout) == layout.table()).all())
True
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from tilevm.dtypes import int32
from tilevm.ir.expr import BinaryExpr, Const, Expr
from tilevm.layout import RegisterLayout

__all__ = ["ThreadDigit", "coordinate_table", "local_coordinates", "thread_coordinates", "thread_digits"]


class ThreadDigit(NamedTuple):
    """One thread digit of a dim: ``(t // divisor) % size`` contributes ``weight`` times itself."""

    divisor: int
    size: int
    weight: int


@lru_cache(maxsize=4096)
def thread_digits(layout: RegisterLayout) -> tuple[tuple[ThreadDigit, ...], ...]:
    """Per dim, the thread digits that move along it (replication digits move along none)."""
    modes = layout.modes()
    weights = _mode_weights(modes)
    divisors = _suffix_products([_entry_size(modes, entry) for entry in modes.spatial])
    dim_of = modes.dim_of()
    digits: list[list[ThreadDigit]] = [[] for _ in range(layout.rank)]
    for entry, divisor in zip(modes.spatial, divisors):
        if entry >= 0 and modes.sizes[entry] > 1:
            digits[dim_of[entry]].append(ThreadDigit(divisor, modes.sizes[entry], weights[entry]))
    return tuple(tuple(dim) for dim in digits)


@lru_cache(maxsize=4096)
def local_coordinates(layout: RegisterLayout) -> np.ndarray:
    """``[local_size, rank]``: the part of each local element's coordinate that the local index gives."""
    modes = layout.modes()
    weights = _mode_weights(modes)
    dim_of = modes.dim_of()
    sizes = [modes.sizes[entry] for entry in modes.local]
    table = np.zeros((layout.local_size, layout.rank), dtype=np.int64)
    for index, digits in enumerate(np.ndindex(*sizes) if sizes else [()]):
        for entry, digit in zip(modes.local, digits):
            table[index, dim_of[entry]] += digit * weights[entry]
    table.setflags(write=False)
    return table


def thread_coordinates(layout: RegisterLayout, thread: Expr) -> tuple[Expr, ...]:
    """Per dim, the thread part of the coordinate as an int32 expression of ``thread`` (the thread index)."""
    coordinates = []
    for digits in thread_digits(layout):
        terms = [_digit_expression(thread, digit) for digit in digits]
        total = terms[0] if terms else Const(0, int32)
        for term in terms[1:]:
            total = BinaryExpr("add", total, term)
        coordinates.append(total)
    return tuple(coordinates)


def coordinate_table(layout: RegisterLayout) -> np.ndarray:
    """``[threads, local_size, rank]``: the coordinates the two parts give (to check against ``table()``)."""
    threads = np.arange(layout.num_threads)
    thread_part = np.zeros((layout.num_threads, layout.rank), dtype=np.int64)
    for dim, digits in enumerate(thread_digits(layout)):
        for digit in digits:
            thread_part[:, dim] += (threads // digit.divisor) % digit.size * digit.weight
    return thread_part[:, None, :] + local_coordinates(layout)[None, :, :]


def _digit_expression(thread: Expr, digit: ThreadDigit) -> Expr:
    value = thread
    if digit.divisor > 1:
        value = BinaryExpr("floordiv", value, Const(digit.divisor, int32))
    value = BinaryExpr("mod", value, Const(digit.size, int32))
    if digit.weight > 1:
        value = BinaryExpr("mul", value, Const(digit.weight, int32))
    return value


def _mode_weights(modes) -> dict[int, int]:
    """Each mode's place value within its dim (the product of the sizes of the modes after it)."""
    weights = {}
    for dim_modes in modes.dims:
        for mode, weight in zip(dim_modes, _suffix_products([modes.sizes[m] for m in dim_modes])):
            weights[mode] = weight
    return weights


def _entry_size(modes, entry: int) -> int:
    return modes.sizes[entry] if entry >= 0 else -entry


def _suffix_products(sizes: list[int]) -> list[int]:
    return [math.prod(sizes[position + 1 :]) for position in range(len(sizes))]
