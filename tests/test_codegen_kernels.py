"""Code generation of the kernel, its control flow and its memory instructions, checked on the PTX against
the PTX ISA's spelling of each instruction (and assembled by ptxas for sm_80 and sm_90), and the guards:
what LLVM would accept silently or abort on is a ``CodegenError`` naming the kernel, the intrinsic or the
user's line."""

from __future__ import annotations

import re

import pytest
from codegen_support import assemble

from tilevm.codegen import CodegenError, compile_to_ptx, generate_llvm_ir
from tilevm.codegen import handlers as codegen_handlers
from tilevm.codegen.guards import check_ptx
from tilevm.codegen.llvm_types import ir
from tilevm.codegen.targets import TARGETS, Target
from tilevm.dtypes import uint16
from tilevm.errors import SourceLocation
from tilevm.ir import parse
from tilevm.ir.expr import Var
from tilevm.ir.thread import THREAD_IR, Barrier, SharedPointer, ThreadIndex
from tilevm.passes.filecheck import filecheck


def _compile(text: str, target: str = "sm_90") -> str:
    """The PTX of a Thread IR kernel, after checking that ptxas assembles it for sm_80 and sm_90."""
    program = parse(text, THREAD_IR)
    for other in ("sm_80", "sm_90"):
        assemble(compile_to_ptx(program, other).ptx, other)
    return compile_to_ptx(program, target).ptx


ACCESSES = """kernel accesses(%x: ptr<uint8> divisibility=16, %y: ptr<uint8> divisibility=16, \
    %p: bool) num_threads=64 {
  %b1: uint8 = load(pointer=%x, width=1)
  %b2: vector<uint8, 2> = load(pointer=pointer_add(%x, 2), width=2)
  %b4: vector<uint8, 4> = load(pointer=pointer_add(%x, 4), width=4)
  %b8: vector<uint8, 8> = load(pointer=pointer_add(%x, 8), width=8)
  %b16: vector<uint8, 16> = load(pointer=pointer_add(%x, 16), width=16)
  %nibbles: vector<int4, 8> = load(pointer=pointer_cast<int4>(pointer_add(%x, 32)), width=4)
  %maybe: vector<uint8, 16> = load(pointer=pointer_add(%x, 48), width=16, predicate=%p)
  store(pointer=shared_pointer<uint8>(thread_index() * 16), value=%b16)
  %s16: vector<uint8, 16> = load(pointer=shared_pointer<uint8>((thread_index() * 16) + 16), width=16)
  store(pointer=%y, value=%b1)
  store(pointer=pointer_add(%y, 2), value=%b2)
  store(pointer=pointer_add(%y, 4), value=%b4)
  store(pointer=pointer_add(%y, 8), value=%b8)
  store(pointer=pointer_add(%y, 16), value=%s16)
  store(pointer=pointer_cast<int4>(pointer_add(%y, 32)), value=%nibbles, predicate=%p)
  store(pointer=pointer_add(%y, 48), value=%maybe)
}"""


def test_accesses_move_whole_words_of_their_width() -> None:
    ptx = _compile(ACCESSES)
    filecheck(
        ptx,
        """
        CHECK: .visible .entry accesses(
        CHECK-NEXT: .param .u64 .ptr .global .align 16 accesses_param_0,
        CHECK: .maxntid 64
        """,
    )
    for access in ("ld.global.b8", "ld.global.b16", "ld.global.b32", "ld.global.v2.b32", "ld.global.v4.b32"):
        assert re.search(rf"\b{re.escape(access)}\s", ptx), access
    for access in ("st.global.b8", "st.global.b16", "st.global.b32", "st.global.v2.b32", "st.global.v4.b32"):
        assert re.search(rf"\b{re.escape(access)}\s", ptx), access
    assert re.search(r"st\.shared\.v4\.b32", ptx) and re.search(r"ld\.shared\.v4\.b32", ptx)
    # the eight nibbles are one 32-bit word, loaded and stored whole: no byte of them is touched alone
    assert len(re.findall(r"\bld\.global\.b32\s", ptx)) == 2  # b4 and the nibbles
    assert ".extern .shared .align 16 .b8 accesses_shared[]" in ptx


