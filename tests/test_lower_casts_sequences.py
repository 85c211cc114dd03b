"""The cast sequences as Thread IR: which sequence the table picks, that only machine dtypes are cast or
computed on, that the programs verify and print back, the W4A16 example's int4 -> float16 sequence read
off its Thread IR, and the instructions per element of the common pairs.

(``test_lower_casts`` runs every pair on every code; this file looks at the code itself.)
"""

from __future__ import annotations

import itertools
import math
import runpy
from pathlib import Path

import pytest
import torch
from test_lower_casts import FORM_DTYPES, FORM_PAIRS, LENGTH, cast_program, roundings

from tilevm.dtypes import DType, all_dtypes, dtype, float16
from tilevm.ir import Cast, Program, check_round_trip, print_program, verify
from tilevm.ir.expr import BinaryExpr, CastExpr, Expr, UnaryExpr, Var
from tilevm.ir.rewrite import walk_expressions, walk_instructions
from tilevm.ir.stmt import LetScalar
from tilevm.ir.thread import THREAD_IR, ConvertPack, ConvertUnpack, Lop3, Prmt, Select
from tilevm.ir.types import VectorType
from tilevm.passes.filecheck import filecheck
from tilevm.passes.lower import HANDLERS
from tilevm.passes.lower.casts import MACHINE_DTYPES, SEQUENCES, convert, plain_cast, sequence_for
from tilevm.passes.lower.lowering import Lowering, register_type, tile_layout

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def lowered(source: DType, target: DType, length: int, rounding: str = "nearest") -> list:
    """The Thread IR instructions that convert a register of ``length`` elements of ``source``."""
    lowering = Lowering(Program("cast", (), 32, ()), {})
    value = Var("value", register_type(source, length))
    with lowering.collect() as body:
        result = convert(lowering, value, target, rounding)
    assert result.type == register_type(target, length)
    return body


def program_text(body: list) -> str:
    return print_program(Program("cast", (), 32, tuple(body)), THREAD_IR)


# -- the table


def test_between_machine_dtypes_a_cast_is_one_plain_cast_except_the_packed_ones():
    packed = {("float32", "float16"), ("float32", "bfloat16")} | {
        (source, target) for source in ("int8", "uint8") for target in ("float16", "bfloat16")
    }
    for source, target in itertools.permutations(sorted(MACHINE_DTYPES, key=str), 2):
        plain = sequence_for(source, target, "nearest").lower is plain_cast
        assert plain != ((source.name, target.name) in packed), (source, target)
        if plain:
            (instruction,) = lowered(source, target, 4)
            assert isinstance(instruction.value, CastExpr) and instruction.value.dtype == target


def _computing(expression: Expr) -> bool:
    return isinstance(expression, BinaryExpr | UnaryExpr | CastExpr | Select)


def test_only_machine_dtypes_are_computed_on_or_cast_plainly():
    """In every pair's sequence, arithmetic, comparisons, selects and plain casts see machine dtypes only;
    low-bit values are only moved (gathered, bitcast)."""
    for source, target in itertools.permutations(all_dtypes(), 2):
        for instruction in lowered(source, target, 5, roundings(source, target)[-1]):
            for expression in walk_expressions(instruction):
                if _computing(expression):
                    operand = expression.condition if isinstance(expression, Select) else expression
                    operands = [operand.type.dtype, expression.type.dtype]
                    if isinstance(expression, BinaryExpr):
                        operands.append(expression.lhs.type.dtype)
                    if isinstance(expression, UnaryExpr | CastExpr):
                        operands.append(expression.operand.type.dtype)
                    assert set(operands) <= MACHINE_DTYPES, (source, target, expression)


@pytest.mark.parametrize("source, target", FORM_PAIRS[::7], ids=[f"{s}-{t}" for s, t in FORM_PAIRS[::7]])
def test_programs_verify_and_print_back(source: DType, target: DType):
    program = verify(
        cast_program(source, target, [((0, 1, 2), "zero"), (tuple(range(LENGTH)), "nearest")]), THREAD_IR
    )
    check_round_trip(program, THREAD_IR)


def test_form_dtypes_cover_every_row_of_the_table():
    rows = {
        sequence_for(source, target, rounding).name
        for source, target in itertools.permutations(FORM_DTYPES, 2)
        for rounding in ("nearest", "zero")
    }
    assert rows == {row.name for row in SEQUENCES}
    assert len(FORM_DTYPES) == len(set(FORM_DTYPES))


# -- W4A16


def w4a16_cast_lowered() -> tuple[Cast, str]:
    """The Thread IR of the W4A16 example's cast of its int4 weights, lowered by the cast handler from the
    example's Tile IR (with its layouts), the weights standing for the register the view gives."""
    namespace = runpy.run_path(str(EXAMPLES / "w4a16_matmul.py"), run_name="example")
    arguments = (
        torch.zeros(5, 256, dtype=torch.float16),
        torch.zeros(256, 48, dtype=torch.uint8),
        torch.zeros(4, 96, dtype=torch.float16),
        torch.zeros(5, 96, dtype=torch.float16),
    )
    tile_program = namespace["w4a16_matmul"].ir(*arguments, BM=16, BN=32, GROUP=64)
    cast = next(item for item in walk_instructions(tile_program.body) if isinstance(item, Cast))
    lowering = Lowering(tile_program, HANDLERS)
    weights = Var("weights", register_type(cast.operand.type.dtype, tile_layout(cast.operand).local_size))
    lowering.bind(cast.operand, weights)
    with lowering.collect() as body:
        lowering.lower(cast)
    return cast, program_text(body)


