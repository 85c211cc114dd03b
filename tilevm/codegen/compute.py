"""Thread IR's register instructions as NVVM intrinsics and inline PTX: the tensor-core ``mma``, warp
shuffles, ``lop3``, ``prmt``, ``cvt_pack`` and ``cvt_unpack``. Each handler ``(context, instruction) -> None``
binds the instruction's outputs.

- ``mma``: ``llvm.nvvm.mma.<shape>.row.col.<types>``, named as LLVM names them: D then C type for float16
  (``f32.f32``, ``f16.f16``), the operand type for bfloat16 and equal integers (``bf16``, ``s8``), A then B
  type for mixed integers (``u8.s8``), D, A, B, C for float8 (``f32.e4m3.e5m2.f32``). A and B registers go
  as ``<2 x half>`` for float16 and as their 32 bits otherwise; integers wrap (no ``.satfinite``).
- ``shuffle``: ``llvm.nvvm.shfl.sync.<mode>.i32`` with every lane in the member mask. Its ``c`` operand
  packs the segment mask and the clamp lane as CUDA's ``__shfl_sync`` does: ``((32 - width) << 8) | clamp``,
  clamp 31 for ``idx``, ``down`` and ``bfly``, 0 for ``up`` (the PTX ISA's ``shfl.sync``: ``c[12:8]`` the
  segment mask, ``c[4:0]`` the clamp). A 32-bit value of any type moves as its bits.
- ``lop3``: inline ``lop3.b32`` (LLVM has no intrinsic; ptxas would also find the LOP3 in an and/or/xor
  tree, but then the table is its choice).
- ``prmt``: ``llvm.nvvm.prmt`` and ``llvm.nvvm.prmt.<mode>`` (without b for the modes that read only a's
  bytes: ``rc8``, ``ecl``, ``ecr``, ``rc16``).
- ``cvt_pack``: to nearest, ``fptrunc <2 x float>`` of (low, high), which LLVM emits as ``cvt.rn.f16x2.f32
  d, high, low``; toward zero, ``llvm.nvvm.ff2f16x2.rz(high, low)`` (PTX's first source is the upper half);
  float8, ``llvm.nvvm.ff.to.e4m3x2.rn(high, low)`` (``cvt.rn.satfinite.e4m3x2.f32``, sm_89).
- ``cvt_unpack``: ``llvm.nvvm.e4m3x2.to.f16x2.rn`` (``.e5m2x2``) of the two codes' 16 bits
  (``cvt.rn.f16x2.e4m3x2``, sm_89; one ``F2FP.F16.E4M3.UNPACK_B`` on sm_90).

>>> sorted(cls.__name__ for cls in HANDLERS)
['ConvertPack', 'ConvertUnpack', 'Lop3', 'Mma', 'Prmt', 'Shuffle']
"""

from __future__ import annotations

from tilevm.codegen.context import FunctionContext
from tilevm.codegen.expressions import poison
from tilevm.codegen.llvm_types import ir, llvm_dtype, llvm_type
from tilevm.dtypes import DType, float16, float32
from tilevm.ir.thread import ConvertPack, ConvertUnpack, Lop3, Mma, Prmt, Shuffle
from tilevm.ir.thread.values import WARP_SIZE
from tilevm.ir.types import VectorType

__all__ = ["HANDLERS", "mma_intrinsic", "shuffle_control"]

_I32 = ir.IntType(32)
_F32 = ir.FloatType()
#: PTX's names of the mma operand types
_PTX_TYPES = {
    "float16": "f16",
    "bfloat16": "bf16",
    "int8": "s8",
    "uint8": "u8",
    "int4": "s4",
    "uint4": "u4",
    "float8_e4m3": "e4m3",
    "float8_e5m2": "e5m2",
}


def mma_intrinsic(shape: str, a_dtype: DType, b_dtype: DType, accumulator: DType) -> str:
    """The name of the NVVM intrinsic of ``mma.sync`` of ``shape`` on these operand dtypes.

    >>> from tilevm.dtypes import float8_e4m3, float8_e5m2, int8, int32, uint8
    >>> mma_intrinsic("m16n8k32", uint8, int8, int32)
    'llvm.nvvm.mma.m16n8k32.row.col.u8.s8'
    >>> mma_intrinsic("m16n8k32", float8_e4m3, float8_e5m2, float32)
    'llvm.nvvm.mma.m16n8k32.row.col.f32.e4m3.e5m2.f32'
    """
    a, b = _PTX_TYPES[a_dtype.name], _PTX_TYPES[b_dtype.name]
    if a_dtype == float16:
        types = "f32.f32" if accumulator == float32 else "f16.f16"
    elif a_dtype.is_float and a_dtype.nbits == 8:
        types = f"f32.{a}.{b}.f32"
    else:
        types = a if a == b else f"{a}.{b}"
    return f"llvm.nvvm.mma.{shape}.row.col.{types}"


