"""The printer, the parser, the round-trip check and the verifier serve any instruction set, shown on a small
per-thread one defined here: an mma with four results, a store with none, and expressions of every syntax."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from tilevm.dtypes import float16, float32, int32
from tilevm.errors import CompilationError
from tilevm.ir import (
    TILE_IR,
    BinaryExpr,
    Const,
    DeclareScalar,
    Expr,
    For,
    Instruction,
    InstructionSet,
    IRTypeError,
    Param,
    PointerType,
    Program,
    ScalarType,
    Var,
    check_round_trip,
    parse,
    print_program,
    verify,
)
from tilevm.ir.expr import Syntax
from tilevm.ir.inst import expect_scalar

F16, F32, I32 = ScalarType(float16), ScalarType(float32), ScalarType(int32)


@dataclass(frozen=True)
class LaneIndex(Expr):
    """The thread's lane in its warp: a call with no fields."""

    opname = "lane_index"

    @property
    def type(self) -> ScalarType:
        return I32


@dataclass(frozen=True)
class Shuffle(Expr):
    """A value read from another lane: attributes in angle brackets, the last one at its default left out."""

    value: Expr
    lane: Expr
    mode: str = "idx"
    width: int = 32
    syntax = Syntax.PARAMETERIZED
    opname = "shuffle"

    @property
    def type(self) -> ScalarType:
        return self.value.type


@dataclass(frozen=True)
class Ternary(Expr):
    """An operator of three operands, named by its ``op``."""

    op: str
    a: Expr
    b: Expr
    c: Expr
    syntax = Syntax.OPERATOR
    ops = ("fma",)

    @property
    def type(self) -> ScalarType:
        return self.a.type


@dataclass(frozen=True, eq=False, kw_only=True)
class Mma(Instruction):
    """d = a @ b + c on one m16n8k16 fragment: four f32 accumulator registers per thread."""

    outputs: tuple[Var, ...]
    a: tuple[Expr, ...]
    b: tuple[Expr, ...]
    c: tuple[Expr, ...]
    shape: tuple[int, ...] = (16, 8, 16)
    opname = "mma"
    defined_fields = ("outputs",)

    def result_type(self) -> tuple[ScalarType, ...]:
        for register in (*self.a, *self.b):
            expect_scalar(register, "an mma operand")
        return (F32,) * len(self.c)


@dataclass(frozen=True, eq=False, kw_only=True)
class StoreRegister(Instruction):
    address: Expr
    value: Expr
    opname = "st"

    def result_type(self) -> None:
        expect_scalar(self.value, "the stored value")


THREAD_TEST = InstructionSet(
    "thread-test",
    instructions=(Mma, StoreRegister, DeclareScalar, For),
    expressions=(Var, Const, LaneIndex, Shuffle, Ternary, BinaryExpr),
)


def build(outputs: int = 4) -> Program:
    pointer = Var("p", PointerType(float32))
    a = tuple(Var(f"a{index}", F16) for index in range(4))
    lane = Var("lane", I32)
    body = [
        DeclareScalar(output=lane, init=LaneIndex()),
        *(DeclareScalar(output=register, init=Const(1, float16)) for register in a),
    ]
    accumulators = tuple(Var("d", F32) for _ in range(outputs))
    body.append(Mma(outputs=accumulators, a=a, b=a[:2], c=(Const(0.0),) * 4))
    moved = Shuffle(accumulators[0], BinaryExpr("xor", lane, Const(1)), "bfly")
    total = Var("total", F32)
    body.append(DeclareScalar(output=total, init=Ternary("fma", moved, accumulators[-1], Const(2.0))))
    body.append(StoreRegister(address=Const(0), value=total))
    return Program("mma_tile", (Param(pointer, 16),), 32, tuple(body), target="sm_80")


EXPECTED_TEXT = """\
kernel mma_tile(%p: ptr<float32> divisibility=16) num_threads=32 target="sm_80" {
  %lane: int32 = declare(init=lane_index())
  %a0: float16 = declare(init=1:float16)
  %a1: float16 = declare(init=1:float16)
  %a2: float16 = declare(init=1:float16)
  %a3: float16 = declare(init=1:float16)
  %d: float32, %d.1: float32, %d.2: float32, %d.3: float32 = mma(a=[%a0, %a1, %a2, %a3], b=[%a0, %a1], \
c=[0.0, 0.0, 0.0, 0.0])
  %total: float32 = declare(init=fma(shuffle<"bfly">(%d, %lane ^ 1), %d.3, 2.0))
  st(address=0, value=%total)
}"""


def test_a_test_instruction_set_prints_parses_and_round_trips():
    program = verify(build(), THREAD_TEST)
    assert print_program(program, THREAD_TEST) == EXPECTED_TEXT
    parsed = check_round_trip(program, THREAD_TEST)
    mma = parsed.body[5]
    assert [output.name for output in mma.outputs] == ["d", "d.1", "d.2", "d.3"]
    assert parsed.body[6].init.a.value is mma.outputs[0] and parsed.body[6].init.b is mma.outputs[3]
    verify(parsed, THREAD_TEST)


def test_several_outputs_are_each_checked_and_defined():
    with pytest.raises(CompilationError, match=re.escape("mma: defines 3 output(s), its type rule gives 4")):
        verify(build(outputs=3), THREAD_TEST)
    program = build()
    again = Mma(outputs=program.body[5].outputs, a=(), b=(), c=(Const(0.0),) * 4)
    reused = Program("k", program.params, 32, (*program.body[:6], again))
    with pytest.raises(CompilationError, match="variable d is defined twice"):
        verify(reused, THREAD_TEST)
    with pytest.raises(IRTypeError, match="an mma operand must be a scalar"):
        Mma(outputs=(), a=(Var("p", PointerType(float32)),), b=(), c=()).result_type()


def test_each_instruction_set_reads_only_its_own_classes():
    with pytest.raises(CompilationError, match="unknown function 'lane_index'") as caught:
        parse(EXPECTED_TEXT)
    assert caught.value.location.line == 2
    with pytest.raises(CompilationError, match="unknown instruction 'mma'") as caught:
        parse(EXPECTED_TEXT.replace("lane_index()", "0"))
    assert caught.value.location.line == 7
    tile_text = print_program(Program("k", (), 32, (DeclareScalar(output=Var("x", F32), init=Const(1.0)),)))
    tile_text = tile_text.replace("1.0", "cast<float32>(1)")
    with pytest.raises(CompilationError, match="unknown function 'cast'") as caught:
        parse(tile_text, THREAD_TEST)
    assert (caught.value.location.line, caught.value.location.column) == (
        2,
        tile_text.splitlines()[1].index("cast"),
    )
    with pytest.raises(TypeError, match="Mma is not an instruction of tile"):
        print_program(Program("k", (), 32, build().body[5:6]))
    with pytest.raises(TypeError, match="Shuffle is not an expression of tile"):
        print_program(
            Program("k", (), 32, (DeclareScalar(output=Var("x", I32), init=Shuffle(Const(1), Const(0))),))
        )
    assert TILE_IR.name == "tile" and Mma not in TILE_IR.instructions
