"""``index_sign``: which integer expressions are never negative. Every claim is checked against the values
the expression takes (Python's integers, with the IR's floored division and remainder) over a grid of
values of its variables, the known ones from 0 up, the others of both signs; the analysis of a kernel
marks its block-derived indices, loop variables and view sizes, and lowering drops the lower bound checks
of the windows at such offsets only, which the interpreter runs as the reference executor does."""

from __future__ import annotations

import itertools

import pytest
import torch
from lowering import assert_same_bytes, run_both

import tilevm as tv
from tilevm.dtypes import int32, int64, uint8, uint32
from tilevm.ir import BinaryExpr, BlockIndex, CastExpr, Const, Var, print_program
from tilevm.ir.thread import THREAD_IR
from tilevm.ir.types import ScalarType
from tilevm.passes.index_analysis import analyze_indices
from tilevm.passes.index_sign import is_nonnegative

N, K = Var("n", ScalarType(int32)), Var("k", ScalarType(int32))
SMALL = Var("b", ScalarType(uint8))
KNOWN = frozenset({N})
#: values of the known variable (never negative) and of the unknown ones (either sign)
N_VALUES, K_VALUES, SMALL_VALUES = (0, 1, 7, 300), (-300, -7, -1, 0, 5, 64), (0, 3, 255)


def _evaluate(expression, values: dict) -> int:
    if isinstance(expression, Const):
        return int(expression.value)
    if isinstance(expression, Var):
        return values[expression]
    if isinstance(expression, BlockIndex):
        return values["block"]
    if isinstance(expression, CastExpr):  # the low bits, read in the target's dtype
        target = expression.type.dtype
        value = _evaluate(expression.operand, values) % (1 << target.nbits)
        return value - (1 << target.nbits) if target.is_signed and value >> (target.nbits - 1) else value
    lhs, rhs = _evaluate(expression.lhs, values), _evaluate(expression.rhs, values)
    operations = {
        "add": lambda: lhs + rhs,
        "sub": lambda: lhs - rhs,
        "mul": lambda: lhs * rhs,
        "floordiv": lambda: lhs // rhs,
        "mod": lambda: lhs % rhs,
        "min": lambda: min(lhs, rhs),
        "max": lambda: max(lhs, rhs),
        "and": lambda: lhs & rhs,
        "or": lambda: lhs | rhs,
        "shr": lambda: lhs >> rhs,
    }
    return operations[expression.op]()


def _values(expression) -> list[int]:
    grids = itertools.product(N_VALUES, K_VALUES, SMALL_VALUES, (0, 3))
    results = []
    for n, k, small, block in grids:
        try:
            results.append(_evaluate(expression, {N: n, K: k, SMALL: small, "block": block}))
        except ZeroDivisionError:
            continue
    return results


def _b(op: str, lhs, rhs) -> BinaryExpr:
    return BinaryExpr(op, lhs, rhs)


#: (expression, whether it is claimed never negative)
CASES = [
    (Const(0), True),
    (Const(-1), False),
    (N, True),
    (K, False),
    (BlockIndex(0), True),
    (_b("add", N, Const(3)), True),
    (_b("add", N, K), False),
    (_b("sub", N, Const(1)), False),
    (_b("mul", _b("add", N, Const(1)), Const(16)), True),
    (_b("mul", N, K), False),
    (_b("floordiv", _b("add", N, Const(15)), Const(16)), True),
    (_b("floordiv", K, Const(16)), False),
    (_b("mod", K, Const(8)), True),
    (_b("mod", N, K), False),
    (_b("min", N, _b("mul", BlockIndex(0), Const(64))), True),
    (_b("min", N, K), False),
    (_b("max", K, N), True),
    (_b("and", K, N), True),
    (_b("and", K, Const(-8)), False),
    (_b("or", N, Const(4)), True),
    (_b("or", K, N), False),
    (_b("shr", N, Const(2)), True),
    (_b("shr", K, Const(2)), False),
    (CastExpr(SMALL, int32), True),
    (CastExpr(K, int32), False),
    (CastExpr(Const(0xFFFF_FFFF, uint32), int32), False),
    (CastExpr(CastExpr(SMALL, int32), int64), True),
]


@pytest.mark.parametrize("expression, claimed", CASES, ids=[str(case) for case, _ in CASES])
def test_claims_hold_for_every_value_and_are_made(expression, claimed: bool):
    values = _values(expression)
    assert is_nonnegative(expression, KNOWN) == claimed
    assert (min(values) >= 0) == claimed, values  # sound, and each refusal has a negative value


@tv.kernel(num_warps=1)
def shifted_copy(source: tv.Tensor, destination: tv.Tensor, SHIFT: tv.constexpr):
    """Blocks of 8 rows, the source's window ``SHIFT`` rows before the destination's (in part before the
    tensor's start when ``SHIFT`` is positive)."""
    m = tv.block_idx() * 8
    for j in range(tv.cdiv(source.shape[1], 32)):
        tile = tv.load_global(source, offsets=[m - SHIFT, j * 32], shape=[8, 32])
        tv.store_global(destination, tile, offsets=[m, j * 32])


def test_the_analysis_knows_block_offsets_loop_variables_and_sizes():
    source = torch.zeros(20, 70)
    program = shifted_copy.ir(source, torch.zeros_like(source), SHIFT=0)
    known = {variable.name for variable in analyze_indices(program).nonnegative}
    assert {"source_size0", "source_size1", "m", "j"} <= known


@pytest.mark.parametrize("shift, checks_below", [(0, False), (3, True)])
def test_only_a_window_that_may_start_below_the_tensor_checks_its_lower_bound(shift: int, checks_below: bool):
    """At ``m - 3`` the rows' lower bound is checked; at ``m`` and ``j * 32`` it is not (the columns'
    offset is a loop variable from 0)."""
    source = torch.zeros(20, 70)
    text = print_program(shifted_copy.thread_ir(source, torch.zeros_like(source), SHIFT=shift), THREAD_IR)
    assert (">= 0" in text) == checks_below


@pytest.mark.parametrize("shift", [0, 3])
def test_windows_with_and_without_the_lower_bound_copy_the_reference_bytes(shift: int):
    """Ragged rows (20) and columns (70); NaN poison first: rows before the tensor's start read zeros."""
    generator = torch.Generator().manual_seed(shift)
    source = torch.randn(20, 70, generator=generator)
    destination = torch.full((20, 70), float("nan"))
    reference, lowered = run_both(shifted_copy, (3,), source, destination, SHIFT=shift)
    assert_same_bytes(reference, lowered)
    expected = torch.zeros(20, 70)
    expected[shift:] = source[: 20 - shift]
    torch.testing.assert_close(lowered[1], expected, rtol=0, atol=0)
