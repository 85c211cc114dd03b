"""``tv.kernel(..., max_registers=N)``: the cap reaches the PTX as ``.maxnreg``, ptxas keeps to it, the
program computes the same with it (spilling on the GPU), bad caps are refused where the kernel is made,
and the cap is part of the program's text form and of the disk cache's key."""

from __future__ import annotations

import re
import shutil

import pytest
import torch
from codegen_support import assemble, registers_used

import tilevm as tv
from tilevm.ir import parse
from tilevm.lang.parameters import ConstexprParameter
from tilevm.passes import CompileOptions
from tilevm.runtime.launcher_cache import specialization_key

ROW = 4096  # values of a row a block holds: 32 float32 a thread of 4 warps, live across two reductions


def _normalize(x, out, BLOCK: tv.constexpr):
    """Each row minus its mean, over its norm: every value of the row stays live across two reductions,
    which takes about 90 registers a thread when nothing caps them."""
    row = tv.block_idx()
    values = tv.cast(tv.load_global(x, offsets=[row, 0], shape=[BLOCK]), tv.float32)
    centered = values - tv.sum(values, dim=0) / float(BLOCK)
    scaled = centered * tv.rsqrt(tv.sum(centered * centered, dim=0))
    tv.store_global(out, tv.view(tv.cast(scaled, tv.float16), tv.float16, [1, BLOCK]), offsets=[row, 0])


_normalize.__annotations__.update(x=tv.Tensor, out=tv.Tensor)


def _expected(x: torch.Tensor) -> torch.Tensor:
    centered = x.double() - x.double().mean(dim=1, keepdim=True)
    return centered / centered.norm(dim=1, keepdim=True)


@pytest.mark.skipif(shutil.which("ptxas") is None, reason="ptxas is not on PATH")
def test_the_cap_is_the_ptx_maxnreg_and_ptxas_keeps_to_it():
    x = torch.empty(3, ROW, dtype=torch.float16)
    free = tv.kernel(_normalize, num_warps=4).ptx(x, x, BLOCK=ROW, target="sm_90")
    capped = tv.kernel(_normalize, num_warps=4, max_registers=40).ptx(x, x, BLOCK=ROW, target="sm_90")
    assert ".maxnreg" not in free
    assert re.search(r"^\.maxnreg 40$", capped, re.MULTILINE), capped[:2000]
    uncapped = registers_used(assemble(free, "sm_90", verbose=True))
    report = assemble(capped, "sm_90", verbose=True)
    assert uncapped > 40, "the kernel no longer needs more registers than the cap: the test is void"
    assert registers_used(report) <= 40, report


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("cap", [None, 32])
def test_a_capped_kernel_computes_what_an_uncapped_one_does(device, cap):
    """On the GPU a cap of 32 makes ptxas spill (about 90 registers uncapped): the spilled program gives
    the float64 reference's values; the interpreter ignores the cap."""
    rows, block = (5, ROW) if device == "cuda" else (3, 256)
    generator = torch.Generator().manual_seed(17 + (cap or 0))
    x = (torch.randn(rows, block, generator=generator) * 2 + 0.5).half().to(device)
    out = torch.full_like(x, float("nan"))
    tv.kernel(_normalize, num_warps=4, max_registers=cap)[(rows,)](x, out, BLOCK=block)
    torch.testing.assert_close(out.cpu().double(), _expected(x.cpu()), rtol=2**-10, atol=2**-16)


@pytest.mark.parametrize(
    ("cap", "message"),
    [
        (8, "between 24 and 255"),
        (256, "between 24 and 255"),
        ("64", "an int or None"),
        (True, "an int or None"),
        (64.0, "an int or None"),
    ],
)
def test_a_bad_cap_is_refused_where_the_kernel_is_made(cap, message):
    with pytest.raises(ValueError, match=f"max_registers must be {message}"):
        tv.kernel(_normalize, num_warps=4, max_registers=cap)


def test_the_cap_is_in_the_program_and_its_text_form():
    x = torch.empty(2, 256, dtype=torch.float16)
    program = tv.kernel(_normalize, num_warps=4, max_registers=64).ir(x, x, BLOCK=256)
    assert program.max_registers == 64
    text = str(program)
    assert re.match(r"kernel _normalize\(.*\) num_threads=128 .*max_registers=64 \{", text.splitlines()[0])
    assert parse(text).max_registers == 64
    assert "max_registers" not in str(tv.kernel(_normalize, num_warps=4).ir(x, x, BLOCK=256)).splitlines()[0]
    with pytest.raises(ValueError, match="between 24 and 255"):
        parse("kernel k() num_threads=32 max_registers=300 {\n}")


def test_kernels_of_other_caps_have_other_disk_keys():
    described = (ConstexprParameter("BLOCK", 256),)
    keys = {
        specialization_key(_normalize, (128, cap), described, CompileOptions(), "sm_90", (9, 0), 13000)
        for cap in (None, 64, 128)
    }
    assert len(keys) == 3
