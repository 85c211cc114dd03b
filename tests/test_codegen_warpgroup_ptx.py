"""The PTX of the warpgroup instructions: wgmma.mma_async as the PTX ISA spells it (shape, types, the
accumulators, both descriptors, then scale-d, imm-scale-a, imm-scale-b, imm-trans-a, imm-trans-b; with A in
registers, its four 32-bit registers in braces and no imm-trans-a), its fence, commit and wait in program
order with the accumulators read only after the wait and the held registers used after it, and the
async-proxy fence; assembled by ptxas for sm_90a. Their numbers are checked on the GPU
(``test_codegen_warpgroup_gpu``). Targets without them refuse them with a ``CodegenError``."""

from __future__ import annotations

import re

import pytest
from codegen_support import assemble

from tests.wgmma_programs import Case, program_text
from tilevm.codegen import CodegenError, compile_to_ptx
from tilevm.dtypes import bfloat16, float16
from tilevm.ir import parse
from tilevm.ir.thread import THREAD_IR
from tilevm.passes.filecheck import filecheck


def _ptx(text: str, target: str = "sm_90a") -> str:
    return compile_to_ptx(parse(text, THREAD_IR), target).ptx


@pytest.mark.parametrize(
    "case",
    [
        Case(n=8, dtype=float16, swizzle=128, steps=2),
        Case(n=24, dtype=bfloat16, swizzle=0, steps=2),
        Case(n=256, dtype=float16, swizzle=64, steps=2, warpgroups=2),
        Case(n=8, dtype=bfloat16, swizzle=128, steps=2, a_in_registers=True),
        Case(n=64, dtype=float16, swizzle=0, steps=3, a_in_registers=True),
        Case(n=256, dtype=bfloat16, swizzle=128, steps=2, warpgroups=2, a_in_registers=True),
    ],
    ids=str,
)
def test_wgmma_is_the_isa_instruction_between_its_fence_commit_and_wait(case: Case) -> None:
    ptx = _ptx(program_text(case))
    types = "f16" if case.dtype == float16 else "bf16"
    registers = ", ".join(r"%r\d+" for _ in range(case.n // 2))
    # A: a descriptor, or four registers in braces (the register form has no imm-trans-a)
    a, immediates = (
        (r"\{%r\d+, %r\d+, %r\d+, %r\d+\}", "1, 1, 1, 0;")
        if case.a_in_registers
        else (r"%rd\d+", "1, 1, 1, 0, 0;")
    )
    wgmma = (
        rf"wgmma.mma_async.sync.aligned.m64n{case.n}k16.f32.{types}.{types} {{{registers}}}, {a}, %rd\d+, "
    )
    assert len(re.findall(wgmma + immediates, ptx)) == case.steps
    filecheck(
        ptx,
        f"""
        CHECK: .extern .shared .align 1024 .b8 wgmma_case_shared[];
        CHECK: fence.proxy.async.shared::cta;
        CHECK: bar.sync 0;
        CHECK: wgmma.fence.sync.aligned;
        CHECK: wgmma.mma_async.sync.aligned.m64n{case.n}k16
        CHECK: wgmma.commit_group.sync.aligned;
        CHECK: wgmma.mma_async.sync.aligned.m64n{case.n}k16
        CHECK: wgmma.commit_group.sync.aligned;
        CHECK: wgmma.wait_group.sync.aligned 1;
        CHECK: wgmma.wait_group.sync.aligned 0;
        CHECK: st.global.v4.b32
        """,
    )
    assemble(ptx, "sm_90a")


READ_AFTER_WAIT = """kernel read_after_wait(%d: ptr<float32> divisibility=16) num_threads=128 \
shared_bytes=2048 {
  %desc: uint64 = let(value=cast<uint64>(shared_address(shared_pointer<uint8>(0))) >> 4:uint64)
  wgmma_fence()
  %x0: float32, %x1: float32, %x2: float32, %x3: float32 = wgmma(n=8, dtype=float16, a=%desc, b=%desc, \
c=[0.0, 0.0, 0.0, 0.0])
  wgmma_commit_group()
  %e0: float32, %e1: float32, %e2: float32, %e3: float32 = wgmma_wait_group(pending=0, \
accumulators=[%x0, %x1, %x2, %x3])
  store(pointer=pointer_add(%d, thread_index() * 4), value=(%e0 * %e1) + (%e2 * %e3))
}"""


def test_the_accumulators_are_read_after_the_wait() -> None:
    """The wait's outputs come out of an empty asm after it, which LLVM cannot move above the wait: the
    arithmetic on them follows it (PTX: reading an accumulator before the wait is undefined)."""
    ptx = _ptx(READ_AFTER_WAIT)
    wait = ptx.index("wgmma.wait_group.sync.aligned")
    assert ptx.index("wgmma.mma_async") < wait
    assert wait < min(ptx.index(op) for op in ("mul.rn.f32", "fma.rn.f32") if op in ptx)
    assemble(ptx, "sm_90a")


def _bitcast_sources(llvm_ir: str, arguments: str) -> list[str]:
    """The f16x2 or bf16x2 values whose bits are the i32 arguments of a call."""
    casts = dict(re.findall(r'(%"\.\d+") = bitcast <2 x (?:half|bfloat)> (%"\.\d+") to i32', llvm_ir))
    return [casts[name] for name in re.findall(r'i32 (%"\.\d+")', arguments)]


def test_a_wait_keeps_the_a_registers_it_holds_until_after_it() -> None:
    """After the wait, an empty volatile asm takes the A registers that the wgmma took (CUTLASS's
    ``warpgroup_fence_operand``): LLVM keeps them live, unchanged, until then. In the PTX the asm is empty,
    right after the wait."""
    case = Case(n=8, dtype=float16, swizzle=128, steps=1, a_in_registers=True)
    compiled = compile_to_ptx(parse(program_text(case), THREAD_IR), "sm_90a")
    llvm_ir = compiled.llvm_ir
    wgmma = re.search(r'asm sideeffect "wgmma\.mma_async[^"]*", "[^"]*"\((.*)\)', llvm_ir).group(1)
    wait = llvm_ir.index('wait_group.sync.aligned"(i64 0)')
    keep_alive = re.compile(r'call void asm sideeffect "", "r,r,r,r,~\{memory\}"\((.*)\)').search(
        llvm_ir, wait
    )
    assert keep_alive is not None, llvm_ir[wait:]
    held = _bitcast_sources(llvm_ir, keep_alive.group(1))
    assert len(held) == 4 and held == _bitcast_sources(llvm_ir, wgmma)
    assert re.search(
        r"wgmma\.wait_group\.sync\.aligned\s+0;\s*// begin inline asm\s*// end inline asm", compiled.ptx
    )
    assemble(compiled.ptx, "sm_90a")


HELD = """kernel held(%x: ptr<float16> divisibility=16, %y: ptr<uint64> divisibility=16) num_threads=128 {
  %h: float16 = load(pointer=%x, width=2)
  %pair: vector<float16, 2> = load(pointer=%x, width=4)
  %f: float32 = let(value=cast<float32>(%h))
  %wide: uint64 = load(pointer=%y, width=8)
  wgmma_wait_group(pending=0, held=[%h, %pair, %f, %wide])
}"""


def test_held_registers_of_each_width_go_to_the_keep_alive_asm_by_their_bits() -> None:
    compiled = compile_to_ptx(parse(HELD, THREAD_IR), "sm_90a")
    operands = r'i16 %"\.\d+", i32 %"\.\d+", i32 %"\.\d+", i64 %'
    assert re.search(r'call void asm sideeffect "", "h,r,r,l,~\{memory\}"\(' + operands, compiled.llvm_ir)
    assemble(compiled.ptx, "sm_90a")


@pytest.mark.parametrize("target", ["sm_80", "sm_89", "sm_90"])
@pytest.mark.parametrize("line", ["wgmma_fence()", "wgmma_commit_group()", "wgmma_wait_group(pending=0)"])
def test_targets_without_wgmma_refuse_it(target: str, line: str) -> None:
    message = (
        r"wgmma.mma_async and its fence, commit_group and wait_group needs sm_90a and PTX 8.0; "
        rf"the target is {target} with PTX"
    )
    with pytest.raises(CodegenError, match=message):
        _ptx(READ_AFTER_WAIT, target)
    with pytest.raises(CodegenError, match=message):
        _ptx(f"kernel alone() num_threads=128 {{\n  {line}\n}}", target)


FENCE = """kernel fence_then_address(%d: ptr<uint32>) num_threads=128 shared_bytes=512 {
  store(pointer=shared_pointer<uint32>(thread_index() * 4), value=thread_index())
  fence_proxy_async()
  %address: uint32 = let(value=shared_address(shared_pointer<uint32>(thread_index() * 4)))
  store(pointer=pointer_add(%d, thread_index() * 4), value=%address)
}"""


@pytest.mark.parametrize("target", ["sm_90", "sm_90a"])
def test_the_async_proxy_fence_and_shared_addresses(target: str) -> None:
    ptx = _ptx(FENCE, target)
    filecheck(
        ptx,
        """
        CHECK: .extern .shared .align 16 .b8 fence_then_address_shared[];
        CHECK: mov.b32 {{%r[0-9]+}}, fence_then_address_shared;
        CHECK: st.shared.b32
        CHECK: fence.proxy.async.shared::cta;
        CHECK: st.global.b32
        """,
    )
    # the shared address stored is the register that the shared store addresses
    address = re.search(r"st\.shared\.b32 \t?\[(%r\d+)\]", ptx).group(1)
    assert re.search(rf"st\.global\.b32 \t?\[%rd\d+\], {address};", ptx)
    assemble(ptx, target)


def test_sm_80_refuses_the_async_proxy_fence() -> None:
    with pytest.raises(CodegenError, match=r"fence.proxy.async.shared::cta needs sm_90 and PTX 8.0"):
        _ptx(FENCE, "sm_80")