def test_a_predicated_access_is_guarded_by_its_predicate() -> None:
    text = """kernel guarded(%x: ptr<float32> divisibility=16, %y: ptr<float32> divisibility=16, \
    %p: bool) num_threads=32 {
  %v: vector<float32, 4> = load(pointer=%x, width=16, predicate=%p)
  store(pointer=%y, value=%v)
}"""
    ptx = _compile(text)
    # the load runs under the predicate (a branch around it or a guard on it), the store always
    load = re.search(r"ld\.global\.v4\.b32", ptx)
    predicate = re.search(r"@!?%p\d+ (bra|ld)", ptx)
    assert load and predicate and predicate.start() < load.start()
    assert re.search(r"st\.global\.v4\.b32", ptx)


def test_copies_run_asynchronously() -> None:
    text = """kernel copies(%x: ptr<uint8> divisibility=16, %n: int32) num_threads=32 {
  cp_async(destination=shared_pointer<uint8>(thread_index() * 16), source=%x, size=16, source_size=16, \
    cache="global")
  cp_async(destination=shared_pointer<uint8>(512 + (thread_index() * 16)), source=%x, size=16, \
    source_size=%n, cache="global")
  cp_async(destination=shared_pointer<uint8>(1024 + (thread_index() * 8)), source=%x, size=8, source_size=%n)
  cp_async(destination=shared_pointer<uint8>(2048 + (thread_index() * 4)), source=%x, size=4, source_size=4)
  cp_async(destination=shared_pointer<uint8>(3072 + (thread_index() * 16)), source=%x, size=16, \
    source_size=select(thread_index() < %n, 16, 0), cache="global")
  cp_async_commit_group()
  cp_async_wait_group(pending=1)
  barrier(barrier_id=3)
  cp_async_wait_group(pending=0)
  barrier()
}"""
    filecheck(
        _compile(text),
        """
        CHECK: cp.async.cg.shared.global [{{.*}}], [{{.*}}], 16;
        CHECK: cp.async.cg.shared.global [{{.*}}], [{{.*}}], 16, {{%r[0-9]+}};
        CHECK: cp.async.ca.shared.global [{{.*}}], [{{.*}}], 8, {{%r[0-9]+}};
        CHECK: cp.async.ca.shared.global [{{.*}}], [{{.*}}], 4;
        CHECK: cp.async.cg.shared.global [{{.*}}], [{{.*}}], 16, ignore;
        CHECK: cp.async.commit_group;
        CHECK: cp.async.wait_group 1;
        CHECK: bar.sync 3;
        CHECK: cp.async.wait_group 0;
        CHECK: bar.sync 0;
        """,
    )


def test_ldmatrix_gives_its_fragments() -> None:
    text = """kernel fragments(%y: ptr<uint32> divisibility=16) num_threads=32 {
  %a: vector<float16, 2>, %b: vector<float16, 2>, %c: vector<float16, 2>, %d: vector<float16, \
    2> = ldmatrix(pointer=shared_pointer<float16>(thread_index() * 16), count=4)
  %e: vector<bfloat16, 2> = ldmatrix(pointer=shared_pointer<bfloat16>(thread_index() * 16), count=1, \
    transpose=true)
  store(pointer=%y, value=gather([bitcast<uint32, 1>(%a), bitcast<uint32, 1>(%b), bitcast<uint32, \
    1>(%c), bitcast<uint32, 1>(%d)], [0, 1, 2, 3]))
  store(pointer=pointer_add(%y, 16), value=bitcast<uint32, 1>(%e))
}"""
    filecheck(
        _compile(text),
        """
        CHECK: ldmatrix.sync.aligned.m8n8.x4.shared.b16 {{{(%r[0-9]+, ){3}%r[0-9]+}}}, [{{%r[0-9]+}}];
        CHECK: ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16
        """,
    )


def test_atomics_use_the_operation_of_their_dtype() -> None:
    text = """kernel atomics(%i: ptr<int32> divisibility=16, %u: ptr<uint64> divisibility=16, \
    %f: ptr<float32> divisibility=16, %h: ptr<float16> divisibility=16, \
    %out: ptr<int32> divisibility=16, %p: bool, %v: int32, %w: uint64, %x: float32, \
    %y: float16) num_threads=32 {
  %a: int32 = atomic(op="add", pointer=%i, value=%v)
  %b: int32 = atomic(op="max", pointer=shared_pointer<int32>(thread_index() * 4), value=%v)
  %c: uint64 = atomic(op="min", pointer=%u, value=%w)
  %d: float32 = atomic(op="add", pointer=%f, value=%x)
  %e: int32 = atomic(op="exchange", pointer=%i, value=%v, predicate=%p)
  %g: float16 = atomic(op="add", pointer=%h, value=%y)
  %k: int32 = atomic(op="xor", pointer=%i, value=%v)
  store(pointer=%out, value=%a + (%b + (%e + %k)))
  store(pointer=%u, value=%c)
  store(pointer=%f, value=%d)
  store(pointer=%h, value=%g)
}"""
    ptx = _compile(text)
    for instruction in (
        "atom.global.add.u32",
        "atom.shared.max.s32",
        "atom.global.min.u64",
        "atom.global.add.f32",
        "atom.global.exch.b32",
        "atom.global.add.noftz.f16",
        "atom.global.xor.b32",
    ):
        assert instruction in ptx, instruction