def test_w4a16_casts_int4_to_float16_with_prmt_lop3_and_a_packed_subtract():
    """Each pair of int4 (one byte: element 2k in its low nibble, 2k+1 in its high one) becomes one f16x2:
    prmt copies the byte into both halves (selector 0x4k4k: byte k, then byte 4 of the zero operand),
    lop3 ``(w & 0x00F0000F) ^ 0x54806408`` keeps the low nibble in the low half and the high nibble at
    bit 4 of the high half, ors the magic exponents 0x6400 (1024.0: bit 0 counts 1) and 0x5400 (64.0:
    bit 4 counts 1) and flips each nibble's sign bit (0x0008, 0x0080), so the halves are 1024 + n + 8 and
    64 + n + 8; a packed subtract of (1032, 72) leaves n. 16 bytes of weights, 32 elements: 16 of each."""
    cast, text = w4a16_cast_lowered()
    assert (cast.operand.type.dtype, cast.dtype) == (dtype("int4"), float16)
    mask, magic = 0x00F0_000F, 0x5400_6400 | 0x0080_0008
    pair = f"""
        CHECK: %W: vector<uint32, 4> = let(value=bitcast<uint32, 4>(%weights))
        CHECK-NEXT: %P: uint32 = prmt(a=element(%W, 0), b=0:uint32, selector={0x4040}:uint32)
        CHECK-NEXT: %M: uint32 = lop3(a=%P, b={mask}:uint32, c={magic}:uint32, table={0x6A})
        CHECK-NEXT: %H: vector<float16, 2> = let(value=bitcast<float16, 2>(%M)
        CHECK-SAME: - pack([1032.0:float16, 72.0:float16]))
        CHECK-NEXT: prmt(a=element(%W, 0), b=0:uint32, selector={0x4141}:uint32)
        """
    filecheck(text, pair)
    for name, count in (("prmt", 16), ("lop3", 16), ("- pack([1032.0:float16, 72.0:float16])", 16)):
        assert text.count(name) == count, name
    assert " cast<" not in text and "(cast<" not in text  # no plain cast (bitcasts only)
    assert "vector<float16, 32> = let(value=gather([" in text


# -- instructions per element


def gpu_operations(body: list) -> int:
    """The instructions a GPU runs for ``body``: one per lop3, prmt, cvt_pack, cvt_unpack, and per 32-bit
    register of each computing expression's operands (an f16x2 subtract is one, an add on 4 uint32 four; a
    cast of an f16x2 to bf16x2 one, three in PTX); moves (gather, bitcast, element, pack) are register
    renaming and cost nothing."""
    count = 0
    for instruction in body:
        if isinstance(instruction, Lop3 | Prmt | ConvertPack | ConvertUnpack):
            count += 1
        if not isinstance(instruction, LetScalar | Lop3 | Prmt | ConvertPack | ConvertUnpack):
            continue
        for expression in walk_expressions(instruction):
            if _computing(expression):
                operand = expression.if_true if isinstance(expression, Select) else expression
                operand = operand.lhs if isinstance(operand, BinaryExpr) else operand
                value_type = operand.type
                length = value_type.length if isinstance(value_type, VectorType) else 1
                count += max(1, math.ceil(length * value_type.dtype.nbits / 32))
    return count


#: instructions per element for the common pairs (the table in ``tilevm.passes.lower.casts``), on the
#: 32 int4 / 16 int8 ... elements of a 16-byte load
PER_ELEMENT = {
    ("uint8", "float16"): 1.0,
    ("int8", "float16"): 1.25,
    ("uint4", "float16"): 1.5,
    ("int4", "float16"): 1.5,
    ("uint2", "float16"): 1.25,
    ("int2", "float16"): 1.25,
    ("int3", "float16"): 1.5,
    ("int2", "bfloat16"): 1.3125,
    ("uint1", "bfloat16"): 1.15625,
    ("uint4", "bfloat16"): 1.625,
    ("int4", "bfloat16"): 1.625,
    ("int8", "bfloat16"): 2.0,
    ("uint8", "bfloat16"): 2.5,
    ("float4_e2m1", "float16"): 2.625,
    ("float4_e2m1", "bfloat16"): 2.625,
    ("float8_e4m3", "float16"): 0.5,
    ("float8_e4m3", "bfloat16"): 1.0,
    ("float8_e5m2", "float16"): 0.5,
    ("float32", "float16"): 0.5,
    ("float32", "float8_e4m3"): 0.5,
}


@pytest.mark.parametrize("pair", PER_ELEMENT, ids=[f"{s}-{t}" for s, t in PER_ELEMENT])
def test_instructions_per_element(pair: tuple[str, str]):
    source, target = (dtype(name) for name in pair)
    length = 128 // source.nbits if source.nbits <= 8 else 32  # one 16-byte load
    assert gpu_operations(lowered(source, target, length)) / length == PER_ELEMENT[pair]
