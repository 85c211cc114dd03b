"""The PTX of the compute instructions (mma, shuffle, lop3, prmt, cvt_pack): each is the instruction the
PTX ISA spells, with its operands where the ISA puts them, and assembles with ptxas for sm_80 and sm_90
(sm_89 for float8). Their numbers are checked on the GPU (``test_codegen_compute_gpu.py``); the shuffle's
control operand is checked here against the PTX ISA's definition of ``shfl.sync``."""

from __future__ import annotations

import re

import pytest

from tests.codegen_ptx import PTXAS, assemble, kernel_ptx
from tilevm.codegen.targets import CodegenError
from tilevm.dtypes import (
    DType,
    bfloat16,
    dtype,
    float8_e4m3,
    float8_e5m2,
    float16,
    float32,
    int4,
    int8,
    uint4,
    uint8,
)
from tilevm.ir.expr import Var
from tilevm.ir.thread import ConvertPack, ConvertUnpack, Lop3, Mma, Prmt, Shuffle
from tilevm.ir.thread.compute import MMA_SHAPES, PRMT_MODES, SHUFFLE_MODES, mma_fragment_types
from tilevm.ir.types import ScalarType, VectorType

needs_ptxas = pytest.mark.skipif(PTXAS is None, reason="ptxas is not on PATH")

_PTX_TYPES = {"float16": "f16", "bfloat16": "bf16", "int8": "s8", "uint8": "u8", "int4": "s4", "uint4": "u4"}
_PTX_TYPES |= {"float8_e4m3": "e4m3", "float8_e5m2": "e5m2"}


def _mma_cases() -> list[tuple[str, DType, DType, ScalarType | VectorType]]:
    cases = []
    for shape, names in MMA_SHAPES.items():
        for name in names:
            a = dtype(name)
            partners = {a}
            if a.is_integer:  # PTX mixes signedness of integers of one width
                partners = {int8, uint8} if a.nbits == 8 else {int4, uint4}
            elif a.nbits == 8:  # and the two float8 formats
                partners = {float8_e4m3, float8_e5m2}
            accumulators = [ScalarType(dtype("int32" if a.is_integer else "float32"))]
            if a == float16:
                accumulators.append(VectorType(float16, 2))
            cases += [(shape, a, b, c) for b in sorted(partners, key=str) for c in accumulators]
    return cases


MMA_CASES = _mma_cases()


def _mma(shape: str, a_dtype: DType, b_dtype: DType, accumulator) -> tuple[list[Var], Mma]:
    a_types, _, c_types = mma_fragment_types(shape, a_dtype, accumulator)
    b_types = mma_fragment_types(shape, b_dtype, accumulator)[1]
    a, b, c = (
        [Var(name, value_type) for value_type in types]
        for name, types in zip("abc", (a_types, b_types, c_types))
    )
    outputs = tuple(Var("d", value_type) for value_type in c_types)
    return [*a, *b, *c], Mma(outputs=outputs, shape=shape, a=tuple(a), b=tuple(b), c=tuple(c))


def _spelling(shape: str, a: DType, b: DType, accumulator) -> str:
    """The PTX ISA's name: mma.sync.aligned.<shape>.row.col.<D>.<A>.<B>.<C>."""
    if a.is_integer:
        d = "s32"
    elif isinstance(accumulator, VectorType):
        d = "f16"
    else:
        d = "f32"
    return f"mma.sync.aligned.{shape}.row.col.{d}.{_PTX_TYPES[a.name]}.{_PTX_TYPES[b.name]}.{d}"


def _kernel(cases, target: str) -> str:
    inputs, instructions, results = [], [], []
    for case in cases:
        variables, mma = _mma(*case)
        inputs += variables
        instructions.append(mma)
        results += mma.outputs
    return kernel_ptx(inputs, instructions, results, target)


@needs_ptxas
@pytest.mark.parametrize("target", ["sm_80", "sm_90"])
def test_mma_without_float8(target):
    cases = [case for case in MMA_CASES if not (case[1].is_float and case[1].nbits == 8)]
    ptx = _kernel(cases, target)
    for case in cases:
        assert _spelling(*case) in ptx, case
    assert ptx.count("mma.sync.aligned") == len(cases)
    assemble(ptx, target)


