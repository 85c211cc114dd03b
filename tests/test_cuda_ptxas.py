"""ptxas: finding it, its version, and assembling hand-written PTX kernels (written from the PTX ISA) into
cubins whose ELF header says the right architecture, read as LLVM's ``llvm/BinaryFormat/ELF.h`` describes
CUDA's ELF files. The kernels here are also the ones the GPU tests (``test_cuda_gpu.py``) load and launch.
"""

from __future__ import annotations

import stat
import struct
import sys

import pytest

from tilevm.codegen import CompiledPtx
from tilevm.runtime.cuda import device, ptxas
from tilevm.runtime.cuda.ptxas import PtxasError

TARGETS = ("sm_80", "sm_86", "sm_89", "sm_90")
HAS_PTXAS = ptxas.find_ptxas() is not None
needs_ptxas = pytest.mark.skipif(
    not HAS_PTXAS, reason="no ptxas (nvidia-cuda-nvcc wheel, PATH or TILEVM_PTXAS)"
)


def ptx_header(target: str = "sm_80", version: str = "8.0") -> str:
    return f".version {version}\n.target {target}\n.address_size 64\n"


# out[i] = a[i] + b[i] * scale for i < n: .rn on both operations keeps ptxas from fusing them into an fma,
# so the result is torch's `a + b * scale` (two roundings) bit for bit
AXPY_BODY = """
.visible .entry axpy(.param .u64 out_ptr, .param .u64 a_ptr, .param .u64 b_ptr, .param .f32 scale,
                     .param .u32 n)
{
    .reg .pred %p<2>;
    .reg .b32 %r<6>;
    .reg .f32 %f<5>;
    .reg .b64 %rd<10>;
    ld.param.u64 %rd1, [out_ptr];
    ld.param.u64 %rd2, [a_ptr];
    ld.param.u64 %rd3, [b_ptr];
    ld.param.f32 %f1, [scale];
    ld.param.u32 %r1, [n];
    mov.u32 %r2, %ctaid.x;
    mov.u32 %r3, %ntid.x;
    mov.u32 %r4, %tid.x;
    mad.lo.u32 %r5, %r2, %r3, %r4;
    setp.ge.u32 %p1, %r5, %r1;
    @%p1 bra DONE;
    cvta.to.global.u64 %rd4, %rd1;
    cvta.to.global.u64 %rd5, %rd2;
    cvta.to.global.u64 %rd6, %rd3;
    mul.wide.u32 %rd7, %r5, 4;
    add.u64 %rd8, %rd5, %rd7;
    ld.global.f32 %f2, [%rd8];
    add.u64 %rd8, %rd6, %rd7;
    ld.global.f32 %f3, [%rd8];
    mul.rn.f32 %f4, %f3, %f1;
    add.rn.f32 %f4, %f2, %f4;
    add.u64 %rd9, %rd4, %rd7;
    st.global.f32 [%rd9], %f4;
DONE:
    ret;
}
"""
AXPY_PARAMETERS = ("pointer", "pointer", "pointer", "f32", "i32")

# Each block reverses its num_threads floats through dynamic shared memory, at byte `offset` of it:
# out[b*N + t] = in[b*N + N-1-t]. With offset >= 48 KiB the block needs the opt-in shared memory limit.
REVERSE_SHARED_BODY = """
.extern .shared .align 16 .b8 smem[];

.visible .entry reverse_shared(.param .u64 out_ptr, .param .u64 in_ptr, .param .u32 offset)
{
    .reg .b32 %r<12>;
    .reg .b64 %rd<10>;
    .reg .f32 %f<2>;
    ld.param.u64 %rd1, [out_ptr];
    ld.param.u64 %rd2, [in_ptr];
    ld.param.u32 %r1, [offset];
    mov.u32 %r2, %tid.x;
    mov.u32 %r3, %ntid.x;
    mov.u32 %r8, %ctaid.x;
    mad.lo.u32 %r9, %r8, %r3, %r2;
    mul.wide.u32 %rd3, %r9, 4;
    cvta.to.global.u64 %rd4, %rd2;
    add.u64 %rd5, %rd4, %rd3;
    ld.global.f32 %f1, [%rd5];
    mov.u32 %r4, smem;
    add.u32 %r4, %r4, %r1;
    shl.b32 %r5, %r2, 2;
    add.u32 %r6, %r4, %r5;
    st.shared.f32 [%r6], %f1;
    bar.sync 0;
    sub.u32 %r7, %r3, %r2;
    sub.u32 %r7, %r7, 1;
    shl.b32 %r7, %r7, 2;
    add.u32 %r7, %r4, %r7;
    ld.shared.f32 %f1, [%r7];
    cvta.to.global.u64 %rd6, %rd1;
    add.u64 %rd7, %rd6, %rd3;
    st.global.f32 [%rd7], %f1;
    ret;
}
"""
REVERSE_SHARED_PARAMETERS = ("pointer", "pointer", "i32")

