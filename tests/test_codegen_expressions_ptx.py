"""The PTX of the expressions whose instructions do not run on this CPU: the thread's indices (special
registers, read once), shared-memory addresses, PTX's approximate functions (never the ``.ftz`` forms, no
libdevice), correctly rounded division and square root, packed half arithmetic, casts toward zero
(``cvt.rz``), and vector moves of sub-byte elements; each spelled as the PTX ISA spells it and assembled with
ptxas for sm_80 and sm_90. ``test_codegen_expressions_gpu.py`` checks their numbers on the GPU."""

from __future__ import annotations

import re

import pytest

from tests.codegen_ptx import PTXAS, assemble, kernel_ptx
from tests.test_codegen_expressions_arithmetic import DTYPES
from tests.test_codegen_expressions_values import ALL_BITCASTS, UNEVEN_BITCASTS
from tilevm.dtypes import bfloat16, boolean, float16, float32, int32, int_type, uint32
from tilevm.ir.expr import BinaryExpr, BlockIndex, CastExpr, Const, GridSize, UnaryExpr, Var
from tilevm.ir.thread import Bitcast, Gather, LaneIndex, PointerAdd, SharedPointer, ThreadIndex, WarpIndex
from tilevm.ir.types import AddressSpace, PointerType, ScalarType, VectorType

pytestmark = pytest.mark.skipif(PTXAS is None, reason="ptxas is not on PATH")
TARGETS = ("sm_80", "sm_90")

#: each approximate function: the PTX instruction, and the float32 factor around it (log2(e), ln(2))
APPROXIMATE = {
    "exp": ("ex2.approx.f32", "0f3FB8AA3B"),
    "exp2": ("ex2.approx.f32", None),
    "log": ("lg2.approx.f32", "0f3F317218"),
    "log2": ("lg2.approx.f32", None),
    "sin": ("sin.approx.f32", None),
    "cos": ("cos.approx.f32", None),
    "tanh": ("tanh.approx.f32", None),
    "rsqrt": ("rsqrt.approx.f32", None),
}


def _instructions(ptx: str) -> list[str]:
    return [
        line.strip()
        for line in ptx.splitlines()
        if line.startswith("\t") and not line.strip().startswith("//")
    ]


@pytest.mark.parametrize("target", TARGETS)
def test_indices_are_special_registers_read_once(target):
    thread = ThreadIndex()
    results = [thread, BinaryExpr("add", thread, Const(1)), LaneIndex(), WarpIndex()]
    results += [BlockIndex(axis) for axis in range(3)] + [GridSize(axis) for axis in range(3)]
    ptx = kernel_ptx(results=results, target=target)
    assert len(re.findall(r"mov\.u32\s+%r\d+, %tid\.x;", ptx)) == 1
    for register in ("ctaid", "nctaid"):
        for axis in "xyz":
            assert len(re.findall(rf"mov\.u32\s+%r\d+, %{register}\.{axis};", ptx)) == 1
    assert re.search(r"and\.b32\s+%r\d+, %r\d+, 31;", ptx)  # lane: tid & 31
    assert re.search(r"shr\.u32\s+%r\d+, %r\d+, 5;", ptx)  # warp: tid >> 5
    assert "%laneid" not in ptx and "%warpid" not in ptx
    assemble(ptx, target)


