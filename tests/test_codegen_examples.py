"""The PTX of every example kernel and of a spread of the lowering tests' kernels assembles with ptxas for
sm_80 and sm_90 (ptxas is the reference for valid PTX), and holds the instructions that make it fast, spelled
as the PTX ISA spells them: 16-byte global accesses, ``cp.async.cg``, ``ldmatrix``, ``mma.sync``."""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import pathlib
import re
from collections.abc import Callable

import pytest
import torch
from codegen_support import assemble

import tilevm as tv
from tilevm.codegen import compile_to_ptx
from tilevm.ir import Program
from tilevm.passes import CompileOptions, lower_to_threads, run_pipeline
from tilevm.passes.filecheck import filecheck
from tilevm.runtime.jit import Kernel

#: a kernel and the arguments of one launch of it
Launch = tuple[Kernel, tuple, dict]
EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"
TARGETS = ("sm_80", "sm_90")


def _example(name: str) -> object:
    spec = importlib.util.spec_from_file_location(f"codegen_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _matmul(size: tuple[int, int, int], block: tuple[int, int, int], stages: int) -> Launch:
    (m, n, k), (block_m, block_n, block_k) = size, block
    a, b, c = torch.empty(m, k).half(), torch.empty(k, n).half(), torch.empty(m, n).half()
    kernel = _example("matmul_fp16").matmul
    return kernel, (a, b, c), {"BM": block_m, "BN": block_n, "BK": block_k, "STAGES": stages}


def _vector_add() -> Launch:
    a = torch.empty(1000)
    return _example("vector_add").vector_add, (a, a, a), {"BLOCK": 256}


def _softmax() -> Launch:
    x = torch.empty(37, 300)
    return _example("softmax").softmax, (x, x), {"BLOCK": 512}


def _layer_norm() -> Launch:
    x, weight = torch.empty(37, 300).half(), torch.empty(300).half()
    return _example("layer_norm").layer_norm, (x, weight, weight, x, 300, 1e-5), {"BLOCK": 512}


def _w4a16(m: int, n: int, k: int, group: int, block: tuple[int, int]) -> Launch:
    example = _example("w4a16_matmul")
    packed, scales = example.quantize(torch.ones(k, n), group)
    x, out = torch.empty(m, k).half(), torch.empty(m, n).half()
    return example.w4a16_matmul, (x, packed, scales, out), {"BM": block[0], "BN": block[1], "GROUP": group}


#: each example with its main()'s arguments, and the matmuls with the tiles a large problem would use
EXAMPLE_KERNELS: dict[str, Callable[[], Launch]] = {
    "vector_add": _vector_add,
    "softmax": _softmax,
    "layer_norm": _layer_norm,
    "matmul_fp16": lambda: _matmul((70, 96, 200), (32, 32, 32), 2),
    "matmul_fp16_128x128x32_3_stages": lambda: _matmul((4096, 4096, 4096), (128, 128, 32), 3),
    "w4a16_matmul": lambda: _w4a16(5, 96, 256, 64, (16, 32)),
    "w4a16_matmul_decode": lambda: _w4a16(1, 8192, 8192, 128, (16, 64)),
}


def _lowering_kernels() -> dict[str, Callable[[], Launch]]:
    """Kernels of the lowering tests, with arguments from those tests."""
    import test_lower_casts_run as casts
    import test_lower_global_run as global_run
    import test_lower_shared_run as shared_run

    def dequantize(low: str, half: torch.dtype) -> Launch:
        nbits = tv.dtype(low).nbits
        packed, out = torch.empty(8, 3 * nbits, dtype=torch.uint8), torch.empty(8, 24, dtype=half)
        return casts.dequantize, (packed, out), {"LOW": tv.dtype(low), "BM": 8, "BN": 3 * nbits}

    def round_trip(low: str, rounding: str) -> Launch:
        x = torch.empty(16, 24)
        return casts.round_trip, (x, x), {"LOW": tv.dtype(low), "ROUNDING": rounding, "BM": 16}

    def shifted_copy(dtype: torch.dtype, block: tuple[int, int]) -> Launch:
        source, destination = torch.empty(37, 61, dtype=dtype), torch.empty(40, 66, dtype=dtype)
        arguments = (source, destination, 3, -2, 1, 5)
        return global_run.shifted_copy, arguments, {"BM": block[0], "BN": block[1], "OTHER": 1}

    x16 = torch.empty(16, 80).half()
    return {
        **{
            f"dequantize_{low}_{half}": lambda low=low, half=half: dequantize(low, half)
            for low, half in [
                ("int4", torch.float16),
                ("int3", torch.bfloat16),
                ("float4_e2m1", torch.float16),
                ("float8_e4m3", torch.bfloat16),
            ]
        },
        **{
            f"round_trip_{low}_{rounding}": lambda low=low, rounding=rounding: round_trip(low, rounding)
            for low, rounding in [("float6_e3m2", "nearest"), ("e8m0", "zero"), ("float8_e5m2", "nearest")]
        },
        **{
            f"shifted_copy_{dtype}": lambda dtype=dtype: shifted_copy(dtype, (8, 32))
            for dtype in (torch.float16, torch.int8, torch.float32, torch.uint8)
        },
        "shared_ragged": lambda: (shared_run.ragged, (torch.empty(6, 10), torch.empty(10, 6)), {}),
        "shared_staged": lambda: (shared_run.staged, (x16, x16), {"STAGES": 3}),
    }


KERNELS = {**EXAMPLE_KERNELS, **_lowering_kernels()}
#: the large configurations (seconds each to lower and compile) only for sm_90, the benchmarks' GPU
LARGE = ("matmul_fp16_128x128x32_3_stages", "w4a16_matmul_decode")
CASES = [(name, target) for name in KERNELS for target in TARGETS if name not in LARGE or target == "sm_90"]


def thread_program(launch: Launch, target: str) -> Program:
    """The Thread IR a launch runs on ``target`` (the lowering depends on it: float8 mma, say)."""
    kernel, args, kwargs = launch
    tile_program = dataclasses.replace(kernel.ir(*args, **kwargs), target=target)
    return run_pipeline(tile_program, CompileOptions(target=target, verify_passes=True), (lower_to_threads,))


@functools.cache
def _ptx(name: str, target: str) -> str:
    """The PTX of a kernel, compiled once for the module."""
    return compile_to_ptx(thread_program(KERNELS[name](), target), target).ptx


@pytest.mark.parametrize(("name", "target"), CASES)
def test_the_ptx_assembles(name: str, target: str) -> None:
    assemble(_ptx(name, target), target)


def test_matmul_copies_asynchronously_and_multiplies_on_tensor_cores() -> None:
    for target in TARGETS:
        filecheck(
            _ptx("matmul_fp16", target),
            """
            CHECK: .maxntid 128
            CHECK: cp.async.cg.shared.global [{{.*}}], [{{.*}}], 16
            CHECK: cp.async.commit_group
            CHECK: cp.async.wait_group 1
            CHECK: bar.sync 0
            CHECK: ldmatrix.sync.aligned.m8n8.x4.shared.b16
            CHECK: mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32
            CHECK: bar.sync 0
            """,
        )


def test_vector_add_moves_16_bytes_an_access() -> None:
    ptx = _ptx("vector_add", "sm_90")
    assert len(re.findall(r"ld\.global\.v4\.b32", ptx)) == 2  # a and b, four float32 a thread each
    assert len(re.findall(r"st\.global\.v4\.b32", ptx)) == 1


def test_the_w4a16_weights_are_read_in_16_byte_accesses() -> None:
    ptx = _ptx("w4a16_matmul_decode", "sm_90")
    assert re.search(r"(ld\.global|cp\.async\.cg\.shared\.global)[^\n]*(v4\.b32|16;)", ptx)
    assert "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32" in ptx
