"""Thread IR's register instructions: the tensor-core ``mma``, warp shuffles, ``lop3``, ``prmt`` and packed
conversions. ``mma`` and shuffles are warp-collective: every lane of the warp runs them together. The PTX
ISA defines their meaning (``mma.sync``, ``shfl.sync``, ``lop3.b32``, ``prmt.b32``, ``cvt`` to ``.f16x2``);
each docstring names the instruction and what this IR keeps of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tilevm.dtypes import DType, bfloat16, float8_e4m3, float8_e5m2, float16, float32, int32
from tilevm.ir.expr import ROUNDING_MODES, Expr, IRTypeError, Var, expect_choice
from tilevm.ir.inst import Instruction, describe, expect_scalar
from tilevm.ir.stmt import expect_condition
from tilevm.ir.thread.values import WARP_SIZE, register_bits
from tilevm.ir.types import ScalarType, VectorType

__all__ = [
    "MMA_SHAPES",
    "PRMT_MODES",
    "SHUFFLE_MODES",
    "ConvertPack",
    "ConvertUnpack",
    "Lop3",
    "Mma",
    "Prmt",
    "Shuffle",
    "Trap",
    "mma_fragment_types",
]

#: the ``mma.sync`` shapes (all ``.row.col``) and the operand dtypes each takes, from the PTX ISA's table
MMA_SHAPES: dict[str, tuple[str, ...]] = {
    "m16n8k8": ("float16", "bfloat16"),
    "m16n8k16": ("float16", "bfloat16", "int8", "uint8"),
    "m16n8k32": ("int8", "uint8", "float8_e4m3", "float8_e5m2", "int4", "uint4"),
    "m16n8k64": ("int4", "uint4"),
}
SHUFFLE_MODES = ("idx", "up", "down", "xor")
#: ``prmt``'s modes: ``default`` is the generic byte permute, the others PTX's ``.f4e`` ... ``.rc16``
PRMT_MODES = ("default", "f4e", "b4e", "rc8", "ecl", "ecr", "rc16")
#: the dtypes ``cvt`` packs two float32 values into, with the roundings it offers for each
PACKED_CONVERSIONS: dict[DType, tuple[str, ...]] = {
    float16: ROUNDING_MODES,
    bfloat16: ROUNDING_MODES,
    float8_e4m3: ("nearest",),
    float8_e5m2: ("nearest",),
}

#: the float8 dtypes ``cvt`` widens two at a time to f16x2
UNPACKED_CONVERSIONS = (float8_e4m3, float8_e5m2)

_MMA_SHAPE = re.compile(r"m(\d+)n(\d+)k(\d+)")


def mma_fragment_types(shape: str, dtype: DType, accumulator: ScalarType | VectorType) -> tuple[tuple, ...]:
    """The types of the registers of one lane's A, B and C fragments of ``mma.sync`` of ``shape`` on
    ``dtype``: each A and B register is 32 bits of operands (``vector<float16, 2>``, ``vector<int8, 4>``),
    each C register the ``accumulator`` (float32 or int32; or ``vector<float16, 2>``, two at once).

    >>> [len(types) for types in mma_fragment_types("m16n8k16", float16, ScalarType(float32))]
    [4, 2, 4]
    """
    rows, columns, depth = (int(extent) for extent in _MMA_SHAPE.fullmatch(shape).groups())
    operand = VectorType(dtype, 32 // dtype.nbits)
    accumulators_per_lane = rows * columns // WARP_SIZE
    accumulator_count = accumulators_per_lane // (
        accumulator.length if isinstance(accumulator, VectorType) else 1
    )
    return (
        (operand,) * (rows * depth * dtype.nbits // (32 * WARP_SIZE)),
        (operand,) * (depth * columns * dtype.nbits // (32 * WARP_SIZE)),
        (accumulator,) * accumulator_count,
    )


@dataclass(frozen=True, eq=False, kw_only=True)
class Mma(Instruction):
    """``D = A @ B + C`` on a warp's fragments (PTX ``mma.sync.aligned.<shape>.row.col``): A is 16 x k
    row-major, B k x 8 column-major, C and D 16 x 8, spread over the 32 lanes as the PTX ISA's fragment
    figures show (``tilevm.layout``'s mma layouts). ``outputs`` are lane's registers of D, of C's types.

    Fragments for m16n8k16 on float16: ``a`` four ``vector<float16, 2>``, ``b`` two, ``c`` four float32
    (or two ``vector<float16, 2>`` accumulating in float16). Integer operands (``.s8``, ``.u8``, ``.s4``,
    ``.u4``, mixing signedness as PTX allows) accumulate in int32, float8 ones (``.e4m3``, ``.e5m2``, which
    may mix) in float32.
    """

    outputs: tuple[Var, ...]
    shape: str
    a: tuple[Expr, ...]
    b: tuple[Expr, ...]
    c: tuple[Expr, ...]
    opname = "mma"
    defined_fields = ("outputs",)

    def result_type(self) -> tuple[ScalarType | VectorType, ...]:
        expect_choice(self.shape, MMA_SHAPES, "mma shape")
        a_dtype, b_dtype = (
            _operand_dtype(operands, name) for operands, name in ((self.a, "a"), (self.b, "b"))
        )
        for dtype in (a_dtype, b_dtype):
            if dtype.name not in MMA_SHAPES[self.shape]:
                raise IRTypeError(f"mma {self.shape} takes {', '.join(MMA_SHAPES[self.shape])}, got {dtype}")
        mixable = a_dtype.nbits == b_dtype.nbits <= 8 and a_dtype.is_integer == b_dtype.is_integer
        if a_dtype != b_dtype and not mixable:
            raise IRTypeError(f"mma of a {a_dtype} A and a {b_dtype} B")
        if not self.c:
            raise IRTypeError("mma's c has no registers")
        accumulator = self.c[0].type
        allowed = _accumulators(a_dtype)
        if accumulator not in allowed:
            expected = " or ".join(map(str, allowed))
            raise IRTypeError(f"mma on {a_dtype} accumulates in {expected}, got {describe(accumulator)}")
        a_types, _, c_types = mma_fragment_types(self.shape, a_dtype, accumulator)
        # B's registers hold B's dtype, which may differ from A's in signedness or float8 format.
        expected_types = (a_types, mma_fragment_types(self.shape, b_dtype, accumulator)[1], c_types)
        for operands, name, types in zip((self.a, self.b, self.c), "abc", expected_types, strict=True):
            actual = tuple(operand.type for operand in operands)
            if actual != types:
                written = ", ".join(map(str, types))
                raise IRTypeError(
                    f"mma {self.shape}'s {name} is [{written}], got [{', '.join(map(str, actual))}]"
                )
        return expected_types[2]


def _operand_dtype(operands: tuple[Expr, ...], name: str) -> DType:
    first = operands[0].type if operands else None
    if not isinstance(first, VectorType) or first.nbits != 32:
        raise IRTypeError(f"mma's {name} must be 32-bit vector registers, got {first}")
    return first.dtype


def _accumulators(dtype: DType) -> tuple[ScalarType | VectorType, ...]:
    if dtype.is_integer:
        return (ScalarType(int32),)
    if dtype == float16:
        return ScalarType(float32), VectorType(float16, 2)
    return (ScalarType(float32),)


def _expect_32_bit_integer(value: Expr, what: str) -> ScalarType:
    scalar = expect_scalar(value, what, integer=True)
    if scalar.dtype.nbits != 32:
        raise IRTypeError(f"{what} must be a 32-bit integer, got {scalar}")
    return scalar


def _expect_same(values: tuple[Expr, ...], names: str, opname: str) -> ScalarType:
    first = _expect_32_bit_integer(values[0], f"{opname}'s {names[0]}")
    for value, name in zip(values[1:], names[1:]):
        if _expect_32_bit_integer(value, f"{opname}'s {name}") != first:
            raise IRTypeError(f"{opname}'s {name} is a {value.type}, its {names[0]} a {first}")
    return first


@dataclass(frozen=True, eq=False, kw_only=True)
class Shuffle(Instruction):
    """``output`` = ``value`` of another lane of the warp (PTX ``shfl.sync.<mode>.b32`` with all lanes in
    the member mask), within segments of ``width`` lanes as CUDA's ``__shfl_sync``: ``idx`` reads lane
    ``lane % width`` of the thread's segment, ``up`` lane - ``lane``, ``down`` lane + ``lane``, ``xor``
    lane ^ ``lane``. A source before the segment's start (``up``) or past its end (``down``, ``xor``) leaves
    the thread its own value (PTX's predicate false); ``xor`` may read an earlier segment, as in CUDA.
    ``value`` is any 32-bit register (a float, an f16x2)."""

    output: Var
    mode: str
    value: Expr
    lane: Expr
    width: int = WARP_SIZE
    opname = "shuffle"

    def result_type(self) -> ScalarType | VectorType:
        expect_choice(self.mode, SHUFFLE_MODES, "shuffle mode")
        value = self.value.type
        if register_bits(value) != 32:
            raise IRTypeError(f"a shuffle moves 32 bits, got {describe(value)}")
        _expect_32_bit_integer(self.lane, "the shuffle's lane")
        if self.width not in (1, 2, 4, 8, 16, 32):
            raise IRTypeError(f"a shuffle's width is a power of two up to 32, got {self.width}")
        return value


@dataclass(frozen=True, eq=False, kw_only=True)
class Lop3(Instruction):
    """Any bitwise function of three 32-bit integers (PTX ``lop3.b32 d, a, b, c, immLut``): bit i of
    ``output`` is bit ``4 a_i + 2 b_i + c_i`` of ``table``, whose value is the function applied to the
    constants 0xF0, 0xCC and 0xAA (``a & b | c`` has table 0xF0 & 0xCC | 0xAA = 0xEA)."""

    output: Var
    a: Expr
    b: Expr
    c: Expr
    table: int
    opname = "lop3"

    def result_type(self) -> ScalarType:
        if not 0 <= self.table <= 0xFF:
            raise IRTypeError(f"lop3's table is an 8-bit immediate, got {self.table}")
        return _expect_same((self.a, self.b, self.c), "abc", "lop3")


@dataclass(frozen=True, eq=False, kw_only=True)
class Prmt(Instruction):
    """Bytes picked from the eight of ``b:a`` (PTX ``prmt.b32{.mode} d, a, b, c``): in the default mode,
    nibble i of ``selector`` picks byte i of ``output`` (bytes 0-3 of ``a``, 4-7 of ``b``; a selector with
    bit 3 set copies that byte's sign bit into all eight bits); the other modes are PTX's fixed patterns,
    chosen by the selector's two low bits."""

    output: Var
    a: Expr
    b: Expr
    selector: Expr
    mode: str = "default"
    opname = "prmt"

    def result_type(self) -> ScalarType:
        expect_choice(self.mode, PRMT_MODES, "prmt mode")
        _expect_32_bit_integer(self.selector, "prmt's selector")
        return _expect_same((self.a, self.b), "ab", "prmt")


@dataclass(frozen=True, eq=False, kw_only=True)
class ConvertPack(Instruction):
    """Two float32 values converted to ``dtype`` and packed in one register (PTX ``cvt.rn.f16x2.f32 d, a,
    b``; ``.bf16x2``; ``cvt.rn.satfinite.e4m3x2.f32``): ``high`` (PTX's a) goes to the upper half, element 1,
    ``low`` (b) to element 0. ``rounding`` is "nearest" (``.rn``) or "zero" (``.rz``, 16-bit results only);
    float8 results saturate to the largest finite value."""

    output: Var
    high: Expr
    low: Expr
    dtype: DType
    rounding: str = "nearest"
    opname = "cvt_pack"

    def result_type(self) -> VectorType:
        for value, name in ((self.high, "high"), (self.low, "low")):
            if expect_scalar(value, f"cvt_pack's {name}") != ScalarType(float32):
                raise IRTypeError(f"cvt_pack's {name} must be a float32, got {value.type}")
        roundings = PACKED_CONVERSIONS.get(self.dtype)
        if roundings is None:
            targets = ", ".join(map(str, PACKED_CONVERSIONS))
            raise IRTypeError(f"cvt_pack converts to {targets}, not {self.dtype}")
        if self.rounding not in roundings:
            raise IRTypeError(
                f"cvt_pack to {self.dtype} rounds {' or '.join(roundings)}, not '{self.rounding}'"
            )
        return VectorType(self.dtype, 2)


@dataclass(frozen=True, eq=False, kw_only=True)
class ConvertUnpack(Instruction):
    """Two float8 values of one 16-bit register widened to float16, exactly, in one register (PTX
    ``cvt.rn.f16x2.e4m3x2 d, a``; ``.e5m2x2``; sm_89 and later): element 0 (``value``'s low byte) goes to
    the low half. Every float8 value is a float16 value; NaN stays NaN."""

    output: Var
    value: Expr
    opname = "cvt_unpack"

    def result_type(self) -> VectorType:
        value_type = self.value.type
        if not (
            isinstance(value_type, VectorType)
            and value_type.length == 2
            and value_type.dtype in UNPACKED_CONVERSIONS
        ):
            sources = " or ".join(f"vector<{dtype}, 2>" for dtype in UNPACKED_CONVERSIONS)
            raise IRTypeError(f"cvt_unpack widens a {sources}, not {describe(value_type)}")
        return VectorType(float16, 2)


@dataclass(frozen=True, eq=False, kw_only=True)
class Trap(Instruction):
    """Stop the kernel with an error when ``condition`` holds in any thread (PTX ``@%p trap;``): what a
    lowered program does where Tile IR says an execution is an error (an index outside a tensor) and the
    GPU has no exception to raise. The SIMT interpreter raises ``message`` at the instruction's line; on the
    GPU the launch fails (the driver reports an illegal instruction), so a result is never silently wrong."""

    condition: Expr
    message: str
    opname = "trap"

    def result_type(self) -> None:
        expect_condition(self.condition, "trap's condition")
        if not self.message:
            raise IRTypeError("trap needs a message saying what went wrong")
