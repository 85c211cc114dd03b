"""The machine dtype each elementwise op on a storage-only dtype computes in (``widening.arithmetic_dtype``)
gives Tile IR's result exactly: on every pair of codes of every low-bit float and integer, the op computed
in the wide dtype and narrowed back (each step by ``tilevm.ir.semantics``: one rounding, or a wrap) equals
the op computed on the small dtype directly."""

import numpy as np
import pytest

from tilevm.dtypes import (
    boolean,
    decode,
    e8m0,
    encode,
    float16,
    float32,
    int_type,
    low_bit_floats,
    ue4m3,
    uint8,
)
from tilevm.ir.expr import COMPARISON_OPS, ROUNDING_OPS
from tilevm.ir.semantics import binary, cast, unary
from tilevm.passes.lower.widening import MACHINE_DTYPES, arithmetic_dtype, code_dtype, is_machine

SMALL_FLOATS = [*low_bit_floats(), e8m0, ue4m3]
SMALL_INTEGERS = [int_type(bits, signed) for bits in range(1, 8) for signed in (True, False)]
FLOAT_BINARY = ["add", "sub", "mul", "div", "max", "min", *COMPARISON_OPS]
FLOAT_UNARY = ["neg", "abs", "sqrt", *ROUNDING_OPS]
INTEGER_BINARY = ["add", "sub", "mul", "max", "min", "and", "or", "xor", "shl", "shr", "floordiv", "mod"]
INTEGER_UNARY = ["neg", "not", "abs", *ROUNDING_OPS]


def all_values(dtype):
    """Every value of ``dtype`` (as its carrier: float64, or int64 for integers)."""
    codes = np.arange(dtype.num_codes)
    values = decode(codes, dtype)
    return values.astype(np.int64) if dtype.is_integer else values.astype(np.float64)


def same(expected: np.ndarray, actual: np.ndarray, dtype) -> bool:
    """Equal as values of ``dtype``: the same codes (NaN and -0.0 included), or the same booleans."""
    if dtype == boolean:
        return np.array_equal(expected, actual)
    return np.array_equal(encode(expected, dtype), encode(actual, dtype))


def widened(op: str, operands: list[np.ndarray], dtype) -> np.ndarray:
    """``op`` as lowering computes it: operands cast to the wide dtype, the op there, the result cast back."""
    wide = arithmetic_dtype(op, dtype)
    assert wide in MACHINE_DTYPES
    wide_operands = [cast(operand, dtype, wide, "nearest") for operand in operands]
    if len(operands) == 1:
        return cast(unary(op, wide_operands[0], wide), wide, dtype, "nearest")
    result = binary(op, *wide_operands, wide)
    return result if op in COMPARISON_OPS else cast(result, wide, dtype, "nearest")


@pytest.mark.parametrize("dtype", SMALL_FLOATS, ids=str)
def test_every_pair_of_small_float_codes_computes_exactly_in_the_wide_float(dtype):
    values = all_values(dtype)
    lhs, rhs = (grid.reshape(-1) for grid in np.meshgrid(values, values))
    for op in FLOAT_BINARY:
        expected = binary(op, lhs, rhs, dtype)
        result_dtype = boolean if op in COMPARISON_OPS else dtype
        assert same(expected, widened(op, [lhs, rhs], dtype), result_dtype), (op, dtype)
    for op in FLOAT_UNARY:
        if op in ROUNDING_OPS and dtype.min_value > 0:
            continue  # e8m0 has no zero, so floor has no value (the type rule refuses it)
        assert same(unary(op, values, dtype), widened(op, [values], dtype), dtype), (op, dtype)


@pytest.mark.parametrize("dtype", SMALL_INTEGERS, ids=str)
def test_every_pair_of_small_integer_values_wraps_as_in_its_own_width(dtype):
    values = all_values(dtype)
    lhs, rhs = (grid.reshape(-1) for grid in np.meshgrid(values, values))
    for op in INTEGER_BINARY + list(COMPARISON_OPS):
        keep = rhs != 0 if op in ("floordiv", "mod") else np.ones_like(rhs, dtype=bool)
        expected = binary(op, lhs[keep], rhs[keep], dtype)
        result_dtype = boolean if op in COMPARISON_OPS else dtype
        assert same(expected, widened(op, [lhs[keep], rhs[keep]], dtype), result_dtype), (op, dtype)
    for op in INTEGER_UNARY:
        assert same(unary(op, values, dtype), widened(op, [values], dtype), dtype), (op, dtype)


def test_the_narrowest_float_is_chosen_where_it_is_exact():
    from tilevm.dtypes import float4_e2m1, float8_e4m3, float8_e5m2

    # f16 holds e4m3's products (2^-18 at least; 448^2 overflows to inf, which saturates back as the exact
    # product does); e5m2's quotients would round twice among f16's subnormals, so they go to f32
    assert arithmetic_dtype("mul", float8_e4m3) == float16
    assert arithmetic_dtype("div", float4_e2m1) == float16
    assert arithmetic_dtype("exp", float4_e2m1) == float32
    assert arithmetic_dtype("add", e8m0) == float32
    assert arithmetic_dtype("add", float8_e5m2) == float16


def test_codes_are_unsigned_integers_of_the_width():
    assert code_dtype(ue4m3) == uint8 and code_dtype(boolean) == int_type(1, signed=False)
    assert is_machine(float16) and not is_machine(e8m0) and not is_machine(int_type(4))