# Writes the bits of each scalar parameter, zero-extended, to out[0..7]: what the GPU read from the
# parameter buffer, to compare with the values the host meant
SCALARS_BODY = """
.visible .entry scalars(.param .u64 out_ptr, .param .u8 p_i8, .param .u16 p_i16, .param .u32 p_i32,
                        .param .u64 p_i64, .param .b16 p_f16, .param .b16 p_bf16, .param .f32 p_f32,
                        .param .f64 p_f64)
{
    .reg .b16 %h<5>;
    .reg .b32 %r<3>;
    .reg .b64 %rd<12>;
    .reg .f32 %f<2>;
    .reg .f64 %d<2>;
    ld.param.u64 %rd1, [out_ptr];
    cvta.to.global.u64 %rd1, %rd1;
    ld.param.u8 %h1, [p_i8];
    cvt.u64.u16 %rd2, %h1;
    and.b64 %rd2, %rd2, 255;
    st.global.u64 [%rd1], %rd2;
    ld.param.u16 %h2, [p_i16];
    cvt.u64.u16 %rd3, %h2;
    st.global.u64 [%rd1+8], %rd3;
    ld.param.u32 %r1, [p_i32];
    cvt.u64.u32 %rd4, %r1;
    st.global.u64 [%rd1+16], %rd4;
    ld.param.u64 %rd5, [p_i64];
    st.global.u64 [%rd1+24], %rd5;
    ld.param.b16 %h3, [p_f16];
    cvt.u64.u16 %rd6, %h3;
    st.global.u64 [%rd1+32], %rd6;
    ld.param.b16 %h4, [p_bf16];
    cvt.u64.u16 %rd7, %h4;
    st.global.u64 [%rd1+40], %rd7;
    ld.param.f32 %f1, [p_f32];
    mov.b32 %r2, %f1;
    cvt.u64.u32 %rd8, %r2;
    st.global.u64 [%rd1+48], %rd8;
    ld.param.f64 %d1, [p_f64];
    mov.b64 %rd9, %d1;
    st.global.u64 [%rd1+56], %rd9;
    ret;
}
"""
SCALARS_PARAMETERS = ("pointer", "i8", "i16", "i32", "i64", "f16", "bf16", "f32", "f64")

KERNELS = {
    "axpy": (AXPY_BODY, AXPY_PARAMETERS),
    "reverse_shared": (REVERSE_SHARED_BODY, REVERSE_SHARED_PARAMETERS),
    "scalars": (SCALARS_BODY, SCALARS_PARAMETERS),
}


def stand_in(name: str, target: str = "sm_80", num_threads: int = 128, shared_bytes: int = 0) -> CompiledPtx:
    """One of ``KERNELS``, hand-written, as the code generator would give it."""
    body, parameters = KERNELS[name]
    ptx = ptx_header(target) + body
    return CompiledPtx(name, ptx, "", target, num_threads, shared_bytes, parameters)


# From llvm/include/llvm/BinaryFormat/ELF.h: EM_CUDA = 190; ELFABIVERSION_CUDA_V1 = 7 keeps the SM number
# in the low byte of e_flags (EF_CUDA_SM = 0xff), ELFABIVERSION_CUDA_V2 = 8 in bits 8-15
# (EF_CUDA_SM_MASK = 0xff00, EF_CUDA_SM_OFFSET = 8). e_machine is at byte 18 and e_flags at byte 48 of an
# ELF64 header, EI_CLASS (2 for ELF64) at 4, EI_ABIVERSION at 8.
EM_CUDA = 190


def cubin_sm(cubin: bytes) -> int:
    assert cubin[:4] == b"\x7fELF" and cubin[4] == 2
    (machine,) = struct.unpack_from("<H", cubin, 18)
    (flags,) = struct.unpack_from("<I", cubin, 48)
    assert machine == EM_CUDA
    abi_version = cubin[8]
    assert abi_version in (7, 8)
    return flags & 0xFF if abi_version == 7 else (flags >> 8) & 0xFF


@needs_ptxas
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_hand_written_kernels_assemble_for_each_target(name, target):
    cubin = ptxas.check_assembles(stand_in(name, target).ptx, target)
    assert cubin_sm(cubin) == int(target.removeprefix("sm_"))
    assert name.encode() in cubin  # the entry's symbol


@needs_ptxas
def test_rejected_ptx_names_the_kernel_and_carries_ptxas_report():
    bad = ptx_header() + ".visible .entry broken(.param .u64 p)\n{\n    add.f32 %f1, %f2, %f3;\n    ret;\n}\n"
    with pytest.raises(PtxasError) as raised:
        ptxas.assemble(bad, "sm_80")
    message = str(raised.value)
    assert "'broken'" in message and "sm_80" in message
    assert "%f1" in message  # ptxas' own complaint about the undeclared register


