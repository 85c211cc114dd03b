"""Unary and binary operators as code generation emits them, run on this CPU (LLVM compiles the same IR for
the host; ``codegen_host``) and compared code for code with ``tilevm.ir.semantics``: every machine dtype, on
scalars and on vectors, every code of the 8- and 16-bit dtypes for unary operators, every pair of 8-bit
codes and random pairs (with zeros, infinities, NaN, extremes, out-of-range shift amounts, negative
divisors) for binary ones. The approximate functions (PTX instructions) are checked in
``test_codegen_expressions_ptx.py`` and on the GPU."""

from __future__ import annotations

import numpy as np
import pytest

from tests.codegen_host import codes_of, compile_host, from_codes, same_codes, sample_codes, special_codes
from tilevm.dtypes import (
    DType,
    bfloat16,
    boolean,
    float16,
    float32,
    int8,
    int16,
    int32,
    int64,
    uint8,
    uint16,
    uint32,
    uint64,
)
from tilevm.ir import semantics
from tilevm.ir.expr import BINARY_OPS, COMPARISON_OPS, BinaryExpr, Const, UnaryExpr, Var, operator_error
from tilevm.ir.types import ScalarType, VectorType

DTYPES = (boolean, int8, int16, int32, int64, uint8, uint16, uint32, uint64, float16, bfloat16, float32)
#: the vector lengths each dtype is also tested at (packed f16x2, four bytes of a word, ...)
VECTOR_LENGTHS = {float16: 2, bfloat16: 2, float32: 2, int8: 4, uint8: 4, int32: 2, boolean: 4, uint64: 2}
EXACT_UNARY = ("neg", "not", "abs", "sqrt", "floor", "ceil", "round", "trunc")
COUNT = 1 << 16  # every 16-bit code, every pair of 8-bit codes
PAIRS = 1 << 14  # random pairs of wider codes


def _register(dtype: DType, length: int) -> ScalarType | VectorType:
    return VectorType(dtype, length) if length > 1 else ScalarType(dtype)


def _shapes(dtype: DType) -> list[int]:
    return [1, VECTOR_LENGTHS[dtype]] if dtype in VECTOR_LENGTHS else [1]


UNARY_CASES = [
    (op, dtype, length)
    for dtype in DTYPES
    for op in EXACT_UNARY
    if not operator_error(op, dtype)
    for length in _shapes(dtype)
]
BINARY_CASES = [
    (op, dtype, length)
    for dtype in DTYPES
    for op in BINARY_OPS
    if not operator_error(op, dtype)
    for length in _shapes(dtype)
]


#: integer division by constants, which code generation turns into shifts and masks for powers of two
CONSTANT_DIVISOR_CASES = [
    (op, dtype, divisor)
    for op in ("floordiv", "mod")
    for dtype in (int8, int16, int32, int64, uint8, uint32)
    for divisor in (1, 2, 8, 1 << (dtype.nbits - 2), 3, 7, -1, -4)
    if dtype.is_signed or divisor > 0
]


def _name(op: str, dtype: DType, length: int) -> str:
    return f"{op}_{dtype}_{length}"


def cases() -> dict[str, tuple]:
    """Every case as ``name: (expression, inputs)``."""
    built = {}
    for op, dtype, length in UNARY_CASES:
        operand = Var("x", _register(dtype, length))
        built["u_" + _name(op, dtype, length)] = (UnaryExpr(op, operand), (operand,))
    for op, dtype, length in BINARY_CASES:
        lhs, rhs = Var("a", _register(dtype, length)), Var("b", _register(dtype, length))
        built["b_" + _name(op, dtype, length)] = (BinaryExpr(op, lhs, rhs), (lhs, rhs))
    for op, dtype, divisor in CONSTANT_DIVISOR_CASES:
        lhs = Var("a", ScalarType(dtype))
        built[f"c_{op}_{dtype}_{divisor}"] = (BinaryExpr(op, lhs, Const(divisor, dtype)), (lhs,))
    return built


@pytest.fixture(scope="module")
def functions():
    compiled = compile_host(cases())
    return lambda name, *arrays: compiled[name](*arrays)


def _shaped(codes: np.ndarray, length: int) -> np.ndarray:
    return codes.reshape(-1, length) if length > 1 else codes


@pytest.mark.parametrize(("op", "dtype", "length"), UNARY_CASES, ids=lambda case: str(case))
def test_unary(functions, op, dtype, length):
    check_unary(functions, op, dtype, length)