@needs_ptxas
@pytest.mark.parametrize("target", ["sm_89", "sm_90"])
def test_mma_float8(target):
    cases = [case for case in MMA_CASES if case[1].is_float and case[1].nbits == 8]
    assert len(cases) == 4
    ptx = _kernel(cases, target)
    for case in cases:
        assert _spelling(*case) in ptx, case
    assemble(ptx, target)


def test_mma_float8_needs_sm89():
    variables, mma = _mma("m16n8k32", float8_e4m3, float8_e4m3, ScalarType(float32))
    with pytest.raises(CodegenError, match=r"mma.sync on float8.*needs sm_89.*the target is sm_80"):
        kernel_ptx(variables, [mma], mma.outputs, "sm_80")


def _source_lanes_by_ptx(mode: str, control: int, offset: int) -> list[int]:
    """The PTX ISA's shfl.sync: for each lane, the lane it reads (its own when the predicate is false)."""
    segment_mask, clamp = control >> 8 & 0x1F, control & 0x1F
    sources = []
    for lane in range(32):
        minimum = lane & segment_mask
        maximum = minimum | (clamp & ~segment_mask & 0x1F)
        if mode == "up":
            source, valid = lane - offset, lane - offset >= maximum
        elif mode == "down":
            source, valid = lane + offset, lane + offset <= maximum
        elif mode == "bfly":
            source, valid = lane ^ offset, (lane ^ offset) <= maximum
        else:
            source = minimum | (offset & ~segment_mask & 0x1F)
            valid = source <= maximum
        sources.append(source if valid else lane)
    return sources


def _source_lanes_by_thread_ir(mode: str, width: int, offset: int) -> list[int]:
    """Thread IR's shuffle (its docstring): within segments of ``width`` lanes, as CUDA's __shfl_sync."""
    sources = []
    for lane in range(32):
        start = lane // width * width
        end = start + width - 1
        source = {
            "idx": start + offset % width,
            "up": lane - offset,
            "down": lane + offset,
            "xor": lane ^ offset,
        }[mode]
        valid = source >= start if mode == "up" else source <= end
        sources.append(source if valid else lane)
    return sources


@needs_ptxas
@pytest.mark.parametrize("mode", SHUFFLE_MODES)
def test_shuffle(mode):
    """Every width: the PTX's control operand, read as the PTX ISA defines it, picks the lanes that Thread
    IR's shuffle defines, for every offset; values of any 32-bit type move as their bits."""
    value_types = [
        ScalarType(float32),
        VectorType(float16, 2),
        ScalarType(dtype("int32")),
        VectorType(int8, 4),
    ]
    widths = (1, 2, 4, 8, 16, 32)
    lane = Var("lane", ScalarType(dtype("int32")))
    inputs, instructions = [lane], []
    for width, value_type in zip(widths, value_types * 2):
        value = Var("value", value_type)
        inputs.append(value)
        instructions.append(
            Shuffle(output=Var("moved", value_type), mode=mode, value=value, lane=lane, width=width)
        )
    ptx = kernel_ptx(inputs, instructions, [instruction.output for instruction in instructions], "sm_80")
    ptx_mode = "bfly" if mode == "xor" else mode
    found = re.findall(rf"shfl\.sync\.{ptx_mode}\.b32\s+%r\d+, %r\d+, %r\d+, (\d+), -1;", ptx)
    assert len(found) == len(widths)
    for width, control in zip(widths, map(int, found)):
        for offset in range(32):
            expected = _source_lanes_by_thread_ir(mode, width, offset)
            assert _source_lanes_by_ptx(ptx_mode, control, offset) == expected, (width, offset)
    assemble(ptx, "sm_80")