@needs_ptxas
def test_ptxas_version_matches_the_ptx_isa_it_accepts():
    """The newest PTX ISA a ptxas release assembles is the one the PTX ISA release table gives its CUDA
    release; one minor version more is refused."""
    major, minor = ptxas.ptxas_version()
    release = major * 1000 + minor * 10
    newest = device.max_ptx_version(release)
    body = ".visible .entry empty()\n{\n    ret;\n}\n"
    ptxas.assemble(ptx_header("sm_80", f"{newest // 10}.{newest % 10}") + body, "sm_80")
    if release > device.PTX_ISA_RELEASES[-1][0]:
        return  # a ptxas newer than the table accepts more than the table knows: only the floor holds
    with pytest.raises(PtxasError, match="empty"):
        ptxas.assemble(ptx_header("sm_80", f"{(newest + 1) // 10}.{(newest + 1) % 10}") + body, "sm_80")


def write_script(path, text: str) -> str:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@needs_ptxas
def test_tilevm_ptxas_variable_picks_the_binary(tmp_path, monkeypatch):
    real = ptxas.find_ptxas()
    log = tmp_path / "calls"
    script = write_script(tmp_path / "my-ptxas", f'#!/bin/sh\necho "$@" >> {log}\nexec {real} "$@"\n')
    monkeypatch.setenv(ptxas.PTXAS_VARIABLE, script)
    assert ptxas.find_ptxas() == script
    cubin = ptxas.assemble(stand_in("axpy", "sm_90").ptx, "sm_90")
    assert cubin_sm(cubin) == 90
    assert "-arch=sm_90" in log.read_text()


def test_tilevm_ptxas_naming_no_executable_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv(ptxas.PTXAS_VARIABLE, str(tmp_path / "missing"))
    with pytest.raises(PtxasError, match=r"TILEVM_PTXAS=.*missing.*not an executable file"):
        ptxas.find_ptxas()


def test_wheel_binary_is_found_before_path(tmp_path, monkeypatch):
    """The nvidia-cuda-nvcc wheel's layout: site-packages/nvidia/cu13/bin/ptxas (a namespace package)."""
    binary_dir = tmp_path / "nvidia" / "cu13" / "bin"
    binary_dir.mkdir(parents=True)
    script = write_script(
        binary_dir / "ptxas", "#!/bin/sh\necho 'Cuda compilation tools, release 13.0, V13.0.88'\n"
    )
    monkeypatch.delenv(ptxas.PTXAS_VARIABLE, raising=False)
    monkeypatch.delitem(sys.modules, "nvidia", raising=False)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    monkeypatch.setenv("PATH", "")
    assert ptxas.find_ptxas() == script
    assert ptxas.ptxas_version() == (13, 0)


def test_no_ptxas_anywhere(tmp_path, monkeypatch):
    monkeypatch.delenv(ptxas.PTXAS_VARIABLE, raising=False)
    monkeypatch.setattr(ptxas, "_wheel_ptxas", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert ptxas.find_ptxas() is None
    assert ptxas.ptxas_version() is None
    with pytest.raises(PtxasError, match="ptxas not found"):
        ptxas.assemble(stand_in("axpy").ptx, "sm_80")


def test_entry_name():
    assert ptxas.entry_name(stand_in("reverse_shared").ptx) == "reverse_shared"
    assert ptxas.entry_name(ptx_header()) == "<no entry>"


def test_ptx_version_reads_the_version_directive():
    assert ptxas.ptx_version(stand_in("axpy").ptx) == 80
    assert ptxas.ptx_version("// generated\n.version 9.0\n.target sm_90\n") == 90
    with pytest.raises(PtxasError, match=r"kernel 'axpy': the PTX has no \.version directive"):
        ptxas.ptx_version(stand_in("axpy").ptx.replace(".version 8.0\n", ""))


def test_the_version_asked_in_the_background_is_asked_once(tmp_path, monkeypatch):
    calls = tmp_path / "calls"
    script = write_script(
        tmp_path / "ptxas",
        f"#!/bin/sh\nsleep 0.2\necho asked >> {calls}\n"
        "echo 'Cuda compilation tools, release 12.8, V12.8.93'\n",
    )
    monkeypatch.setenv(ptxas.PTXAS_VARIABLE, script)
    ptxas.ask_version_in_background()
    assert ptxas.ptxas_version() == (12, 8)  # waits for the thread's answer rather than asking again
    assert ptxas.ptxas_version() == (12, 8)
    assert calls.read_text() == "asked\n"
    broken = write_script(tmp_path / "broken", "#!/bin/sh\necho no version here\n")
    monkeypatch.setenv(ptxas.PTXAS_VARIABLE, broken)
    ptxas.ask_version_in_background()  # the thread swallows the failure; the caller sees it
    with pytest.raises(PtxasError, match="cannot read the version of"):
        ptxas.ptxas_version()
