"""The quantized GEMM kernel on the GPU at the benchmark's decode shapes, against the float64 product of X
and the weight dequantized in float64 from its codes and scales (``test_ops_qgemm``'s reference and error
bound)."""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch
from test_ops_qgemm import check, make_inputs, run_qgemm

import tilevm as tv
from tilevm.ops.qgemm import PrefillConfig, QGemmConfig, search_space
from tilevm.ops.qgemm.config import decode_config

SHAPES = [(4096, 4096), (8192, 8192), (28672, 8192), (8192, 28672)]
#: (code, scale kind, group size): integer widths, MX fp4 / fp8 (e8m0, 32), NVFP4 (ue4m3, 16), per channel
FORMATS = [
    (tv.int4, "compute", 128),
    (tv.uint4, "compute", 128),
    (tv.int8, "compute", None),
    (tv.int3, "compute", 64),
    (tv.uint5, "compute", 64),  # 5 and 7 bits: the prefill kernel at M = 1 where K >= N
    (tv.int7, "compute", 128),
    (tv.uint2, "compute", 32),
    (tv.float4_e2m1, "e8m0", 32),
    (tv.float4_e2m1, "ue4m3", 16),
    (tv.float6_e3m2, "compute", 128),
    (tv.float8_e4m3, "e8m0", 32),
]


@pytest.mark.gpu
@pytest.mark.parametrize(("n", "k"), SHAPES)
@pytest.mark.parametrize(("code", "scale_kind", "group"), FORMATS, ids=str)
def test_qgemm_at_benchmark_shapes(
    n: int, k: int, code: tv.DType, scale_kind: str, group: int | None
) -> None:
    compute = torch.bfloat16 if scale_kind == "e8m0" else torch.float16
    group = group or k
    inputs = make_inputs(code, compute, scale_kind, group, 16, n, k, bias=True, seed=n + k, device="cuda")
    for m in (1, 4, 16):  # the first rows of X: one weight, three decode shapes
        rows = {**inputs, "x": inputs["x"][:m], "bias": inputs["bias"] if m != 4 else None}
        check(rows, run_qgemm(rows, code, group, None))


@pytest.mark.gpu
@pytest.mark.parametrize("config", random.Random(7).sample(search_space(16), 60), ids=str)
def test_qgemm_configurations_on_the_gpu(config: QGemmConfig) -> None:
    inputs = make_inputs(
        tv.int4, torch.float16, "compute", 64, 16, 1000, 4096, bias=True, seed=3, device="cuda"
    )
    check(inputs, run_qgemm(inputs, tv.int4, 64, config))


@pytest.mark.gpu
@pytest.mark.parametrize("m", [17, 100])
def test_qgemm_with_more_rows_on_the_gpu(m: int) -> None:
    inputs = make_inputs(
        tv.uint4, torch.bfloat16, "compute", 128, m, 4104, 4096, bias=True, seed=m, device="cuda"
    )
    check(inputs, run_qgemm(inputs, tv.uint4, 128, None))


@pytest.mark.gpu
@pytest.mark.parametrize(("n", "k"), SHAPES)
@pytest.mark.parametrize("code", [tv.int4, tv.int2, tv.int8, tv.uint3], ids=str)
def test_stream_k_at_benchmark_shapes(n: int, k: int, code: tv.DType) -> None:
    """The persistent grid (as many blocks as the GPU runs at once, sharing the tiles' iterations) under
    the decode kernel's default tiling, with and without prefetch."""
    inputs = make_inputs(code, torch.float16, "compute", 128, 16, n, k, bias=True, seed=n + k, device="cuda")
    for m, prefetch in ((1, False), (16, True)):
        default = decode_config(m, n, k, code.nbits, 128)
        config = dataclasses.replace(default, split_k=1, stream_k=True, prefetch=prefetch)
        rows = {**inputs, "x": inputs["x"][:m]}
        check(rows, run_qgemm(rows, code, 128, config))


@pytest.mark.gpu
@pytest.mark.parametrize(
    "config",
    [
        QGemmConfig(num_warps=4, n_tiles=1, block_m=8, chunks=2, prefetch=True, k_warps=4, split_k=3),
        QGemmConfig(num_warps=8, n_tiles=1, block_m=8, chunks=2, prefetch=False, k_warps=8, stream_k=True),
        PrefillConfig(n_warps=4, m_warps=1, n_tiles=1, m_tiles=1, chunks=1, steps=2, stages=2, split_k=4),
    ],
    ids=str,
)
def test_split_k_under_cuda_graphs_and_on_two_streams(config: QGemmConfig | PrefillConfig) -> None:
    """Split-K's (the decode kernel's, the persistent grid's, and the prefill kernel's at decode size)
    workspace and counters first met inside a graph capture
    (allocated in the graph's pool, zeroed by a node of the graph), replayed twice; then the same
    configuration eagerly on the capture stream and on another stream: every result against the float64
    reference."""
    inputs = make_inputs(
        tv.int4, torch.float16, "compute", 128, 3, 520, 4096, bias=True, seed=9, device="cuda"
    )
    stream = torch.cuda.Stream()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        captured = run_qgemm(inputs, tv.int4, 128, config)
    for _ in range(2):
        captured.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        check(inputs, captured)
    for side in (stream, torch.cuda.Stream()):
        with torch.cuda.stream(side):
            out = run_qgemm(inputs, tv.int4, 128, config)
        torch.cuda.synchronize()
        check(inputs, out)