@pytest.mark.parametrize("target", TARGETS)
def test_addresses(target):
    """A shared pointer is the dynamic shared memory plus its byte offset; pointer_add adds bytes."""
    base = Var("base", PointerType(float16, AddressSpace.GLOBAL))
    offset = Var("offset", ScalarType(int32))
    shared = SharedPointer(float16, BinaryExpr("mul", ThreadIndex(), Const(16)))
    results = [shared, PointerAdd(shared, Const(6)), PointerAdd(base, offset), PointerAdd(base, Const(48))]
    ptx = kernel_ptx([base, offset], results=results, target=target)
    assert re.search(r"\.extern \.shared \.align 16 \.b8 shared\[\];", ptx)
    assert re.search(r"mov\.b32\s+%r\d+, shared;", ptx)  # 32-bit shared addresses (--nvptx-short-ptr)
    assert re.search(r"add\.s64\s+%rd\d+, %rd\d+, 48;", ptx)
    # a signed 32-bit offset, sign-extended
    assert re.search(r"(cvt\.s64\.s32\s+%rd\d+, %r\d+|ld\.param\.s32\s+%rd\d+, \[kernel_param_2\]);", ptx)
    assemble(ptx, target)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("op", sorted(APPROXIMATE))
def test_approximate_functions(op, target):
    """float32 through the approximate instruction (with its factor); float16 and bfloat16 extended to
    float32 and rounded back; vectors element by element; never flushing subnormals."""
    instruction, factor = APPROXIMATE[op]
    operands = [Var("x", ScalarType(float32)), Var("h", ScalarType(float16)), Var("b", ScalarType(bfloat16))]
    operands.append(Var("v", VectorType(float32, 2)))
    ptx = kernel_ptx(operands, results=[UnaryExpr(op, operand) for operand in operands], target=target)
    assert len(re.findall(rf"\b{re.escape(instruction)}\s", ptx)) == 5
    if factor:
        assert len(re.findall(rf"mul\.rn\.f32\s+%r\d+, %r\d+, {factor};", ptx)) == 5
    assert re.search(r"cvt\.f32\.f16\s", ptx) and re.search(r"cvt\.rn\.f16\.f32\s", ptx)
    assert re.search(r"cvt\.f32\.bf16\s", ptx) or re.search(r"shl\.b32\s+%r\d+, %r\d+, 16;", ptx)
    assert re.search(r"cvt\.rn\.bf16\.f32\s", ptx)
    assert ".ftz" not in ptx and ".extern .func" not in ptx
    assemble(ptx, target)


@pytest.mark.parametrize("target", TARGETS)
def test_correctly_rounded_division_and_square_root(target):
    x, y = Var("x", ScalarType(float32)), Var("y", ScalarType(float32))
    h, g = Var("h", ScalarType(float16)), Var("g", ScalarType(float16))
    results = [BinaryExpr("div", x, y), UnaryExpr("sqrt", x), BinaryExpr("div", h, g), UnaryExpr("sqrt", h)]
    ptx = kernel_ptx([x, y, h, g], results=results, target=target)
    assert len(re.findall(r"div\.rn\.f32\s", ptx)) == 2 and len(re.findall(r"sqrt\.rn\.f32\s", ptx)) == 2
    assert "approx" not in ptx and ".ftz" not in ptx
    assemble(ptx, target)


@pytest.mark.parametrize(
    ("dtype", "target", "expected"),
    [
        (
            float16,
            "sm_80",
            {"add": "add.rn.f16x2", "sub": "sub.rn.f16x2", "mul": "mul.rn.f16x2", "max": "max.f16x2"},
        ),
        (bfloat16, "sm_90", {"add": "add.rn.bf16x2", "sub": "sub.rn.bf16x2", "mul": "mul.rn.bf16x2"}),
        # sm_80 has no bf16 add or mul: one fma.rn each, a single rounding (x * 1.0 + y, x * y + -0.0)
        (bfloat16, "sm_80", {"add": "fma.rn.bf16x2", "sub": "fma.rn.bf16x2", "mul": "fma.rn.bf16x2"}),
    ],
)
def test_packed_half_arithmetic(dtype, target, expected):
    lhs, rhs = Var("a", VectorType(dtype, 2)), Var("b", VectorType(dtype, 2))
    for op, instruction in expected.items():
        ptx = kernel_ptx([lhs, rhs], results=[BinaryExpr(op, lhs, rhs)], target=target)
        assert re.search(rf"\b{re.escape(instruction)}\s", ptx), (op, _instructions(ptx))
        assert "cvt" not in ptx, (op, _instructions(ptx))  # stays packed
        assemble(ptx, target)


