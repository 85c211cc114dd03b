"""``kernel.ptx`` and ``kernel.llvm_ir`` on a machine without a GPU: the PTX of the specialization the
arguments select (CPU or meta tensors), checked for its entry and assembled by ``ptxas`` for sm_80 and
sm_90; ``TILEVM_DUMP_IR`` writes the LLVM IR and the PTX beside the passes' dumps."""

import re
import shutil
import subprocess

import pytest
import torch

import tilevm as tv
import tilevm.codegen
from tilevm.runtime.launcher_ptx import LLVM_IR_STAGE, PTX_STAGE

pytestmark = pytest.mark.skipif(
    not hasattr(tilevm.codegen, "compile_to_ptx"), reason="tilevm.codegen.compile_to_ptx has not landed yet"
)
TARGETS = ["sm_80", "sm_90"]


def axpy_function(x: tv.Tensor, y: tv.Tensor, out: tv.Tensor, alpha: float, BLOCK: tv.constexpr):
    start = tv.block_idx() * BLOCK
    a = tv.load_global(x, offsets=[start], shape=[BLOCK])
    b = tv.load_global(y, offsets=[start], shape=[BLOCK])
    tv.store_global(out, a * alpha + b, offsets=[start])


def axpy() -> tv.Kernel:
    """A kernel of its own (its own programs, compiled under the test's environment)."""
    return tv.kernel(num_warps=2)(axpy_function)


def assembles(ptx: str, target: str, tmp_path) -> subprocess.CompletedProcess:
    source = tmp_path / f"kernel_{target}.ptx"
    source.write_text(ptx)
    command = ["ptxas", f"-arch={target}", str(source), "-o", str(tmp_path / f"kernel_{target}.cubin")]
    return subprocess.run(command, capture_output=True, text=True)


@pytest.mark.skipif(shutil.which("ptxas") is None, reason="ptxas is not on PATH")
@pytest.mark.parametrize("target", TARGETS)
def test_the_ptx_of_a_specialization_has_its_entry_and_assembles(target, tmp_path):
    x = torch.randn(100, generator=torch.Generator().manual_seed(1))
    ptx = axpy().ptx(x, x, x, 0.5, BLOCK=64, target=target)
    assert re.search(rf"^\.target {target}\b", ptx, re.MULTILINE)
    assert re.search(r"\.entry\s+\w*axpy_function\w*\s*\(", ptx)
    result = assembles(ptx, target, tmp_path)
    assert result.returncode == 0, result.stderr


def test_meta_tensors_select_the_specialization_of_aligned_tensors():
    kernel = axpy()
    x = torch.randn(100, generator=torch.Generator().manual_seed(2))
    meta = torch.empty(100, device="meta")
    on_meta = kernel.ptx(meta, meta, meta, 0.5, BLOCK=64)
    assert on_meta == kernel.ptx(x, x, x, 0.5, BLOCK=64)
    assert kernel.ptx(x[1:], x[1:], x[1:], 0.5, BLOCK=64) != on_meta  # 4 bytes off 16: no vector access
    assert "target triple" in kernel.llvm_ir(meta, meta, meta, 0.5, BLOCK=64)


def test_dump_ir_writes_the_llvm_ir_and_the_ptx(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEVM_DUMP_IR", str(tmp_path))
    kernel = axpy()
    meta = torch.empty(100, device="meta")
    ptx = kernel.ptx(meta, meta, meta, 0.5, BLOCK=64, target="sm_80")
    folder = tmp_path / "axpy_function"
    assert (folder / PTX_STAGE).read_text() == ptx + "\n"
    assert (folder / LLVM_IR_STAGE).read_text() == kernel.llvm_ir(
        meta, meta, meta, 0.5, BLOCK=64, target="sm_80"
    ) + "\n"
    assert sorted(path.name for path in folder.iterdir())[-3:] == [
        "06-lower_to_threads.tir",
        LLVM_IR_STAGE,
        PTX_STAGE,
    ]
