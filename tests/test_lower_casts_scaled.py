"""Casts with a power-of-two scale (``tv.cast(..., scale=2**j)``, Tile IR's ``Cast.scale_exponent``): every
code of low-bit integer and float sources, times ``2**j``, rounded once to float16, bfloat16 and float32 by
each rounding, compared bit for bit with the reference (the codec's values times ``2**j`` in float64,
rounded by ``round_to_dtype``); the outputs start as NaN and every element is checked. Then which sequence
the scale takes (a small float's cast to float16 with ``2**(bias - 15)`` multiplies nothing), and the
errors of the DSL and of the IR.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tilevm as tv
from tilevm.dtypes import DType, decode, pack, round_to_dtype
from tilevm.errors import CompilationError
from tilevm.ir import Cast, IRTypeError, Scope, TileType
from tilevm.ir.expr import BinaryExpr, Var
from tilevm.ir.program import Program
from tilevm.ir.rewrite import walk_expressions
from tilevm.passes.lower.casts import scaled_convert
from tilevm.passes.lower.lowering import Lowering, register_type

#: elements a row of the kernel casts; every source's codes fill whole rows
ROW = 64
TARGETS = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
#: (source, exponent): the exponents that cancel the move into float16 (2**(bias - 15)), others both ways,
#: one whose values fall below float16's subnormals (rounded), and integers
CASES = [
    ("float4_e2m1", -14),
    ("float4_e2m1", 3),
    ("float6_e3m2", -12),
    ("float6_e3m2", -22),
    ("float6_e2m3", -14),
    ("float3_e1m1", -15),
    ("float5_e2m2", -30),
    ("float8_e4m3", -8),
    ("float8_e5m2", 5),
    ("int4", -2),
    ("uint8", 7),
    ("int2", -20),
]


@tv.kernel(num_warps=1)
def scaled_cast(
    packed: tv.Tensor, out: tv.Tensor, CODE: tv.constexpr, SCALE: tv.constexpr, ROUNDING: tv.constexpr
):
    row = tv.block_idx()
    nbytes = ROW * CODE.nbits // 8
    codes = tv.view(tv.load_global(packed, offsets=[row, 0], shape=[1, nbytes]), CODE, [1, ROW])
    tv.store_global(out, tv.cast(codes, out.dtype, ROUNDING, scale=SCALE), offsets=[row, 0])


def _every_code(code: DType) -> np.ndarray:
    """Every code of ``code`` at least once, in rows of ``ROW``, shuffled (seeded by the dtype)."""
    count = max(ROW, code.num_codes)
    codes = np.arange(count) % code.num_codes
    np.random.default_rng(code.nbits * 7 + code.exponent_bits).shuffle(codes)
    return codes.reshape(-1, ROW).astype(np.uint64)


def _values(codes: np.ndarray, code: DType) -> np.ndarray:
    if code.is_float:
        return decode(codes, code)
    signed = code.is_signed & (codes >= 1 << (code.nbits - 1))
    return np.where(signed, codes.astype(np.int64) - (1 << code.nbits), codes.astype(np.int64)).astype(float)


def _run(
    name: str, exponent: int, target: str, rounding: str, device: str
) -> tuple[torch.Tensor, np.ndarray]:
    code = tv.dtype(name)
    codes = _every_code(code)
    packed = torch.from_numpy(np.stack([pack(row, code) for row in codes])).to(device)
    out = torch.full(codes.shape, float("nan"), dtype=TARGETS[target], device=device)
    scaled_cast[(codes.shape[0],)](packed, out, CODE=code, SCALE=2.0**exponent, ROUNDING=rounding)
    expected = round_to_dtype(np.ldexp(_values(codes, code), exponent), tv.dtype(target), rounding)
    return out.cpu(), expected


def _check(out: torch.Tensor, expected: np.ndarray) -> None:
    actual = out.double().numpy()
    assert not np.isnan(actual).any() or np.isnan(expected).any()  # every element written
    assert np.array_equal(actual, expected, equal_nan=True), np.argwhere(actual != expected)[:5]


@pytest.mark.parametrize("rounding", ["nearest", "zero"])
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("name", "exponent"), CASES, ids=[f"{n}*2^{e}" for n, e in CASES])
def test_every_code_scaled_and_rounded_once(name: str, exponent: int, target: str, rounding: str):
    _check(*_run(name, exponent, target, rounding, "cpu"))


@pytest.mark.gpu
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("name", "exponent"), CASES, ids=[f"{n}*2^{e}" for n, e in CASES])
def test_every_code_scaled_and_rounded_once_on_the_gpu(name: str, exponent: int, target: str):
    _check(*_run(name, exponent, target, "nearest", "cuda"))


def _multiplies(source: str, target: str, exponent: int) -> int:
    """The multiplies in the Thread IR of a 16-element scaled cast."""
    lowering = Lowering(Program("cast", (), 32, ()), {})
    value = Var("value", register_type(tv.dtype(source), 16))
    with lowering.collect() as body:
        scaled_convert(lowering, value, tv.dtype(target), "nearest", exponent)
    expressions = walk_expressions(tuple(body))
    return sum(isinstance(e, BinaryExpr) and e.op == "mul" for e in expressions)


@pytest.mark.parametrize(("name", "bias"), [("float4_e2m1", 1), ("float6_e3m2", 3), ("float6_e2m3", 1)])
def test_a_scale_that_cancels_the_move_into_halves_multiplies_nothing(name: str, bias: int):
    """A small float's cast to float16 moves its fields into the halves, which are then its value times
    ``2**(bias - 15)``: that scale leaves out the multiply, any other takes it into the same one."""
    assert _multiplies(name, "float16", bias - 15) == 0
    unscaled = _multiplies(name, "float16", 0)
    assert unscaled > 0 and _multiplies(name, "float16", bias - 14) == unscaled


def test_scale_errors_name_the_argument():
    with pytest.raises(CompilationError, match=r"scale is a power of two, got 3\.0"):
        scaled_cast[(1,)](
            torch.zeros(1, 32, dtype=torch.uint8),
            torch.zeros(1, ROW),
            CODE=tv.int4,
            SCALE=3.0,
            ROUNDING="nearest",
        )
    with pytest.raises(CompilationError, match="low-bit integers and floats"):
        scaled_cast[(1,)](
            torch.zeros(1, 32, dtype=torch.uint8),
            torch.zeros(1, ROW, dtype=torch.int32),
            CODE=tv.int4,
            SCALE=0.5,
            ROUNDING="nearest",
        )
    out = Var("out", TileType(tv.float32, (4,), Scope.REGISTER))
    halves = Var("halves", TileType(tv.float16, (4,), Scope.REGISTER))
    with pytest.raises(IRTypeError, match="low-bit integers and floats"):
        Cast(output=out, operand=halves, dtype=tv.float32, scale_exponent=2).result_type()
    codes = Var("codes", TileType(tv.int4, (4,), Scope.REGISTER))
    with pytest.raises(IRTypeError, match=r"2\*\*-64 to 2\*\*64"):
        Cast(output=out, operand=codes, dtype=tv.float32, scale_exponent=65).result_type()