def test_loops_and_branches() -> None:
    text = """kernel loops(%x: ptr<int32> divisibility=16, %n: int32, %m: int64) num_threads=32 {
  %total: int32 = declare(init=0)
  for %i: int32 in range(0, %n, 1) unroll=4 {
    %old: int32 = atomic(op="max", pointer=%x, value=%i)
  }
  for %j: int64 in range(%m, 0:int64, -3:int64) {
    if (%j & 1:int64) == 0:int64 {
      set(variable=%total, value=%total + 1)
    } else {
      set(variable=%total, value=%total ^ 5)
    }
  }
  %count: int32 = declare(init=%n)
  while %count > 0 {
    set(variable=%count, value=%count - 2)
  }
  store(pointer=%x, value=%total + %count)
}"""
    ptx = _compile(text)
    # unroll=4: the loop body four times, then the remainder loop's once
    assert len(re.findall(r"atom\.global\.max\.s32", ptx)) == 5
    assert re.search(r"setp\.\w+\.s64", ptx)  # the int64 loop counts in 64 bits


def test_the_kernel_signature_and_what_the_launch_needs() -> None:
    text = """kernel signature(%x: ptr<float16> divisibility=8, %y: ptr<uint8>, %flag: bool, \
    %nibble: int4, %h: float16, %b: bfloat16, %f: float32, %n: int64, \
    %k: uint16) num_threads=96 shared_bytes=1536 {
  store(pointer=%y, value=select(%flag, cast<uint8>(%k), 1:uint8))
}"""
    compiled = compile_to_ptx(parse(text, THREAD_IR), "sm_80")
    assemble(compiled.ptx, "sm_80")
    assert compiled.parameters == ("pointer", "pointer", "i8", "i8", "f16", "bf16", "f32", "i64", "i16")
    assert (compiled.name, compiled.target, compiled.num_threads, compiled.shared_bytes) == (
        "signature", "sm_80", 96, 1536
    )  # fmt: skip
    filecheck(
        compiled.ptx,
        """
        CHECK: .version 8.0
        CHECK: .target sm_80
        CHECK: .visible .entry signature(
        CHECK-NEXT: .param .u64 .ptr .global .align 8 signature_param_0,
        CHECK-NEXT: .param .u64 .ptr .global .align 1 signature_param_1,
        CHECK-NEXT: .param .u8 signature_param_2,
        CHECK-NEXT: .param .u8 signature_param_3,
        CHECK-NEXT: .param .align 2 .b8 signature_param_4[2],
        CHECK-NEXT: .param .align 2 .b8 signature_param_5[2],
        CHECK-NEXT: .param .f32 signature_param_6,
        CHECK-NEXT: .param .u64 signature_param_7,
        CHECK-NEXT: .param .u16 signature_param_8
        CHECK-NEXT: )
        CHECK-NEXT: .maxntid 96
        """,
    )
    assert "noalias" not in compiled.llvm_ir  # the tensors of a launch may overlap
    assert '"nvvm.maxntid"="96"' in generate_llvm_ir(parse(text, THREAD_IR), "sm_80")


# -- the guards ------------------------------------------------------------------------------------------


def test_a_misspelled_intrinsic_is_an_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def misspelled(context, instruction) -> None:
        context.call("llvm.nvvm.barrier.cta.sync.aligned.al", ir.VoidType(), [ir.IntType(32)(0)])

    monkeypatch.setitem(codegen_handlers.INSTRUCTIONS, Barrier, misspelled)
    program = parse("kernel sync() num_threads=32 {\n  barrier()\n}", THREAD_IR)
    with pytest.raises(
        CodegenError, match=r"kernel 'sync' calls 'llvm\.nvvm\.barrier\.cta\.sync\.aligned\.al'"
    ):
        compile_to_ptx(program)


def test_a_call_of_a_function_that_is_no_intrinsic_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def external(context, instruction) -> None:
        context.call("vprintf", ir.VoidType(), [])

    monkeypatch.setitem(codegen_handlers.INSTRUCTIONS, Barrier, external)
    program = parse("kernel sync() num_threads=32 {\n  barrier()\n}", THREAD_IR)
    with pytest.raises(CodegenError, match=r"calls 'vprintf', which is not an LLVM intrinsic"):
        compile_to_ptx(program)