def _toward_zero_cases() -> list[tuple]:
    return [
        (source, target)
        for source in DTYPES
        for target in (float16, bfloat16, float32)
        if source not in (boolean, target) and not (source.is_float and source.nbits < target.nbits)
    ]


@pytest.mark.parametrize("target", TARGETS)
def test_casts_toward_zero(target):
    """Every cast to a float toward zero that is not exact uses cvt.rz (and no cvt.rn); two float32
    elements narrow in one cvt.rz.f16x2.f32."""
    for source, result in _toward_zero_cases():
        operand = Var("x", ScalarType(source))
        ptx = kernel_ptx([operand], results=[CastExpr(operand, result, "zero")], target=target)
        conversions = re.findall(r"\bcvt\.[a-z0-9.]+", ptx)
        exact = source.is_integer and source.nbits <= 16 and result == float32  # sitofp, exact
        assert exact or any(".rz." in conversion for conversion in conversions), (source, result, conversions)
        # to nearest only where exact (16-bit integers to float32), or 64-bit integers to float64 first, as
        # the semantics define
        nearest = [conversion for conversion in conversions if ".rn." in conversion]
        assert all(re.fullmatch(r"cvt\.rn\.(f32\.[su](8|16)|f64\.[su]64)", c) for c in nearest), conversions
        assemble(ptx, target)
    vector = Var("v", VectorType(float32, 5))
    ptx = kernel_ptx([vector], results=[CastExpr(vector, float16, "zero")], target=target)
    assert (
        len(re.findall(r"cvt\.rz\.f16x2\.f32\s", ptx)) == 2
        and len(re.findall(r"cvt\.rz\.f16\.f32\s", ptx)) == 1
    )
    assemble(ptx, target)


@pytest.mark.parametrize("target", TARGETS)
def test_bitcasts_of_small_elements_assemble(target):
    """Bool and int4 vectors, which the NVPTX back end legalizes into shifts and masks, assemble."""
    operands = [Var(f"x{number}", source) for number, (source, _) in enumerate(ALL_BITCASTS)]
    results = [
        Bitcast(dtype, length, operand) for operand, (_, (dtype, length)) in zip(operands, ALL_BITCASTS)
    ]
    assemble(kernel_ptx(operands, results=results, target=target), target)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("bitcast", UNEVEN_BITCASTS[::2], ids=str)
def test_shuffles_around_uneven_bitcasts(bitcast, target):
    """Words to codes, a gather of some, padded back and to words: what lowering emits to pack 6-bit data
    (LLVM 22 aborts optimising it when the bitcasts are plain vector bitcasts, which LLVM then folds)."""
    source, (dtype, length) = bitcast
    words = Var("words", source)
    codes = Gather((Bitcast(dtype, length, words),), tuple(range(length - 4)))
    padded = Gather((codes,), (*range(length - 4), 0, 0, 0, 0))
    back = Bitcast(source.dtype, source.length, padded)
    assemble(kernel_ptx([words], results=[back, BinaryExpr("add", back, words)], target=target), target)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("bits", [3, 5, 6, 7])
def test_words_viewed_as_odd_codes_and_back_are_the_same_registers(bits, target):
    """Bytes viewed as 3, 5, 6 or 7-bit codes and those codes as 32-bit words again (a weight view, then a
    cast's words) are the words loaded: no element-by-element round trip (one shift, one mask and one
    identity move a code) is left."""
    words = Var("words", VectorType(uint32, bits))
    codes = Bitcast(int_type(bits, True), 32, words)
    ptx = kernel_ptx([words], results=[Bitcast(uint32, bits, codes)], target=target)
    assert not re.search(r"mov\.b16|\.b16\s|\.u16|shr\.u32|shf\.", ptx)  # no code is taken apart
    assemble(ptx, target)
