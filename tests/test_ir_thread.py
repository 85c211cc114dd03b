"""Thread IR: every class has a text form and a type rule, a program using every class prints and parses back
as written, and each type rule, broken once, is reported with its message at its line."""

from __future__ import annotations

import dataclasses
import re

import pytest

from tilevm.dtypes import dtype
from tilevm.errors import CompilationError
from tilevm.ir import Instruction, ScalarType, check_round_trip, parse, print_program, verify
from tilevm.ir.expr import Expr
from tilevm.ir.rewrite import walk_expressions, walk_instructions
from tilevm.ir.stmt import For, If, While
from tilevm.ir.text_forms import text_forms
from tilevm.ir.thread import (
    THREAD_IR,
    CopyAsyncCommitGroup,
    Fence,
    FenceProxyAsync,
    WgmmaCommitGroup,
    WgmmaFence,
)
from tilevm.ir.thread.compute import mma_fragment_types
from tilevm.ir.types import VectorType

#: instructions with nothing for a type rule to check
WITHOUT_OPERANDS = {CopyAsyncCommitGroup, Fence, WgmmaFence, WgmmaCommitGroup, FenceProxyAsync}

HEADER = "kernel k(%x: ptr<float16>, %y: ptr<float32>, %n: int32) num_threads=64 {"

#: a program using every instruction and expression class of Thread IR, as the printer writes it
EVERY_CLASS = """\
kernel every(%x: ptr<float16>, %y: ptr<float32>, %n: int32) num_threads=64 {
  %tid: int32 = let(value=thread_index())
  %lane: int32 = let(value=lane_index())
  %warp: int32 = let(value=warp_index())
  %row: ptr<float16> = let(value=pointer_add(%x, ((block_index(0) * grid_size(0)) + %tid) * 16))
  %tile: ptr<float16, shared> = let(value=shared_pointer<float16>(%warp * 512))
  cp_async(destination=%tile, source=%row, size=16, source_size=16, cache="global")
  cp_async_commit_group()
  cp_async_wait_group(pending=0)
  barrier()
  %a0: vector<float16, 2>, %a1: vector<float16, 2>, %a2: vector<float16, 2>, %a3: vector<float16, 2> = \
ldmatrix(pointer=pointer_add(%tile, %lane * 16), count=4)
  %b0: vector<float16, 2>, %b1: vector<float16, 2> = ldmatrix(pointer=%tile, count=2, transpose=true)
  %acc: float32 = declare(init=0.0)
  fence_proxy_async()
  %desc: uint64 = let(value=cast<uint64>(shared_address(%tile)) >> 4:uint64)
  wgmma_fence()
  %w0: float32, %w1: float32, %w2: float32, %w3: float32 = \
wgmma(n=8, dtype=bfloat16, a=%desc, b=%desc, c=[%acc, %acc, %acc, %acc])
  %r0: float32, %r1: float32, %r2: float32, %r3: float32 = \
wgmma(n=8, dtype=float16, a=[%a0, %a1, %a2, %a3], b=%desc, c=[%w0, %w1, %w2, %w3])
  wgmma_commit_group()
  %e0: float32, %e3: float32 = wgmma_wait_group(pending=0, accumulators=[%r0, %r3], held=[%a0, %a1, %a2, %a3])
  for %i: int32 in range(0, %n, 16) {
    %d0: float32, %d1: float32, %d2: float32, %d3: float32 = \
mma(shape="m16n8k16", a=[%a0, %a1, %a2, %a3], b=[%b0, %b1], c=[%acc, %acc, %acc, %acc])
    set(variable=%acc, value=%d0 + %d3)
  }
  %sum: float32 = shuffle(mode="xor", value=%acc, lane=1)
  %h: vector<float16, 2> = cvt_pack(high=%sum, low=exp(%sum), dtype=float16, rounding="zero")
  %wide8: vector<float16, 2> = cvt_unpack(value=bitcast<float8_e4m3, 2>(element(%h, 1)))
  %bits: uint32 = lop3(a=bitcast<uint32, 1>(%h), b=4294901760:uint32, c=1:uint32, table=234)
  %bytes: uint32 = prmt(a=%bits, b=%bits, selector=12816:uint32)
  %v: vector<float16, 8> = load(pointer=%row, width=16, predicate=%tid < %n)
  %raw: uint32 = load(pointer=pointer_cast<uint32>(%row), width=4)
  store(pointer=%tile, value=pack([element(%v, 7), cast<float16>(%bytes)]))
  %halves: vector<float16, 4> = let(value=gather([%v, element(%v, 0)], [8, 0, 1, 8]))
  %wide: vector<float32, 4> = let(value=cast<float32>(%halves + %halves))
  %picked: vector<float32, 4> = let(value=select(%wide < neg(%wide), %wide, neg(%wide)))
  if %lane == 0 {
    fence()
    %old: float32 = atomic(op="add", pointer=%y, value=%sum)
  }
  trap(condition=%n < 0, message="a negative size")
  while %n > 0 {
    store(pointer=%y, value=element(bitcast<float32, 4>(%v), 1), predicate=false)
  }
}"""


