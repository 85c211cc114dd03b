"""Elementwise arithmetic of the reference executor against Python integers, torch and the codec."""

import numpy as np
import pytest
import torch
from reference_memory import from_memory, to_memory

from tilevm.dtypes import (
    DType,
    boolean,
    decode,
    float6_e3m2,
    float16,
    float32,
    int3,
    int4,
    int8,
    int32,
    round_to_dtype,
    uint5,
    uint8,
)
from tilevm.errors import SourceLocation
from tilevm.ir import (
    AllocRegister,
    Binary,
    BinaryExpr,
    Const,
    GlobalView,
    LoadGlobal,
    ProgramBuilder,
    StoreGlobal,
    Unary,
    UnaryExpr,
)
from tilevm.runtime.reference import ExecutionError, execute


def run_elementwise(make, operands, result_dtype: DType) -> np.ndarray:
    """Load each (values, dtype) operand as a tile, apply ``make(builder, *tiles)``, store and read back."""
    count = len(operands[0][0])
    builder = ProgramBuilder("elementwise", num_threads=32)
    pointers = [builder.pointer_param(f"in{i}", dtype) for i, (_, dtype) in enumerate(operands)]
    out = builder.pointer_param("out", result_dtype)
    tiles = []
    for pointer in pointers:
        view = builder.emit_output(
            GlobalView, "view", pointer=pointer, shape=(Const(count),), strides=(Const(1),)
        )
        tiles.append(
            builder.emit_output(
                LoadGlobal, "tile", tensor=view, offsets=(Const(0),), shape=(count,), dims=(0,)
            )
        )
    result = make(builder, *tiles)
    out_view = builder.emit_output(
        GlobalView, "out_view", pointer=out, shape=(Const(count),), strides=(Const(1),)
    )
    builder.emit(StoreGlobal(tensor=out_view, value=result, offsets=(Const(0),), dims=(0,)))
    memory = [to_memory(values, dtype) for values, dtype in operands]
    out_memory = to_memory(np.full(count, 1), result_dtype)
    execute(builder.build(), [*memory, out_memory], grid=(1,))
    return from_memory(out_memory, result_dtype, count)


def binary_op(op):
    return lambda builder, lhs, rhs: builder.emit_output(Binary, "result", op=op, lhs=lhs, rhs=rhs)


def unary_op(op):
    return lambda builder, operand: builder.emit_output(Unary, "result", op=op, operand=operand)


def wrap(value: int, dtype: DType) -> int:
    modulus = 1 << dtype.nbits
    value %= modulus
    return value - modulus if dtype.is_signed and value >= modulus // 2 else value


PYTHON_OPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "max": max,
    "min": min,
    "and": lambda a, b: a & b,
    "or": lambda a, b: a | b,
    "xor": lambda a, b: a ^ b,
    "floordiv": lambda a, b: a // b,
    "mod": lambda a, b: a % b,
}


def random_nonzero_ints(dtype: DType, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.integers(dtype.min_value, dtype.max_value + 1, count)
    return np.where(values == 0, 1, values)


@pytest.mark.parametrize("dtype", [int3, uint5, int8, uint8, int32])
@pytest.mark.parametrize("op", sorted(PYTHON_OPS))
def test_integer_binary_ops_wrap_like_n_bit_hardware(dtype, op):
    seed = 100 * dtype.nbits + sorted(PYTHON_OPS).index(op)
    lhs, rhs = random_nonzero_ints(dtype, 40, seed), random_nonzero_ints(dtype, 40, seed + 1)
    result = run_elementwise(binary_op(op), [(lhs, dtype), (rhs, dtype)], dtype)
    expected = [wrap(PYTHON_OPS[op](int(a), int(b)), dtype) for a, b in zip(lhs, rhs)]
    assert result.astype(np.int64).tolist() == expected


@pytest.mark.parametrize("dtype", [int4, uint5, int8, uint8])
def test_shifts_clamp_their_amount_like_ptx(dtype):
    rng = np.random.default_rng(dtype.nbits)
    values = random_nonzero_ints(dtype, 48, dtype.nbits + 7)
    amounts = rng.integers(0, min(dtype.nbits + 3, dtype.max_value + 1), 48)
    shifted_left = run_elementwise(binary_op("shl"), [(values, dtype), (amounts, dtype)], dtype)
    shifted_right = run_elementwise(binary_op("shr"), [(values, dtype), (amounts, dtype)], dtype)
    for value, amount, left, right in zip(values, amounts, shifted_left, shifted_right):
        value, amount = int(value), int(amount)
        assert left == (wrap(value << amount, dtype) if amount < dtype.nbits else 0)
        sign_fill = -1 if value < 0 else 0
        assert right == (value >> amount if amount < dtype.nbits else sign_fill)


@pytest.mark.parametrize("dtype", [int4, uint5])
def test_integer_unary_ops(dtype):
    values = np.arange(dtype.min_value, dtype.max_value + 1)
    for op, python in {"neg": lambda a: -a, "not": lambda a: ~a, "abs": abs}.items():
        result = run_elementwise(unary_op(op), [(values, dtype)], dtype)
        assert result.astype(np.int64).tolist() == [wrap(python(int(v)), dtype) for v in values]


TORCH_OPS = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "max": torch.fmax,
             "min": torch.fmin}  # fmt: skip


