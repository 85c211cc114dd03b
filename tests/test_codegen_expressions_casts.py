"""Casts between machine dtypes as code generation emits them, run on this CPU (``codegen_host``) and
compared code for code with ``tilevm.ir.semantics.cast``: every pair of dtypes, scalars and two-element
vectors, every code of the 8- and 16-bit sources, random and special codes of wider ones (NaN, infinities,
values beyond the target's range, rounding ties, 32-bit integers whose bfloat16 rounding float32 would
decide twice). Casts to a float toward zero are PTX's ``cvt.rz``, which does not run here:
``test_codegen_expressions_ptx.py`` checks the instructions, ``test_codegen_expressions_gpu.py``
the values."""

from __future__ import annotations

import numpy as np
import pytest

from tests.codegen_host import codes_of, compile_host, from_codes, same_codes, sample_codes
from tests.test_codegen_expressions_arithmetic import DTYPES
from tilevm.dtypes import DType, bfloat16, int32, uint32
from tilevm.ir import semantics
from tilevm.ir.expr import CastExpr, Var
from tilevm.ir.types import ScalarType, VectorType

COUNT = 1 << 16  # every code of a 16-bit source
WIDE_COUNT = 1 << 14  # random codes of a wider one

ALL_CASES = [
    (source, target, rounding, length)
    for source in DTYPES
    for target in DTYPES
    for rounding in ("nearest", "zero")
    for length in (1, 2)
]
#: what runs here: toward zero to a float is PTX's cvt.rz (unless exact: a float widening)
CASES = [
    (source, target, rounding, length)
    for source, target, rounding, length in ALL_CASES
    if rounding == "nearest" or not target.is_float or (source.is_float and source.nbits < target.nbits)
]


def _name(source: DType, target: DType, rounding: str, length: int) -> str:
    return f"{source}_{target}_{rounding}_{length}"


def cases(chosen: list[tuple]) -> dict[str, tuple]:
    """The ``chosen`` cases as ``name: (expression, inputs)``."""
    built = {}
    for source, target, rounding, length in chosen:
        operand = Var("x", VectorType(source, length) if length > 1 else ScalarType(source))
        built[_name(source, target, rounding, length)] = (CastExpr(operand, target, rounding), (operand,))
    return built


@pytest.fixture(scope="module")
def functions():
    compiled = compile_host(cases(CASES))
    return lambda name, *arrays: compiled[name](*arrays)


def _operand(source: DType, target: DType, rng: np.random.Generator) -> np.ndarray:
    codes = sample_codes(source, COUNT if source.nbits <= 16 else WIDE_COUNT, rng)
    if source in (int32, uint32) and target == bfloat16:
        # 2^e + 2^(e-8) + low, low below half of float32's step: float32 rounds it to the tie between two
        # bfloat16 values, which then goes to even (down); rounded once, it goes up
        exponent = rng.integers(25, 31, 512)
        ties = (1 << exponent) + (1 << (exponent - 8)) + rng.integers(1, 1 << (exponent - 24))
        signs = np.where(rng.random(512) < 0.5, -1, 1) if source == int32 else 1
        codes[:512] = (ties * signs).astype(np.int64).astype(np.uint32)
    return codes


@pytest.mark.parametrize(("source", "target", "rounding", "length"), CASES, ids=lambda case: str(case))
def test_cast(functions, source, target, rounding, length):
    check_cast(functions, source, target, rounding, length)


def check_cast(run, source: DType, target: DType, rounding: str, length: int) -> None:
    """``run(name, *codes)``, the compiled case, against the semantics."""
    rng = np.random.default_rng([DTYPES.index(source), DTYPES.index(target), length, rounding == "zero"])
    codes = _operand(source, target, rng)
    codes = codes.reshape(-1, length) if length > 1 else codes
    actual = run(_name(source, target, rounding, length), codes)
    expected = codes_of(semantics.cast(from_codes(codes, source), source, target, rounding), target)
    wrong = same_codes(actual, expected, target)
    assert not wrong.any(), f"{codes[wrong][:5]} gave {actual[wrong][:5]}, not {expected[wrong][:5]}"