def check_unary(run, op: str, dtype: DType, length: int) -> None:
    """``run(name, *codes)``, the compiled case, against the semantics."""
    rng = np.random.default_rng([EXACT_UNARY.index(op), dtype.nbits, length, dtype.is_float])
    codes = _shaped(sample_codes(dtype, COUNT, rng), length)
    actual = run("u_" + _name(op, dtype, length), codes)
    expected = codes_of(semantics.unary(op, from_codes(codes, dtype), dtype), dtype)
    wrong = same_codes(actual, expected, dtype)
    assert not wrong.any(), (
        f"{op} on {dtype}: {codes[wrong][:5]} gave {actual[wrong][:5]}, not {expected[wrong][:5]}"
    )


def _operands(op: str, dtype: DType, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if dtype.nbits <= 8:  # every pair of codes
        grid = np.arange(1 << dtype.nbits, dtype=np.uint8)
        lhs, rhs = (axis.ravel() for axis in np.meshgrid(grid, grid))
        lhs, rhs = np.resize(lhs, COUNT), np.resize(rhs, COUNT)
    else:
        lhs, rhs = sample_codes(dtype, PAIRS, rng), sample_codes(dtype, PAIRS, rng)
        special = special_codes(dtype)  # every pair of special values too (MIN // -1, inf - inf, ...)
        lhs[: special.size**2], rhs[: special.size**2] = (
            np.repeat(special, special.size),
            np.tile(special, special.size),
        )
    if op in ("floordiv", "mod"):
        # a zero divisor is undefined; -1 (MIN // -1 wraps) must stay
        rhs = np.where(rhs == 0, rng.integers(1, 100, len(rhs)).astype(rhs.dtype), rhs)
    return _shaped(lhs, length), _shaped(rhs, length)


@pytest.mark.parametrize(("op", "dtype", "length"), BINARY_CASES, ids=lambda case: str(case))
def test_binary(functions, op, dtype, length):
    check_binary(functions, op, dtype, length)


def check_binary(run, op: str, dtype: DType, length: int) -> None:
    """``run(name, *codes)``, the compiled case, against the semantics."""
    rng = np.random.default_rng([BINARY_OPS.index(op), dtype.nbits, length, dtype.is_float, dtype.is_signed])
    lhs, rhs = _operands(op, dtype, length, rng)
    actual = run("b_" + _name(op, dtype, length), lhs, rhs)
    result = boolean if op in COMPARISON_OPS else dtype
    expected = codes_of(semantics.binary(op, from_codes(lhs, dtype), from_codes(rhs, dtype), dtype), result)
    # max and min of 0.0 and -0.0 may give either (LLVM's maxnum; numpy gives the first)
    wrong = same_codes(actual, expected, result, signed_zero=op not in ("max", "min"))
    operands = f"{lhs[wrong][:4]}, {rhs[wrong][:4]}"
    assert not wrong.any(), f"{op} on {dtype}: {operands} gave {actual[wrong][:4]}, not {expected[wrong][:4]}"


@pytest.mark.parametrize(("op", "dtype", "divisor"), CONSTANT_DIVISOR_CASES, ids=lambda case: str(case))
def test_constant_divisor(functions, op, dtype, divisor):
    check_constant_divisor(functions, op, dtype, divisor)


def check_constant_divisor(run, op: str, dtype: DType, divisor: int) -> None:
    """``run(name, *codes)``, the compiled case, against the semantics."""
    rng = np.random.default_rng([divisor % 1000, dtype.nbits, op == "mod"])
    lhs = sample_codes(dtype, PAIRS, rng)
    actual = run(f"c_{op}_{dtype}_{divisor}", lhs)
    expected = codes_of(semantics.binary(op, from_codes(lhs, dtype), np.array(divisor), dtype), dtype)
    wrong = same_codes(actual, expected, dtype)
    assert not wrong.any(), (
        f"{lhs[wrong][:4]} {op} {divisor} gave {actual[wrong][:4]}, not {expected[wrong][:4]}"
    )


def test_every_operator_is_tested():
    """The cases cover every operator the semantics define, but the approximate functions, on every dtype
    the type rules allow."""
    tested = {(op, dtype) for op, dtype, _ in UNARY_CASES + BINARY_CASES}
    approximate = set(semantics.FLOAT_UNARY) - set(EXACT_UNARY)
    assert approximate == {"exp", "exp2", "log", "log2", "rsqrt", "sin", "cos", "tanh"}
    for dtype in DTYPES:
        for op in (*EXACT_UNARY, *BINARY_OPS):
            assert (op, dtype) in tested or operator_error(op, dtype)