def test_an_llvm_abort_is_an_error_and_the_next_kernel_compiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """stmatrix does not exist on sm_80: LLVM aborts its process (here the worker's) in instruction
    selection."""

    def unselectable(context, instruction) -> None:
        address = context.value(SharedPointer(uint16, ThreadIndex()))
        context.call(
            "llvm.nvvm.stmatrix.sync.aligned.m8n8.x1.b16", ir.VoidType(), [address, ir.IntType(32)(7)]
        )

    program = parse("kernel sync() num_threads=32 {\n  barrier()\n}", THREAD_IR)
    with monkeypatch.context() as patch:
        patch.setitem(codegen_handlers.INSTRUCTIONS, Barrier, unselectable)
        with pytest.raises(
            CodegenError, match=r"kernel 'sync': LLVM crashed compiling it: LLVM ERROR: Cannot select"
        ):
            compile_to_ptx(program, "sm_80")
    assert re.search(r"bar\.sync\s+0;", compile_to_ptx(program, "sm_80").ptx)


def test_ptx_with_an_external_function_or_another_version_is_refused() -> None:
    ptx = compile_to_ptx(parse("kernel sync() num_threads=32 {\n  barrier()\n}", THREAD_IR), "sm_90").ptx
    check_ptx(ptx, TARGETS["sm_90"], "sync")
    extern = ptx.replace(
        ".visible .entry", ".extern .func llvm.nvvm.bogus\n(\n.param .b32 a\n);\n.visible .entry"
    )
    with pytest.raises(
        CodegenError, match=r"kernel 'sync': the PTX calls the external function 'llvm\.nvvm\.bogus'"
    ):
        check_ptx(extern, TARGETS["sm_90"], "sync")
    with pytest.raises(CodegenError, match=r"\.version 8\.5, not 8\.4 as sm_90 asked"):
        check_ptx(ptx, Target("sm_90", 90, 84), "sync")
    with pytest.raises(CodegenError, match=r"the PTX's \.target is sm_90, not sm_89"):
        check_ptx(ptx, Target("sm_89", 89, 85), "sync")


def test_a_lower_ptx_version_for_an_older_driver() -> None:
    program = parse("kernel sync() num_threads=32 {\n  barrier()\n}", THREAD_IR)
    ptx = compile_to_ptx(program, TARGETS["sm_90"].with_ptx_limit(80)).ptx
    assert re.search(r"^\.version 8\.0$", ptx, re.MULTILINE)


def test_float8_mma_for_sm_80_is_an_error_at_the_users_line() -> None:
    text = """kernel mma8(%a: ptr<float8_e4m3> divisibility=16, \
    %c: ptr<float32> divisibility=16) num_threads=32 {
  %x: vector<float8_e4m3, 4> = load(pointer=%a, width=4)
  %z: float32 = load(pointer=%c, width=4)
  %d0: float32, %d1: float32, %d2: float32, %d3: float32 = mma(shape="m16n8k32", a=[%x, %x, %x, %x], \
    b=[%x, %x], c=[%z, %z, %z, %z])  # loc("user_kernel.py", 12, 8)
  store(pointer=%c, value=%d0 + (%d1 + (%d2 + %d3)))
}"""
    program = parse(text, THREAD_IR)
    with pytest.raises(CodegenError) as error:
        compile_to_ptx(program, "sm_80")
    assert error.value.location == SourceLocation("user_kernel.py", 12, 8)
    assert str(error.value).startswith("user_kernel.py:12:8: mma.sync on float8_e4m3 / float8_e5m2 operands")
    assemble(compile_to_ptx(program, "sm_89").ptx, "sm_89")


def test_an_unknown_target_is_an_error_listing_the_known_ones() -> None:
    program = parse("kernel sync() num_threads=32 {\n  barrier()\n}", THREAD_IR)
    with pytest.raises(
        CodegenError, match="unknown target 'sm_70'; tilevm generates code for sm_80, sm_86, sm_89"
    ):
        compile_to_ptx(program, "sm_70")


def test_every_thread_ir_instruction_and_expression_has_a_handler() -> None:
    assert set(THREAD_IR.instructions) - set(codegen_handlers.INSTRUCTIONS) == set()
    assert (
        set(THREAD_IR.expressions) - set(codegen_handlers.EXPRESSIONS) - {Var} == set()
    )  # context.value reads variables