@pytest.mark.parametrize(("dtype", "torch_dtype"), [(float16, torch.float16), (float32, torch.float32)])
@pytest.mark.parametrize("op", sorted(TORCH_OPS))
def test_float_binary_ops_match_torch_exactly(dtype, torch_dtype, op):
    rng = np.random.default_rng(sorted(TORCH_OPS).index(op) + 10 * dtype.nbits)
    lhs, rhs = rng.uniform(-100, 100, 64), rng.uniform(-2, 2, 64)
    lhs[:3], rhs[3:6] = np.nan, np.nan  # NaN operands (max and min ignore them)
    lhs, rhs = round_to_dtype(lhs, dtype), round_to_dtype(rhs, dtype)
    result = run_elementwise(binary_op(op), [(lhs, dtype), (rhs, dtype)], dtype)
    expected = TORCH_OPS[op](torch.tensor(lhs, dtype=torch_dtype), torch.tensor(rhs, dtype=torch_dtype))
    np.testing.assert_array_equal(result, expected.double().numpy())


@pytest.mark.parametrize("op", ["exp", "exp2", "log", "log2", "sqrt", "rsqrt", "sin", "cos", "tanh"])
def test_float_unary_ops_are_float64_rounded_once(op):
    rng = np.random.default_rng(len(op))
    values = round_to_dtype(rng.uniform(0.1, 8.0, 64), float32).astype(np.float64)
    result = run_elementwise(unary_op(op), [(values, float32)], float32)
    reference = torch.tensor(values, dtype=torch.float32)
    functions = {"rsqrt": torch.rsqrt, "exp2": torch.exp2}
    expected = functions.get(op, getattr(torch, op))(reference).double().numpy()
    # torch's float32 transcendentals are within 1 ulp, while ours are correctly rounded: allow 1 ulp.
    np.testing.assert_allclose(result, expected, rtol=2.0**-23, atol=0)


def test_low_bit_float_arithmetic_rounds_to_nearest_even():
    rng = np.random.default_rng(21)
    lhs = decode(rng.integers(1, 64, 50), float6_e3m2).astype(np.float64)
    rhs = decode(rng.integers(1, 64, 50), float6_e3m2).astype(np.float64)
    for op, python in {"add": np.add, "mul": np.multiply, "sub": np.subtract}.items():
        result = run_elementwise(binary_op(op), [(lhs, float6_e3m2), (rhs, float6_e3m2)], float6_e3m2)
        np.testing.assert_array_equal(result, round_to_dtype(python(lhs, rhs), float6_e3m2))


def test_comparisons_with_nan_are_false_except_ne():
    lhs = np.array([1.0, np.nan, 2.0, np.nan, -3.0, 4.0])
    rhs = np.array([1.0, 1.0, np.nan, np.nan, 5.0, -4.0])
    for op, python in {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
                       "gt": np.greater, "ge": np.greater_equal}.items():  # fmt: skip
        result = run_elementwise(binary_op(op), [(lhs, float32), (rhs, float32)], boolean)
        assert result.astype(bool).tolist() == python(lhs, rhs).tolist(), op


def test_scalar_operand_broadcasts_over_the_tile():
    values = random_nonzero_ints(int8, 20, 31)

    def add_scalar(builder, tile):
        return builder.emit_output(Binary, "result", op="add", lhs=tile, rhs=Const(100, int8))

    result = run_elementwise(add_scalar, [(values, int8)], int8)
    assert result.astype(np.int64).tolist() == [wrap(int(v) + 100, int8) for v in values]


def scalar_program(expression, location=None):
    """A program that fills a one-element int32 tile with ``expression`` and stores it to ``out``."""
    builder = ProgramBuilder("scalar", num_threads=32)
    out = builder.pointer_param("out", int32)
    builder.location = location
    tile = builder.emit_output(AllocRegister, "tile", dtype=int32, shape=(1,), init=expression)
    view = builder.emit_output(GlobalView, "view", pointer=out, shape=(Const(1),), strides=(Const(1),))
    builder.emit(StoreGlobal(tensor=view, value=tile, offsets=(Const(0),), dims=(0,)))
    return builder.build()


@pytest.mark.parametrize(("a", "b"), [(7, 2), (-7, 2), (7, -2), (-7, -2), (-9, 3), (5, 9), (-5, 9)])
def test_scalar_floordiv_and_mod_follow_python(a, b):
    for op, python in {"floordiv": a // b, "mod": a % b}.items():
        out = torch.zeros(1, dtype=torch.int32)
        execute(scalar_program(BinaryExpr(op, Const(a), Const(b))), [out], grid=(1,))
        assert int(out) == python, op


def test_scalar_expressions_wrap_and_negate():
    out = torch.zeros(1, dtype=torch.int32)
    expression = UnaryExpr("neg", BinaryExpr("mul", Const(2**30), Const(4)))  # 2^32 wraps to 0
    execute(scalar_program(BinaryExpr("sub", expression, Const(2**31 - 1))), [out], grid=(1,))
    assert int(out) == -(2**31) + 1


def test_integer_division_by_zero_is_reported_at_the_instruction():
    location = SourceLocation("kernel.py", 12, 4)
    program = scalar_program(BinaryExpr("mod", Const(3), Const(0)), location)
    with pytest.raises(ExecutionError, match=r"kernel\.py:12:4: .*division by zero"):
        execute(program, [torch.zeros(1, dtype=torch.int32)], grid=(1,))

    def divide_by_tile(builder, lhs, rhs):
        builder.location = SourceLocation("kernel.py", 20, 8)
        return builder.emit_output(Binary, "quotient", op="floordiv", lhs=lhs, rhs=rhs)

    with pytest.raises(ExecutionError, match=r"kernel\.py:20:8: .*division by zero"):
        run_elementwise(divide_by_tile, [(np.array([1, 2]), int8), (np.array([1, 0]), int8)], int8)