def _mma(context: FunctionContext, instruction: Mma) -> None:
    a_dtype, b_dtype = instruction.a[0].type.dtype, instruction.b[0].type.dtype
    accumulator = instruction.c[0].type
    if a_dtype.is_float and a_dtype.nbits == 8:
        context.require("float8_mma")
    name = mma_intrinsic(instruction.shape, a_dtype, b_dtype, accumulator.dtype)

    def operand(expr: object) -> ir.Value:
        value = context.value(expr)
        # float16 fragments are <2 x half> to the intrinsics; every other operand type is i32
        return value if a_dtype == float16 else context.builder.bitcast(value, _I32)

    arguments = [operand(expr) for expr in (*instruction.a, *instruction.b)]
    arguments += [context.value(expr) for expr in instruction.c]
    result_type = ir.LiteralStructType([llvm_type(accumulator)] * len(instruction.outputs))
    result = context.call(name, result_type, arguments)
    for index, output in enumerate(instruction.outputs):
        context.bind(output, context.builder.extract_value(result, index))


_SHUFFLE_MODES = {"idx": "idx", "up": "up", "down": "down", "xor": "bfly"}


def shuffle_control(mode: str, width: int) -> int:
    """``shfl.sync``'s ``c`` operand for segments of ``width`` lanes: the segment mask ``32 - width`` in
    bits 12:8, the clamp lane in bits 4:0 (CUDA's ``__shfl_sync`` family).

    >>> hex(shuffle_control("xor", 32)), hex(shuffle_control("up", 8)), hex(shuffle_control("idx", 4))
    ('0x1f', '0x1800', '0x1c1f')
    """
    return (WARP_SIZE - width) << 8 | (0 if mode == "up" else WARP_SIZE - 1)


def _shuffle(context: FunctionContext, instruction: Shuffle) -> None:
    builder = context.builder
    value = context.value(instruction.value)
    bits = value if value.type == _I32 else builder.bitcast(value, _I32)
    arguments = [
        ir.Constant(_I32, -1),  # every lane of the warp takes part (0xffffffff)
        bits,
        context.value(instruction.lane),
        ir.Constant(_I32, shuffle_control(instruction.mode, instruction.width)),
    ]
    moved = context.call(f"llvm.nvvm.shfl.sync.{_SHUFFLE_MODES[instruction.mode]}.i32", _I32, arguments)
    context.bind(instruction.output, moved if value.type == _I32 else builder.bitcast(moved, value.type))


def _lop3(context: FunctionContext, instruction: Lop3) -> None:
    operands = [context.value(expr) for expr in (instruction.a, instruction.b, instruction.c)]
    text = f"lop3.b32 $0, $1, $2, $3, {instruction.table:#04x};"
    context.bind(instruction.output, context.inline_ptx(_I32, text, "=r,r,r,r", operands))


#: prmt's modes that pick only among a's four bytes, whose NVVM intrinsics take no b
_PRMT_MODES_OF_A = ("rc8", "ecl", "ecr", "rc16")


def _prmt(context: FunctionContext, instruction: Prmt) -> None:
    mode = instruction.mode
    name = "llvm.nvvm.prmt" if mode == "default" else f"llvm.nvvm.prmt.{mode}"
    sources = (instruction.a,) if mode in _PRMT_MODES_OF_A else (instruction.a, instruction.b)
    operands = [context.value(expr) for expr in (*sources, instruction.selector)]
    context.bind(instruction.output, context.call(name, _I32, operands))


def _convert_pack(context: FunctionContext, instruction: ConvertPack) -> None:
    builder, dtype = context.builder, instruction.dtype
    high, low = context.value(instruction.high), context.value(instruction.low)
    result_type = llvm_type(VectorType(dtype, 2))
    if dtype.nbits == 8:
        context.require("float8_convert")
        name = f"llvm.nvvm.ff.to.{_PTX_TYPES[dtype.name]}x2.rn"
        packed = builder.bitcast(context.call(name, ir.IntType(16), [high, low]), result_type)
    elif instruction.rounding == "zero":
        name = f"llvm.nvvm.ff2{'f16' if dtype == float16 else 'bf16'}x2.rz"
        packed = context.call(name, result_type, [high, low])
    else:
        pair = poison(ir.VectorType(_F32, 2))
        pair = builder.insert_element(pair, low, ir.Constant(_I32, 0))
        pair = builder.insert_element(pair, high, ir.Constant(_I32, 1))
        packed = builder.fptrunc(pair, ir.VectorType(llvm_dtype(dtype), 2))
    context.bind(instruction.output, packed)


def _convert_unpack(context: FunctionContext, instruction: ConvertUnpack) -> None:
    context.require("float8_convert")
    source = _PTX_TYPES[instruction.value.type.dtype.name]
    codes = context.builder.bitcast(context.value(instruction.value), ir.IntType(16))
    result_type = llvm_type(VectorType(float16, 2))
    context.bind(instruction.output, context.call(f"llvm.nvvm.{source}x2.to.f16x2.rn", result_type, [codes]))


HANDLERS = {
    Mma: _mma,
    Shuffle: _shuffle,
    Lop3: _lop3,
    Prmt: _prmt,
    ConvertPack: _convert_pack,
    ConvertUnpack: _convert_unpack,
}
