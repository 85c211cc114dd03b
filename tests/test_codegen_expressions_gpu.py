"""The expression handlers on the GPU (``codegen_gpu``): every exact operator and every cast of the host
tests again, now through the NVPTX back end (casts toward zero, PTX's ``cvt.rz``, only run here), against
``tilevm.ir.semantics``; the approximate functions against float64 math within the PTX ISA's error bounds;
the vector bitcasts whose small elements the back end legalizes, also between vectors of lengths that do
not divide each other."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.codegen_gpu import GpuModule, build_kernels, device_target  # noqa: E402
from tests.codegen_host import codes_of, from_codes  # noqa: E402
from tests.test_codegen_expressions_arithmetic import (  # noqa: E402
    BINARY_CASES,
    CONSTANT_DIVISOR_CASES,
    UNARY_CASES,
    check_binary,
    check_constant_divisor,
    check_unary,
)
from tests.test_codegen_expressions_arithmetic import cases as arithmetic_cases  # noqa: E402
from tests.test_codegen_expressions_casts import ALL_CASES, check_cast  # noqa: E402
from tests.test_codegen_expressions_casts import cases as cast_cases  # noqa: E402
from tests.test_codegen_expressions_values import ALL_BITCASTS, check_bitcast  # noqa: E402
from tilevm.dtypes import DType, bfloat16, float16, float32  # noqa: E402
from tilevm.ir.expr import UnaryExpr, Var  # noqa: E402
from tilevm.ir.semantics import to_carrier  # noqa: E402
from tilevm.ir.thread import Bitcast  # noqa: E402
from tilevm.ir.types import ScalarType  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

#: each approximate function: the float32 inputs it is checked on, and its error bound there as the PTX ISA
#: states it for the instruction (a relative bound, or an absolute one), with the rounding of x * log2(e) or
#: of the product by ln(2) added for exp and log
APPROXIMATE = {
    "exp2": ((-140.0, 127.0), "relative", 2.0**-21),  # subnormal results too
    "exp": ((-87.0, 88.0), "relative", 2.0**-21 + 88 * 2.0**-23),
    "log2": ((1e-30, 1e30), "absolute", 2.0**-21),
    "log": ((1e-30, 1e30), "absolute", 2.0**-20),
    "sin": ((-np.pi, np.pi), "absolute", 2.0**-20),
    "cos": ((-np.pi, np.pi), "absolute", 2.0**-20),
    "tanh": ((-10.0, 10.0), "relative", 2.0**-10.9),
    "rsqrt": ((1e-30, 1e30), "relative", 2.0**-22),
}
REFERENCES = {
    "exp2": np.exp2,
    "exp": np.exp,
    "log2": np.log2,
    "log": np.log,
    "sin": np.sin,
    "cos": np.cos,
    "tanh": np.tanh,
    "rsqrt": lambda x: 1.0 / np.sqrt(x),
}


def _approximate_cases() -> dict[str, tuple]:
    built = {}
    for op in APPROXIMATE:
        for dtype in (float32, float16, bfloat16):
            operand = Var("x", ScalarType(dtype))
            built[f"{op}_{dtype}"] = ((operand,), (), (UnaryExpr(op, operand),))
    return built


@pytest.fixture(scope="module")
def gpu():
    kernels = {name: (inputs, (), (expr,)) for name, (expr, inputs) in arithmetic_cases().items()}
    kernels |= {name: (inputs, (), (expr,)) for name, (expr, inputs) in cast_cases(ALL_CASES).items()}
    kernels |= _approximate_cases()
    for number, (source, (dtype, length)) in enumerate(ALL_BITCASTS):
        operand = Var("x", source)
        kernels[f"bitcast_{number}"] = ((operand,), (), (Bitcast(dtype, length, operand),))
    module = GpuModule(build_kernels(kernels, device_target()), kernels)
    return lambda name, *arrays: module(name, *arrays)[0]


@pytest.mark.parametrize(("op", "dtype", "length"), UNARY_CASES, ids=lambda case: str(case))
def test_unary(gpu, op, dtype, length):
    check_unary(gpu, op, dtype, length)


@pytest.mark.parametrize(("op", "dtype", "length"), BINARY_CASES, ids=lambda case: str(case))
def test_binary(gpu, op, dtype, length):
    check_binary(gpu, op, dtype, length)


@pytest.mark.parametrize(("op", "dtype", "divisor"), CONSTANT_DIVISOR_CASES, ids=lambda case: str(case))
def test_constant_divisor(gpu, op, dtype, divisor):
    check_constant_divisor(gpu, op, dtype, divisor)


@pytest.mark.parametrize(("source", "target", "rounding", "length"), ALL_CASES, ids=lambda case: str(case))
def test_cast(gpu, source, target, rounding, length):
    check_cast(gpu, source, target, rounding, length)


@pytest.mark.parametrize("number", range(len(ALL_BITCASTS)), ids=lambda number: str(ALL_BITCASTS[number]))
def test_bitcast(gpu, number):
    check_bitcast(gpu, number)


def _inputs(op: str, rng: np.random.Generator) -> np.ndarray:
    (low, high), _, _ = APPROXIMATE[op]
    if low > 0:  # log-uniform over the range: every binade, subnormal inputs of float32 too
        values = np.exp(rng.uniform(np.log(low), np.log(high), 1 << 16))
        values[:64] = np.float32(2.0**-140) * np.arange(1, 65)
        return values
    return rng.uniform(low, high, 1 << 16)


@pytest.mark.parametrize("dtype", [float32, float16, bfloat16], ids=str)
@pytest.mark.parametrize("op", sorted(APPROXIMATE))
def test_approximate_function(gpu, op: str, dtype: DType):
    """The result is within the instruction's bound of the float64 value of the (rounded) input; for 16-bit
    dtypes, plus half a unit in the last place of the result's rounding."""
    rng = np.random.default_rng([sorted(APPROXIMATE).index(op), dtype.nbits])
    values = to_carrier(_inputs(op, rng), dtype)
    values = values[np.isfinite(values) & ((values > 0) if APPROXIMATE[op][0][0] > 0 else True)]
    actual = from_codes(gpu(f"{op}_{dtype}", codes_of(values, dtype)), dtype)
    exact = REFERENCES[op](values)
    rounded = to_carrier(exact, dtype)  # beyond the dtype's range: inf, which the result must be too
    overflow = np.isinf(rounded)
    assert np.array_equal(actual[overflow], rounded[overflow])
    actual, exact = actual[~overflow], exact[~overflow]
    _, kind, bound = APPROXIMATE[op]
    error = np.abs(actual - exact)
    allowed = bound * (np.abs(exact) if kind == "relative" else 1.0)
    # the result's own rounding: half a unit in the last place (16-bit dtypes), or half the smallest
    # subnormal's step where results are subnormal (no flush to zero)
    step, smallest = {
        float32: (0.0, 2.0**-149),
        float16: (2.0**-11, 2.0**-24),
        bfloat16: (2.0**-8, 2.0**-133),
    }[dtype]
    allowed = allowed + step * np.abs(exact) + smallest
    if op in ("log", "log2"):
        # the absolute bound holds on the mantissa's logarithm; the exponent added to it makes a result
        # that float32 rounds again (2^-21 of it), and lg2.approx.f32 keeps subnormal inputs (its .ftz
        # form gives -inf) less precisely: 2^-15 seen
        allowed = allowed + 2.0**-21 * np.abs(exact)
        allowed = np.where(values[~overflow] < 2.0**-126, 2.0**-14, allowed)
    worst = np.argmax(error - allowed)
    assert error[worst] <= allowed[worst], (
        f"{op}({values[~overflow][worst]!r}) gave {actual[worst]!r}, not {exact[worst]!r}"
    )
