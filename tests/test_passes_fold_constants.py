"""fold_constants: small IR in, the pass, CHECK lines out; and random scalar expressions whose folded form
gives, bit for bit, what the executor computes for the unfolded one and what reference arithmetic written
from the spec (Python ints, numpy floats, the dtype codec) says."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from tilevm import dtypes
from tilevm.ir import (
    EXPRESSION_CLASSES,
    BinaryExpr,
    CastExpr,
    Const,
    DeclareScalar,
    Param,
    Program,
    UnaryExpr,
    Var,
)
from tilevm.ir.expr import COMPARISON_OPS, operator_error
from tilevm.ir.rewrite import walk_expressions
from tilevm.ir.semantics import IntegerDivisionByZero, to_carrier
from tilevm.ir.types import ScalarType
from tilevm.passes.filecheck import check_pass
from tilevm.passes.fold_constants import _FOLDERS, fold_constants
from tilevm.runtime.reference.scalars import evaluate
from tilevm.runtime.reference.state import BlockState


def test_every_expression_class_has_a_folder():
    assert set(_FOLDERS) == set(EXPRESSION_CLASSES)


def fold(source: str, checks: str) -> None:
    check_pass(
        fold_constants,
        f"kernel k(%n: int32, %f: float32, %u: uint8, %p: ptr<float32>) num_threads=32 {{\n{source}\n}}",
        checks,
    )


@pytest.mark.parametrize(
    ("init", "folded"),
    [
        ("7:int4 + 1:int4", "-8:int4"),  # wraps at 4 bits
        ("-7 // 2", "-4"),  # floor, as Python
        ("-7 % 2", "1"),  # the remainder has the divisor's sign
        ("7 % -2", "-1"),
        ("1:uint8 << 9:uint8", "0:uint8"),  # shifting by nbits or more gives 0
        ("-128:int8 >> 9:int8", "-1:int8"),  # or the sign fill
        ("-128:int8 >> 3:int8", "-16:int8"),
        ("1 << -1", "0"),  # a negative amount reads as unsigned: too far
        ("200:uint8 * 2:uint8", "144:uint8"),
        ("max(-3, 2) - min(5:int32, 4)", "-2"),
        ("(6 & 3) | (1 ^ 8)", "11"),
        ("not(5:uint3)", "2:uint3"),
        ("abs(-8:int4)", "-8:int4"),  # |-8| = 8 wraps back to -8
        ("3 < 4", "true"),
        ("nan != nan", "true"),
        ("max(nan, 1.0)", "1.0"),  # max and min ignore NaN
        ("1.0:float16 / 0.0:float16", "inf:float16"),
        ("cast<int4>(7.6)", "7:int4"),  # rounds to 8, saturates to 7
        ('cast<int4, "zero">(-100.0)', "-8:int4"),
        ("cast<uint8>(nan)", "0:uint8"),
        ("cast<uint3>(13:int32)", "5:uint3"),  # integers wrap
        ("cast<bool>(nan)", "true"),
        ("cast<float4_e2m1>(100.0)", "6.0:float4_e2m1"),  # saturates: e2m1 has no infinity
        ("sqrt(2.0:float16)", "1.4140625:float16"),
        ("floor(-0.5)", "-1.0"),  # the rounding ops are exact, so they fold
        ("ceil(-0.5:bfloat16)", "-0.0:bfloat16"),
        ("round(2.5:float16)", "2.0:float16"),  # half to even
        ("round(-0.5)", "-0.0"),
        ("trunc(-inf:float16)", "-inf:float16"),
        ("floor(nan:float16)", "nan:float16"),
        ("ceil(2050.0:float16)", "2050.0:float16"),  # beyond 2^11 every float16 is even
        ("round(-7:int4)", "-7:int4"),  # the identity on integers, as torch
        ("-0.0 + -0.0", "-0.0"),
    ],
)
def test_constant_expressions_fold_to_the_executor_value(init, folded):
    fold(f"  %x: {_result_type(folded)} = declare(init={init})", f"CHECK: declare(init={folded})")


def _result_type(folded: str) -> str:
    if folded in ("true", "false"):
        return "bool"
    if ":" in folded:
        return folded.split(":")[1]
    return "float32" if "." in folded or folded in ("inf", "nan") else "int32"


def test_float_rounding_is_the_dtype_rounding():
    # float16 sums computed by numpy's own float16 (an independent rounding): 0.1 + 0.2 in float16
    expected = float(np.float16(0.1) + np.float16(0.2))
    fold(
        "  %x: float16 = declare(init=0.1:float16 + 0.2:float16)",
        f"CHECK: declare(init={expected!r}:float16)",
    )
    expected = float(np.float32(np.float32(1 / 3) * np.float32(3)))
    fold(f"  %x: float32 = declare(init={1 / 3!r} * 3.0)", f"CHECK: declare(init={expected!r})")


@pytest.mark.parametrize(
    ("init", "folded"),
    [
        ("%n * 1", "%N"),
        ("1 * %n", "%N"),
        ("%n + 0", "%N"),
        ("%n - 0", "%N"),
        ("%n // 1", "%N"),
        ("%n | 0", "%N"),
        ("%n & -1", "%N"),
        ("%u & 255:uint8", "%U"),
        ("%n << 0", "%N"),
        ("%f * 1.0", "%F"),
        ("%f / 1.0", "%F"),
        ("%f - 0.0", "%F"),
        ("%f + -0.0", "%F"),
        ("-0.0 + %f", "%F"),
        ("%f + 0.0", "%F + 0.0"),  # -0.0 + 0.0 is 0.0: not an identity
        ("%f - -0.0", "%F - -0.0"),
        ("0 - %n", "0 - %N"),
        ("%n * 0", "%N * 0"),  # kept: dropping %n would drop what it computes
        ("%u & 127:uint8", "%U & 127:uint8"),
        ("(%n + 0) * (3 - 2)", "%N"),
        ("(%n + 2) - 1", "%N + 1"),
        ("((%n - 3) + 1) + 2", "%N"),
        ("(%n - 2147483647) - 2", "%N + 2147483647"),  # -2^31 - 1 wraps to 2^31 - 1: exact all the same
        ("(%u + 1:uint8) - 3:uint8", "%U - 2:uint8"),
        ("(%u - 1:uint8) - 2:uint8", "%U - 3:uint8"),
        ("(%u + 100:uint8) + 100:uint8", "%U - 56:uint8"),  # 200 is -56 modulo 256
        ("(%n * 2) - 1", "(%N * 2) - 1"),
        ("(%f + 2.0) - 1.0", "(%F + 2.0) - 1.0"),  # not for floats: rounding makes addition not associative
    ],
)
def test_identities_that_keep_the_operand_exactly(init, folded):
    dtype = "float32" if "%f" in init else "uint8" if "%u" in init else "int32"
    fold(
        f"  %x: {dtype} = declare(init={init})",
        f"CHECK: kernel k(%N: int32, %F: float32, %U: uint8,\nCHECK: declare(init={folded})",
    )


def test_what_is_left_to_run_time_stays():
    fold(
        "  %x: int32 = declare(init=7 // 0)\n  %y: float32 = declare(init=exp(1.0))\n"
        "  %z: float32 = declare(init=rsqrt(4.0 * 1.0))",
        "CHECK: declare(init=7 // 0)\nCHECK: declare(init=exp(1.0))\nCHECK: declare(init=rsqrt(4.0))",
    )


def test_folding_reaches_loops_branches_tile_operands_and_global_types():
    fold(
        """  %v: global<float32, [%n * (2 * 4)], strides=[3 - 2]> = global_view(pointer=%p,
      shape=[%n * (2 * 4)], strides=[3 - 2])
  for %i: int32 in range(0 * 5, %n, 1 + 1) {
    if %i < (10 // 3) {
      %t: register<float32, [4]> = load_global(tensor=%v, offsets=[%i * (1 + 1)], shape=[4], dims=[0],
          other=1.0 + 1.0)
      store_global(tensor=%v, value=%t, offsets=[%i], dims=[0])
    }
  }""",
        """
        CHECK: %V: global<float32, [%N * 8], strides=[1]> =
        CHECK-SAME: global_view(pointer=%P, shape=[%N * 8], strides=[1])
        CHECK-NEXT: for %I: int32 in range(0, %N, 2) {
        CHECK-NEXT: if %I < 3 {
        CHECK-NEXT: load_global(tensor=%V, offsets=[%I * 2], shape=[4], dims=[0], other=2.0)
        CHECK-NEXT: store_global(tensor=%V,
        """,
    )


# Random expressions, checked three ways: folded value = reference arithmetic = executor (before and after).

INTEGER_DTYPES = tuple(
    dtypes.dtype(name)
    for name in (
        "int1",
        "int3",
        "int4",
        "uint2",
        "uint5",
        "int8",
        "uint8",
        "int16",
        "int32",
        "uint32",
        "int64",
        "uint64",
    )
)
FLOAT_DTYPES = (dtypes.float16, dtypes.bfloat16, dtypes.float32, dtypes.float8_e4m3, dtypes.float4_e2m1,
                dtypes.float6_e3m2, dtypes.e8m0)  # fmt: skip
ALL_DTYPES = (*INTEGER_DTYPES, *FLOAT_DTYPES, dtypes.boolean)
INTEGER_BINARY = ("add", "sub", "mul", "floordiv", "mod", "max", "min", "and", "or", "xor", "shl", "shr")
FLOAT_BINARY = ("add", "sub", "mul", "div", "max", "min")


def reference_wrap(value: int, dtype) -> int:
    """n-bit two's complement, from the definition: the representative of value mod 2^n in the range."""
    if dtype.is_signed:
        half = 1 << (dtype.nbits - 1)
        return (value + half) % (1 << dtype.nbits) - half
    return value % (1 << dtype.nbits)


def reference_round(value: float, dtype) -> float:
    with np.errstate(over="ignore"):  # to infinity, as IEEE rounds
        if dtype == dtypes.float16:
            return float(np.float16(value))  # numpy's own rounding of float64 to half
        if dtype == dtypes.float32:
            return float(np.float32(value))
    return float(dtypes.round_to_dtype([value], dtype)[0])  # the codec: the ground truth of narrow formats


def reference_binary(op, a, b, dtype):
    if op in COMPARISON_OPS:
        return {"eq": a == b, "ne": a != b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]
    if dtype.is_float:
        if op in ("max", "min") and (math.isnan(a) or math.isnan(b)):
            return b if math.isnan(a) else a
        with np.errstate(all="ignore"):
            exact = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
                     "max": max, "min": min}[op](np.float64(a), np.float64(b))  # fmt: skip
        return reference_round(float(exact), dtype)
    if op in ("shl", "shr"):
        amount = b % (1 << dtype.nbits)  # read as unsigned
        if amount >= dtype.nbits:
            return -1 if op == "shr" and a < 0 else 0
        return reference_wrap(a << amount if op == "shl" else a >> amount, dtype)
    if op in ("floordiv", "mod") and b == 0:
        raise ZeroDivisionError
    results = {"add": a + b, "sub": a - b, "mul": a * b, "max": max(a, b), "min": min(a, b), "and": a & b,
               "or": a | b, "xor": a ^ b, "floordiv": a // b if b else 0,
               "mod": a % b if b else 0}  # fmt: skip
    return reference_wrap(results[op], dtype)


def reference_cast(value, source, target):
    if target == dtypes.boolean:
        return value != 0
    if target.is_integer and source.is_float:
        if math.isnan(value):
            return 0
        return int(min(max(np.rint(value), target.min_value), target.max_value))
    return reference_round(float(value), target) if target.is_float else reference_wrap(int(value), target)


#: Python's own rounding functions (its round rounds floats half to even)
ROUNDING_FUNCTIONS = {"floor": math.floor, "ceil": math.ceil, "round": round, "trunc": math.trunc}


def reference_integral(op: str, value: float) -> float:
    """IEEE's floor, ceil, roundeven and trunc: inf and NaN stay, a zero result keeps the operand's sign."""
    if not math.isfinite(value):
        return value
    return math.copysign(float(ROUNDING_FUNCTIONS[op](value)), value)


def reference(expression, values):
    if isinstance(expression, Var):
        return values[expression.uid]
    if isinstance(expression, Const):
        return expression.value
    if isinstance(expression, CastExpr):
        return reference_cast(
            reference(expression.operand, values), expression.operand.type.dtype, expression.dtype
        )
    if isinstance(expression, UnaryExpr):
        value, dtype = reference(expression.operand, values), expression.type.dtype
        if dtype.is_float:
            if expression.op in ROUNDING_FUNCTIONS:
                return reference_integral(expression.op, value)
            with np.errstate(invalid="ignore"):
                exact = {"neg": -value, "abs": abs(value), "sqrt": float(np.sqrt(np.float64(value)))}
            return reference_round(exact[expression.op], dtype)
        if expression.op in ROUNDING_FUNCTIONS:
            return value
        return reference_wrap({"neg": -value, "abs": abs(value), "not": ~value}[expression.op], dtype)
    lhs, rhs = reference(expression.lhs, values), reference(expression.rhs, values)
    return reference_binary(expression.op, lhs, rhs, expression.lhs.type.dtype)


class ExpressionMaker:
    """Random expression trees over constants and a few variables, every constant a value of its dtype."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.variables: dict[object, list[Var]] = {}

    def value(self, dtype):
        if dtype.is_integer:
            special = [0, 1, -1, dtype.min_value, dtype.max_value, dtype.nbits, dtype.nbits - 1]
            pick = self.rng.choice(special) if self.rng.random() < 0.4 else None
            return reference_wrap(pick if pick is not None else self.rng.randint(-(2**64), 2**64), dtype)
        special = [0.0, -0.0, 1.0, -1.0, math.inf, math.nan, dtype.max_value, 0.5]
        raw = self.rng.choice(special) if self.rng.random() < 0.3 else self.rng.uniform(-10, 10)
        return reference_round(raw, dtype)

    def leaf(self, dtype):
        if self.rng.random() < 0.3:
            pool = self.variables.setdefault(dtype, [Var(f"v{dtype}", ScalarType(dtype))])
            return pool[0]
        return Const(self.value(dtype), dtype)

    def expression(self, dtype, depth: int):
        if dtype == dtypes.boolean:
            if depth == 0 or self.rng.random() < 0.2:
                return Const(self.rng.random() < 0.5, dtype)
            operand_dtype = self.rng.choice(INTEGER_DTYPES + FLOAT_DTYPES)
            operands = (self.expression(operand_dtype, depth - 1), self.expression(operand_dtype, depth - 1))
            return BinaryExpr(self.rng.choice(COMPARISON_OPS), *operands)
        if depth == 0 or self.rng.random() < 0.2:
            return self.leaf(dtype)
        choice = self.rng.random()
        if choice < 0.15:
            source = self.rng.choice(ALL_DTYPES)
            return CastExpr(self.expression(source, depth - 1), dtype)
        if choice < 0.3:
            ops = ("neg", "abs", "sqrt") if dtype.is_float else ("neg", "abs", "not")
            ops += tuple(
                op for op in ROUNDING_FUNCTIONS if operator_error(op, dtype) is None
            )  # e8m0: no zero
            return UnaryExpr(self.rng.choice(ops), self.expression(dtype, depth - 1))
        op = self.rng.choice(FLOAT_BINARY if dtype.is_float else INTEGER_BINARY)
        return BinaryExpr(op, self.expression(dtype, depth - 1), self.expression(dtype, depth - 1))


def executor_value(expression, bound):
    state = BlockState(block_index=(0, 0, 0), grid=(1, 1, 1), rng=np.random.default_rng(0), run=None)
    for variable, value in bound:
        state.bind(variable, to_carrier(value, variable.type.dtype))
    return evaluate(expression, state)


def same_bits(a, b) -> bool:
    """Equal values of one kind (bool, integer or float), NaN equal to NaN and -0.0 not equal to 0.0."""
    a, b = np.asarray(a), np.asarray(b)
    kinds = {kind: group for group in ("b", "iu", "f") for kind in group}
    if kinds[a.dtype.kind] != kinds[b.dtype.kind]:
        return False
    if a.dtype.kind == "f":
        if np.isnan(a) or np.isnan(b):  # NaN is one canonical value in every format (its sign is no bit)
            return bool(np.isnan(a) and np.isnan(b))
        return bool(a == b and np.signbit(a) == np.signbit(b))
    return int(a) == int(b)


@pytest.mark.parametrize("seed", range(6))
def test_random_expressions_fold_to_reference_and_executor_values(seed):
    rng = random.Random(seed)
    maker = ExpressionMaker(rng)
    for _ in range(80):
        dtype = rng.choice(ALL_DTYPES)
        expression = maker.expression(dtype, depth=rng.randint(1, 4))
        variables = sorted(
            {v.uid: v for vs in maker.variables.values() for v in vs}.values(), key=lambda v: v.uid
        )
        declare = DeclareScalar(output=Var("x", expression.type), init=expression)
        program = Program("random", tuple(Param(v) for v in variables), 32, (declare,))
        folded = fold_constants(program).body[0].init
        bound = [(v, maker.value(v.type.dtype)) for v in variables]
        values = {v.uid: value for v, value in bound}
        try:
            expected = reference(expression, values)
        except ZeroDivisionError:
            with pytest.raises(IntegerDivisionByZero, match="division by zero"):
                executor_value(expression, bound)
            with pytest.raises(IntegerDivisionByZero, match="division by zero"):
                executor_value(folded, bound)
            continue
        assert same_bits(executor_value(expression, bound), expected), (expression, values)
        assert same_bits(executor_value(folded, bound), expected), (expression, folded, values)
        if not any(isinstance(e, Var) for e in walk_expressions(expression)):
            assert isinstance(folded, Const) and same_bits(folded.value, expected), (expression, folded)