@needs_ptxas
@pytest.mark.parametrize("target", ["sm_80", "sm_90"])
def test_lop3_and_prmt(target):
    """Each lop3 is one lop3.b32 with its table; each prmt mode its prmt.b32 form with the selector last."""
    words = [Var(name, ScalarType(dtype("uint32"))) for name in ("a", "b", "c")]
    tables = (0xE8, 0x96, 0x01, 0xFE, 0x6A)
    instructions = [
        Lop3(output=Var("l", words[0].type), a=words[0], b=words[1], c=words[2], table=t) for t in tables
    ]
    instructions += [
        Prmt(output=Var("p", words[0].type), a=words[0], b=words[1], selector=words[2], mode=mode)
        for mode in PRMT_MODES
    ]
    ptx = kernel_ptx(words, instructions, [instruction.output for instruction in instructions], target)
    emitted = re.findall(r"lop3\.b32 %r\d+, %r\d+, %r\d+, %r\d+, (0x[0-9a-f]+);", ptx)
    assert sorted(int(table, 16) for table in emitted) == sorted(tables)
    for mode in PRMT_MODES:
        suffix = "" if mode == "default" else f".{mode}"
        assert re.search(rf"prmt\.b32{re.escape(suffix)}\s+%r\d+, %r\d+, (%r\d+|0), %r\d+;", ptx), mode
    assemble(ptx, target)


def _parameter_registers(ptx: str) -> dict[int, str]:
    return {
        int(number): register
        for register, number in re.findall(r"ld\.param\.b32\s+(%r\d+), \[kernel_param_(\d+)\]", ptx)
    }


@needs_ptxas
@pytest.mark.parametrize(
    ("target_dtype", "rounding", "spelled", "target"),
    [
        (float16, "nearest", "cvt.rn.f16x2.f32", "sm_80"),
        (bfloat16, "nearest", "cvt.rn.bf16x2.f32", "sm_80"),
        (float16, "zero", "cvt.rz.f16x2.f32", "sm_80"),
        (bfloat16, "zero", "cvt.rz.bf16x2.f32", "sm_90"),
        (float8_e4m3, "nearest", "cvt.rn.satfinite.e4m3x2.f32", "sm_89"),
        (float8_e5m2, "nearest", "cvt.rn.satfinite.e5m2x2.f32", "sm_90"),
    ],
)
def test_cvt_pack(target_dtype, rounding, spelled, target):
    """One packed cvt whose first source (the upper half, the ISA says) is ``high``."""
    high, low = Var("high", ScalarType(float32)), Var("low", ScalarType(float32))
    output = Var("packed", VectorType(target_dtype, 2))
    instruction = ConvertPack(output=output, high=high, low=low, dtype=target_dtype, rounding=rounding)
    ptx = kernel_ptx([high, low], [instruction], [output], target)
    registers = _parameter_registers(ptx)
    match = re.search(rf"{re.escape(spelled)}\s+%r?s?\d+, (%r\d+), (%r\d+);", ptx)
    assert match, ptx
    assert match.groups() == (registers[1], registers[2])
    assemble(ptx, target)


@needs_ptxas
@pytest.mark.parametrize(
    ("source", "spelled", "target"),
    [(float8_e4m3, "cvt.rn.f16x2.e4m3x2", "sm_89"), (float8_e5m2, "cvt.rn.f16x2.e5m2x2", "sm_90")],
)
def test_cvt_unpack(source, spelled, target):
    """One cvt of the two codes' 16 bits (the low byte is element 0, the ISA's low half)."""
    value = Var("codes", VectorType(source, 2))
    instruction = ConvertUnpack(output=Var("wide", VectorType(float16, 2)), value=value)
    ptx = kernel_ptx([value], [instruction], [instruction.output], target)
    assert len(re.findall(rf"{re.escape(spelled)}\s+%r\d+, %rs\d+;", ptx)) == 1, ptx
    assert "cvt.f32" not in ptx and "selp" not in ptx  # no detour through float32, no select
    assemble(ptx, target)


def test_cvt_unpack_needs_sm89():
    instruction = ConvertUnpack(
        output=Var("wide", VectorType(float16, 2)), value=Var("codes", VectorType(float8_e5m2, 2))
    )
    with pytest.raises(CodegenError, match=r"cvt.rn.f16x2.*needs sm_89"):
        kernel_ptx([instruction.value], [instruction], [instruction.output], "sm_86")


def test_cvt_pack_float8_needs_sm89():
    high, low = Var("high", ScalarType(float32)), Var("low", ScalarType(float32))
    instruction = ConvertPack(
        output=Var("p", VectorType(float8_e4m3, 2)), high=high, low=low, dtype=float8_e4m3
    )
    with pytest.raises(CodegenError, match=r"cvt.rn.satfinite.*needs sm_89"):
        kernel_ptx([high, low], [instruction], [instruction.output], "sm_80")