def test_every_class_has_a_text_form_and_a_type_rule():
    forms = text_forms(THREAD_IR)
    structured = {For, While, If}
    assert set(forms.instructions) == set(THREAD_IR.instructions) - structured
    for cls in THREAD_IR.instructions:
        fields = [item.name for item in dataclasses.fields(cls) if item.name != "loc"]
        if cls not in WITHOUT_OPERANDS:
            assert fields and cls.result_type is not Instruction.result_type, cls.__name__
    assert set(forms.expressions) == set(THREAD_IR.expressions)


def test_a_program_of_every_class_prints_as_written_and_round_trips():
    program = verify(parse(EVERY_CLASS, THREAD_IR), THREAD_IR)
    assert print_program(program, THREAD_IR) == EVERY_CLASS
    assert check_round_trip(program, THREAD_IR) == program
    instructions = set(map(type, walk_instructions(program.body)))
    assert instructions == set(THREAD_IR.instructions)
    expressions = {type(node) for node in walk_expressions(program.body) if isinstance(node, Expr)}
    assert expressions == set(THREAD_IR.expressions)


# The fragment counts of one lane, A, B and C registers, from the PTX ISA's tables for mma.sync.
@pytest.mark.parametrize(
    ("shape", "operand", "accumulator", "counts"),
    [
        ("m16n8k8", "float16", ScalarType(dtype("float32")), (2, 1, 4)),
        ("m16n8k16", "float16", ScalarType(dtype("float32")), (4, 2, 4)),
        ("m16n8k16", "float16", VectorType(dtype("float16"), 2), (4, 2, 2)),
        ("m16n8k16", "bfloat16", ScalarType(dtype("float32")), (4, 2, 4)),
        ("m16n8k16", "int8", ScalarType(dtype("int32")), (2, 1, 4)),
        ("m16n8k32", "int8", ScalarType(dtype("int32")), (4, 2, 4)),
        ("m16n8k32", "float8_e4m3", ScalarType(dtype("float32")), (4, 2, 4)),
        ("m16n8k32", "int4", ScalarType(dtype("int32")), (2, 1, 4)),
        ("m16n8k64", "uint4", ScalarType(dtype("int32")), (4, 2, 4)),
    ],
)
def test_mma_fragments_have_the_ptx_register_counts(shape, operand, accumulator, counts):
    a, b, c = mma_fragment_types(shape, dtype(operand), accumulator)
    assert (len(a), len(b), len(c)) == counts
    assert a[0] == b[0] == VectorType(dtype(operand), 32 // dtype(operand).nbits)
    assert set(c) == {accumulator}


# One broken rule each: the statement (placed at line 4 of the kernel after the definitions below) and the
# message the verifier gives.
DEFINITIONS = """\
  %s: ptr<float16, shared> = let(value=shared_pointer<float16>(0))
  %h: vector<float16, 2> = load(pointer=%x, width=4)
  %w: uint32 = lop3(a=1:uint32, b=2:uint32, c=3:uint32, table=0)"""

BROKEN = [
    ('%v: float16 = load(pointer=%x, width=3)', "load: an access is 1, 2, 4, 8, 16 bytes, got 3"),
    ('%v: float16 = load(pointer=%n, width=2)', "load: load's pointer must be a pointer, got scalar int32"),
    ('%v: float16 = load(pointer=%x, width=2, predicate=%n)', "load: the predicate must be a bool scalar"),
    ('%v: float16 = load(pointer=%x, width=4)',
     "load: output v is a scalar float16, expected vector<float16, 2>"),
    ("store(pointer=%y, value=%h)", "store: cannot store a vector<float16, 2> through a ptr<float32>"),
    ('cp_async(destination=%x, source=%x, size=16, source_size=16)',
     "cp_async: cp.async's destination must point to shared memory, got ptr<float16>"),
    ('cp_async(destination=%s, source=%x, size=2, source_size=2)',
     "cp_async: cp.async copies 4, 8, 16 bytes"),
    ('cp_async(destination=%s, source=%x, size=8, source_size=8, cache="global")',
     "cp_async: cp.async.cg copies 16 bytes, got 8"),
    ("cp_async_wait_group(pending=-1)", "cp_async_wait_group: cp.async.wait_group's pending count is 0 or"),
    ("barrier(barrier_id=16)", "barrier: a barrier id is 0 to 15, got 16"),
    ('%o: float32 = atomic(op="xor", pointer=%y, value=1.0)', "atomic: 'xor' needs integer operands"),
    ('%m: vector<float16, 2> = ldmatrix(pointer=%s, count=3)',
     "ldmatrix: ldmatrix loads 1, 2 or 4 matrices, got 3"),
    ('%m: float16, %q: float16 = mma(shape="m16n8k4", a=[%h], b=[%h], c=[1.0])',
     "mma: unknown mma shape 'm16n8k4'"),
    ('%m: float32 = mma(shape="m16n8k8", a=[%h, %h], b=[%h], c=[1.0])',
     "mma: mma m16n8k8's c is [float32, float32, float32, float32], got [float32]"),
    ('%m: int32 = mma(shape="m16n8k8", a=[%h, %h], b=[%h], c=[1])',
     "mma: mma on float16 accumulates in float32 or vector<float16, 2>, got scalar int32"),
    ('%m: float32 = shuffle(mode="rotate", value=1.0, lane=1)', "shuffle: unknown shuffle mode 'rotate'"),
    ('%m: float16 = shuffle(mode="idx", value=1.0:float16, lane=1)',
     "shuffle: a shuffle moves 32 bits, got scalar float16"),
    ("%m: uint32 = lop3(a=%w, b=%w, c=%w, table=256)", "lop3: lop3's table is an 8-bit immediate, got 256"),
    ("%m: uint32 = lop3(a=%w, b=%w, c=1, table=0)", "lop3: lop3's c is a int32, its a a uint32"),
    ('%m: uint32 = prmt(a=%w, b=%w, selector=0, mode="swap")', "prmt: unknown prmt mode 'swap'"),
    ("%m: uint32 = prmt(a=%w, b=%w, selector=1.0)", "prmt: prmt's selector must be an integer, got float32"),
    ("%m: vector<int8, 2> = cvt_pack(high=1.0, low=2.0, dtype=int8)",
     "cvt_pack: cvt_pack converts to float16"),
    ('%m: vector<float8_e4m3, 2> = cvt_pack(high=1.0, low=2.0, dtype=float8_e4m3, rounding="zero")',
     "cvt_pack: cvt_pack to float8_e4m3 rounds nearest, not 'zero'"),
    ("%m: vector<float16, 2> = cvt_unpack(value=bitcast<int8, 2>(element(%h, 0)))",
     "cvt_unpack: cvt_unpack widens a vector<float8_e4m3, 2> or vector<float8_e5m2, 2>, not vector<int8, 2>"),
    ("%m: float16 = let(value=element(%h, 2))",
     "let: element 2 of a vector<float16, 2>: the index is 0 to 1"),
    ("%m: vector<float16, 2> = let(value=pack([1.0:float16, 2.0]))",
     "let: pack's element 1 is a float32, element 0"),
    ("%m: float32 = let(value=bitcast<float32, 1>(%x))",
     "let: the operand of a bitcast to float32 must be a 32-bit"),
    ("%m: vector<float16, 2> = let(value=gather([%h], [0, 2]))",
     "let: gather's index 2 is outside its 2 source elements"),
    ("%m: vector<float16, 2> = let(value=gather([%h, 1.0], [0, 1]))",
     "let: gather's source 1 holds float32, source 0 float16"),
    ("%m: vector<float16, 2> = let(value=select(true, %h, pack([1.0, 2.0])))",
     "let: select of a vector<float16, 2> and a vector<float32, 2>"),
    ("%m: vector<float16, 2> = let(value=select(1.0, %h, %h))",
     "let: select's condition must be a bool or vector<bool, 2>, got scalar float32"),
    ("%m: vector<float16, 2> = let(value=%h + pack([1.0, 2.0]))",
     "let: 'add' of a vector<float16, 2> and a vector<float32, 2>; cast one of them"),
    ('trap(condition=%n, message="bad")', "trap: trap's condition must be a bool scalar"),
    ('trap(condition=true, message="")', "trap: trap needs a message"),
    ("%m: ptr<float16> = let(value=pointer_add(%x, 1.5))",
     "let: a pointer offset must be an integer, got float32"),
    ("%m: ptr<float16, shared> = let(value=shared_pointer<float16>(%s))",
     "let: a shared pointer's offset must be a"),
    ("%m: uint32 = let(value=shared_address(%x))",
     "let: shared_address's pointer must point to shared memory, got ptr<float16>"),
    ("%m: float32 = wgmma(n=12, dtype=float16, a=0:uint64, b=0:uint64, c=[1.0])",
     "wgmma: wgmma's n is a multiple of 8 from 8 to 256, got 12"),
    ("%m: float32 = wgmma(n=264, dtype=float16, a=0:uint64, b=0:uint64, c=[1.0])",
     "wgmma: wgmma's n is a multiple of 8 from 8 to 256, got 264"),
    ("%m: float32 = wgmma(n=8, dtype=float8_e4m3, a=0:uint64, b=0:uint64, c=[1.0])",
     "wgmma: wgmma multiplies float16 or bfloat16, not float8_e4m3"),
    ("%m: float32 = wgmma(n=8, dtype=float16, a=0, b=0:uint64, c=[1.0])",
     "wgmma: wgmma's a is a uint64 matrix descriptor, got scalar int32"),
    ("%m: float32 = wgmma(n=8, dtype=float16, a=0:uint64, b=0:int64, c=[1.0])",
     "wgmma: wgmma's b is a uint64 matrix descriptor, got scalar int64"),
    ("%m: float32 = wgmma(n=8, dtype=float16, a=0:uint64, b=0:uint64, c=[1.0, 1.0, 1.0])",
     "wgmma: wgmma m64n8k16's c is 4 float32 registers, got [scalar float32, scalar float32, scalar"),
    ("%m: float32 = wgmma(n=8, dtype=float16, a=0:uint64, b=0:uint64, c=[%h, 1.0, 1.0, 1.0])",
     "wgmma: wgmma m64n8k16's c is 4 float32 registers, got [vector<float16, 2>, scalar float32"),
    ("%m: float32 = wgmma(n=8, dtype=float16, a=0:uint64, b=0:uint64, c=[1.0, 1.0, 1.0, 1.0])",
     "wgmma: defines 1 output(s), its type rule gives 4"),
    ("%m: float32 = wgmma(n=8, dtype=float16, a=[%h, %h, %h], b=0:uint64, c=[1.0, 1.0, 1.0, 1.0])",
     "wgmma: wgmma's a in registers is 4 vector<float16, 2> registers (the thread's A fragment), "
     "got [vector<float16, 2>, vector<float16, 2>, vector<float16, 2>]"),
    ("%m: float32 = wgmma(n=8, dtype=bfloat16, a=[%h, %h, %h, %h], b=0:uint64, c=[1.0, 1.0, 1.0, 1.0])",
     "wgmma: wgmma's a in registers is 4 vector<bfloat16, 2> registers (the thread's A fragment), "
     "got [vector<float16, 2>, vector<float16, 2>, vector<float16, 2>, vector<float16, 2>]"),
    ("%m: float32 = wgmma(n=8, dtype=float16, a=[%h, %h, %w, %h], b=0:uint64, c=[1.0, 1.0, 1.0, 1.0])",
     "wgmma: wgmma's a in registers is 4 vector<float16, 2> registers (the thread's A fragment), "
     "got [vector<float16, 2>, vector<float16, 2>, scalar uint32, vector<float16, 2>]"),
    ("wgmma_wait_group(pending=-1)",
     "wgmma_wait_group: wgmma.wait_group's pending count is 0 or more, got -1"),
    ("%m: float16 = wgmma_wait_group(pending=0, accumulators=[1.0:float16])",
     "wgmma_wait_group: wgmma_wait_group's accumulator 0 is a float32 register, got scalar float16"),
    ("wgmma_wait_group(pending=0, held=[%h, true])",
     "wgmma_wait_group: wgmma_wait_group's held register 1 is a 16, 32 or 64-bit scalar or vector, "
     "got scalar bool"),
    ("wgmma_wait_group(pending=0, held=[%s])",
     "wgmma_wait_group: wgmma_wait_group's held register 0 is a 16, 32 or 64-bit scalar or vector, "
     "got ptr<float16, shared>"),
]  # fmt: skip


@pytest.mark.parametrize(("statement", "message"), BROKEN, ids=[message for _, message in BROKEN])
def test_each_broken_type_rule_is_reported_at_its_line(statement, message):
    text = f'{HEADER}\n{DEFINITIONS}\n  {statement}  # loc("k.py", 40, 2)\n}}'
    program = parse(text, THREAD_IR)
    with pytest.raises(CompilationError, match=re.escape(message)) as failure:
        verify(program, THREAD_IR)
    assert (failure.value.location.file, failure.value.location.line) == ("k.py", 40)


def test_a_tile_ir_instruction_is_not_thread_ir():
    tile_text = f'{HEADER}\n  barrier()  # loc("k.py", 3, 2)\n}}'
    with pytest.raises(CompilationError, match="Barrier is not an instruction of tile") as failure:
        verify(parse(tile_text, THREAD_IR))
    assert failure.value.location.line == 3
    with pytest.raises(CompilationError, match="unknown instruction 'sync'") as failure:
        parse(f"{HEADER}\n  sync()\n}}", THREAD_IR)
    assert failure.value.location.line == 2


def test_an_unknown_address_space_is_named_at_its_line():
    with pytest.raises(
        CompilationError, match="unknown address space 'local'; expected one of global, shared"
    ) as failure:
        parse(f"{HEADER}\n  %p: ptr<float16, local> = let(value=%x)\n}}", THREAD_IR)
    assert (failure.value.location.line, failure.value.location.column) == (2, 19)
