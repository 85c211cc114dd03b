"""The runtime on what the code generator really makes: every parameter of a compiled kernel is written in as
many bytes as its PTX ``.param`` declares (the PTX ISA's sizes of the types), a ``CompiledPtx`` and its cubin
round-trip through the disk cache, and, on a GPU, the kernel launched through ``CudaLauncher`` fills its
output with the value as torch would."""

from __future__ import annotations

import dataclasses
import functools
import re
import struct

import pytest
import torch
from test_cuda_ptxas import cubin_sm, needs_ptxas

import tilevm as tv
from tilevm.codegen import CompiledPtx, compile_to_ptx
from tilevm.passes import CompileOptions, lower_to_threads, run_pipeline
from tilevm.runtime.cuda import cache, device, ptxas
from tilevm.runtime.cuda.launch import CudaLauncher
from tilevm.runtime.cuda.parameters import PARAMETER_KINDS

BLOCK = 64

#: bytes of each PTX parameter type (PTX ISA, "Fundamental Types")
PTX_TYPE_BYTES = {"8": 1, "16": 2, "32": 4, "64": 8}


@tv.kernel(num_warps=2)
def fill(out: tv.Tensor, value: float, flag: bool, half: tv.float16, count: int, BLOCK: tv.constexpr):
    tile = tv.register_tensor(tv.float32, [BLOCK], init=value)
    tv.store_global(out, tile, offsets=[tv.block_idx() * BLOCK])


@functools.cache
def compiled_fill(target: str) -> CompiledPtx:
    out = torch.empty(10)
    tile_program = dataclasses.replace(fill.ir(out, 2.5, True, 1.0, 3, BLOCK=BLOCK), target=target)
    program = run_pipeline(
        tile_program, CompileOptions(target=target, verify_passes=True), (lower_to_threads,)
    )
    return compile_to_ptx(program, target)


def declared_parameter_bytes(ptx: str) -> list[int]:
    """The size of each ``.param`` of the entry: its type's (``.u64``, ``.f32``...) times its element count
    (``.b8 name[2]``, which LLVM declares for an f16)."""
    signature = re.search(r"\.entry\s+\w+\s*\((.*?)\)", ptx, re.S).group(1)
    sizes = []
    for declaration in signature.split(","):
        bits = re.search(r"\.[bsuf](8|16|32|64)\b", declaration).group(1)
        count = re.search(r"\[(\d+)\]", declaration)
        sizes.append(PTX_TYPE_BYTES[bits] * (int(count.group(1)) if count else 1))
    return sizes


@pytest.mark.parametrize("target", ["sm_80", "sm_90"])
def test_each_parameter_kind_writes_the_bytes_its_ptx_param_declares(target):
    compiled = compiled_fill(target)
    assert compiled.parameters == ("pointer", "i32", "f32", "i8", "f16", "i32")
    declared = declared_parameter_bytes(compiled.ptx)
    kinds = [PARAMETER_KINDS[kind] for kind in compiled.parameters]
    assert [struct.calcsize("<" + kind.fast) for kind in kinds] == declared
    assert [struct.calcsize("<" + kind.code_format) for kind in kinds] == declared  # the checked path's


@needs_ptxas
def test_a_compiled_kernel_and_its_cubin_round_trip_through_the_disk_cache(tmp_path):
    compiled = compiled_fill("sm_90")
    cubin = ptxas.check_assembles(compiled.ptx, compiled.target)
    assert cubin_sm(cubin) == 90
    disk = cache.DiskCache(tmp_path)
    key = cache.cache_key(compiled.llvm_ir, compiled.target)
    disk.store_kernel(key, compiled, cubin)
    assert disk.load_kernel(key) == (compiled, cubin)


@pytest.mark.gpu
@pytest.mark.parametrize(("size", "value"), [(1, -3.25), (1000, 0.1), (4097, 7.0)])
def test_a_compiled_kernel_runs_through_cuda_launcher(size, value):
    index = torch.cuda.current_device()
    compiled = compiled_fill(device.properties(index).target)
    launcher = CudaLauncher(compiled, index)
    out = torch.full((size + 3,), float("nan"), device="cuda")
    view = out[:size]
    values = (view.data_ptr(), size, value, True, 1.0, 3)
    launcher.launch(((size + BLOCK - 1) // BLOCK, 1, 1), values, torch.cuda.current_stream().cuda_stream)
    torch.testing.assert_close(view, torch.full_like(view, value), rtol=0, atol=0)
    assert out[size:].isnan().all()
