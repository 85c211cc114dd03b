"""The quantized GEMM's prefill kernel (``tilevm.ops.qgemm.prefill``) through the SIMT interpreter at small
ragged shapes, against ``test_ops_qgemm``'s float64 reference (``x.double() @ W64.T`` with the weight
dequantized here from the codes with the dtype codec) and its error bound: integer widths from 1 to 8
bits (narrow and odd ones included), zero points, MX and NVFP4 scales, groups of 16 to 128 and per channel,
float16 and bfloat16, several warp grids and pipelines. Then the choice of the kernel, its loop's IR and
its PTX for sm_90; on the GPU, the benchmark's prefill shape."""

from __future__ import annotations

import functools
import re
import shutil
from dataclasses import replace

import pytest
import torch
from codegen_support import assemble, registers_used
from test_ops_qgemm import check, make_inputs, run_qgemm

import tilevm as tv
from tilevm.ir.rewrite import walk_instructions
from tilevm.ir.stmt import For
from tilevm.ops import quantize_weight, quantized_matmul
from tilevm.ops.qgemm import PrefillConfig, QGemmConfig, default_config, prefill_config, prelayout
from tilevm.ops.qgemm.config import RASTER, uses_prefill, warpgroup_config
from tilevm.ops.qgemm.prefill import prefill_kernel, prefill_plan

#: blocks of 32 x 16 (2 x 2 warps), 32 x 32 (4 warps along m: the weights' fragments in every warp),
#: 64 x 16 (4 warps along n, two chunks a sub-step) and 16 x 64 (8 warps, 4 sub-steps an iteration)
SQUARE = PrefillConfig(n_warps=2, m_warps=2, n_tiles=1, m_tiles=1, chunks=1, steps=2, stages=2)
ROWS = PrefillConfig(n_warps=1, m_warps=4, n_tiles=2, m_tiles=1, chunks=1, steps=1, stages=3)
COLUMNS = PrefillConfig(n_warps=4, m_warps=1, n_tiles=1, m_tiles=2, chunks=2, steps=1, stages=4)
EIGHT = PrefillConfig(n_warps=1, m_warps=8, n_tiles=1, m_tiles=1, chunks=1, steps=4, stages=2)
#: the warp tiles of 32 x 128 (2 x 16 mma atoms): 4 warps of a block of 128 x 128, and 8 of 128 x 256
WIDE = PrefillConfig(n_warps=4, m_warps=1, n_tiles=2, m_tiles=16, chunks=1, steps=2, stages=2)
WIDE8 = PrefillConfig(n_warps=4, m_warps=2, n_tiles=2, m_tiles=16, chunks=1, steps=4, stages=2)
#: and 8 warps of a block of 256 x 128
WIDE_N = PrefillConfig(n_warps=8, m_warps=1, n_tiles=2, m_tiles=16, chunks=1, steps=2, stages=3)
#: one sub-step an iteration: the odd widths' chunks of 256 values of k make long code to compile
SHORT = PrefillConfig(n_warps=2, m_warps=2, n_tiles=1, m_tiles=1, chunks=1, steps=1, stages=3)
#: decode M, one warp across m, blocks sharing a tile's iterations: 3 blocks for 5 iterations (2, 2, 1),
#: and 4 (2, 2, 1, none: a block with no iteration adds a zero tile)
SPLIT3 = PrefillConfig(n_warps=4, m_warps=1, n_tiles=1, m_tiles=2, chunks=1, steps=1, stages=3, split_k=3)
SPLIT4 = PrefillConfig(n_warps=4, m_warps=1, n_tiles=1, m_tiles=1, chunks=1, steps=1, stages=2, split_k=4)
#: decode size with sub-steps of whole groups: the decode kernel's plan (scaled partial sums of each group,
#: or per channel, or groups of 16 on the weights) under the prefill kernel's pipeline
STAGED16 = PrefillConfig(n_warps=4, m_warps=1, n_tiles=1, m_tiles=2, chunks=1, steps=1, stages=2, split_k=2)
STAGED8 = PrefillConfig(n_warps=4, m_warps=1, n_tiles=1, m_tiles=1, chunks=1, steps=2, stages=3, split_k=2)
#: and two atoms of columns a warp (2 and 3 bits at 9 to 16 rows: blocks of 128 columns)
STAGED_PAIRS = replace(STAGED16, n_tiles=2)
#: the weights dequantized into shared memory and multiplied there (dot_shared): a warpgroup of 64 x 16,
#: and two of 128 x 8 sharing the rows, with 3 and 4 stages (and a dot left running across the barrier)
WARPGROUP = PrefillConfig(
    n_warps=4, m_warps=1, n_tiles=1, m_tiles=2, chunks=1, steps=1, stages=3, warpgroups=True
)
WARPGROUPS = PrefillConfig(
    n_warps=8, m_warps=1, n_tiles=1, m_tiles=1, chunks=1, steps=2, stages=4, warpgroups=True, running=1
)

CASES = [
    # code, compute, scale kind, group (None: per channel), m, n, k, bias, config
    (tv.int4, torch.float16, "compute", 128, 37, 45, 512, True, SQUARE),  # 4 iterations of 128
    (tv.int8, torch.bfloat16, "compute", 32, 20, 33, 256, False, ROWS),  # groups of one chunk
    (tv.int2, torch.float16, "compute", 64, 19, 40, 384, True, COLUMNS),  # 4 groups a sub-step, K ragged
    (tv.int3, torch.float16, "compute", None, 17, 30, 300, True, SHORT),  # odd width, K past its chunk
    (tv.int5, torch.bfloat16, "compute", 32, 23, 18, 512, False, SHORT),  # 8 groups a chunk of 256
    (tv.uint4, torch.bfloat16, "compute", 64, 30, 40, 256, True, EIGHT),  # zero points by group
    (tv.uint3, torch.float16, "compute", None, 21, 50, 256, False, SHORT),  # zero points per channel
    (tv.float4_e2m1, torch.bfloat16, "e8m0", 32, 25, 36, 256, True, SQUARE),  # MX
    (tv.float4_e2m1, torch.float16, "ue4m3", 16, 26, 34, 128, True, ROWS),  # NVFP4: global scale
    (tv.float8_e4m3, torch.float16, "compute", 16, 19, 20, 192, False, COLUMNS),  # groups of 16
    (tv.uint8, torch.float16, "compute", 128, 18, 40, 640, True, ROWS),  # a group spans 4 iterations
    (tv.int8, torch.bfloat16, "compute", 64, 22, 24, 320, False, EIGHT),  # sub-steps 2 by 2 share a group
    (tv.int4, torch.float16, "compute", 128, 137, 150, 384, True, WIDE),  # 2 x 2 blocks, both ragged
    (tv.int8, torch.bfloat16, "compute", 128, 70, 130, 256, False, WIDE8),  # M inside one block
    (tv.int4, torch.float16, "compute", 64, 45, 270, 256, True, WIDE_N),  # 2 blocks across n, ragged
    (tv.int4, torch.float16, "compute", 128, 16, 45, 640, True, SPLIT3),  # 5 iterations, 3 blocks a tile
    (tv.uint8, torch.bfloat16, "compute", 64, 5, 90, 640, False, SPLIT4),  # 4 blocks, one with none
    (tv.int3, torch.float16, "compute", 64, 13, 50, 512, True, STAGED16),  # 4 groups: on the weights
    (tv.int6, torch.float16, "compute", 128, 14, 60, 384, True, STAGED16),  # a group a sub-step
    (tv.uint5, torch.bfloat16, "compute", 128, 7, 40, 1536, False, STAGED8),  # zero points, 2 groups
    (tv.float4_e2m1, torch.float16, "ue4m3", 16, 9, 36, 256, True, STAGED8),  # NVFP4: on the weights
    (tv.int7, torch.float16, "compute", None, 16, 20, 512, True, STAGED16),  # per channel
    (tv.int2, torch.float16, "compute", 128, 15, 150, 768, True, STAGED_PAIRS),  # 2 tiles, the last ragged
    (tv.uint3, torch.bfloat16, "compute", 64, 11, 140, 512, False, STAGED_PAIRS),  # zero points by group
    (tv.int4, torch.float16, "compute", 64, 19, 70, 320, True, WARPGROUP),  # 5 iterations, 2 x 2 blocks
    (tv.int8, torch.bfloat16, "compute", 32, 20, 140, 384, False, WARPGROUPS),  # 2 sub-steps, ragged n
    (tv.int2, torch.float16, "compute", None, 9, 64, 384, True, WARPGROUP),  # 2 windows a sub-step
    (tv.uint4, torch.bfloat16, "compute", 128, 17, 64, 256, True, WARPGROUP),  # zero points
    (tv.float4_e2m1, torch.float16, "ue4m3", 16, 10, 70, 256, True, WARPGROUPS),  # NVFP4, groups of 16
    (tv.int3, torch.float16, "compute", 64, 8, 64, 256, False, WARPGROUP),  # 4 windows a sub-step
    # small floats cast into float16 halves with no multiply (kernel.code_scale): scaled partial sums of
    # the decode core; per channel on the warpgroups, cast as they are (prefill._code_scale)
    (tv.float4_e2m1, torch.float16, "compute", 64, 14, 60, 384, True, STAGED16),
    (tv.float6_e3m2, torch.float16, "compute", None, 10, 64, 256, False, WARPGROUP),
    # the decode sizes' blocks of 128 columns where k < n: two atoms a warp (6 and 8 bits), 8 warps (7)
    (tv.int6, torch.float16, "compute", 128, 13, 150, 512, True, replace(STAGED16, n_tiles=2)),
    (tv.int7, torch.bfloat16, "compute", 64, 11, 140, 512, False, replace(STAGED16, n_warps=8)),
    # blocks in bands of row tiles (the last band what is left): 3 x 2 tiles and 3 x 3 in bands of 2, and
    # 3 x 1 split tiles in one band of 4
    (tv.int4, torch.float16, "compute", 128, 37, 45, 512, True, replace(SQUARE, raster=2)),
    (tv.uint4, torch.float16, "compute", 64, 40, 140, 256, True, replace(WARPGROUP, raster=2)),
    (tv.int4, torch.bfloat16, "compute", 128, 40, 45, 640, False, replace(SPLIT3, raster=4)),
]


@pytest.mark.parametrize(
    ("code", "compute", "scale_kind", "group", "m", "n", "k", "bias", "config"),
    CASES,
    ids=[f"{case[0]}-{case[2]}-{case[3]}" for case in CASES],
)
def test_prefill_matches_float64_reference(code, compute, scale_kind, group, m, n, k, bias, config):
    group = group or k
    inputs = make_inputs(code, compute, scale_kind, group, m, n, k, bias, seed=m * n + k)
    out = run_qgemm(inputs, code, group, config)  # poisoned with NaN: check finds any element not written
    assert out.dtype == compute and out.shape == (m, n)
    check(inputs, out)


@pytest.mark.parametrize(
    "case",
    [case for case in CASES if case[-1].warpgroups][:2],
    ids=lambda case: f"{case[0]}-{case[-1].running}",
)
def test_warpgroups_keep_the_running_dots_rules(case, monkeypatch):
    """The warpgroups' pipeline under the block-level reference executor, which raises where a thread
    writes a buffer that a running dot still reads, or reads its result before a wait, and against the
    float64 reference."""
    monkeypatch.setenv("TILEVM_CPU_EXECUTOR", "reference")
    code, compute, scale_kind, group, m, n, k, bias, config = case
    group = group or k
    inputs = make_inputs(code, compute, scale_kind, group, m, n, k, bias, seed=m * n + k)
    check(inputs, run_qgemm(inputs, code, group, config))


def test_quantized_matmul_takes_a_prefill_config():
    generator = torch.Generator().manual_seed(11)
    weight = torch.randn(40, 256, generator=generator).half()
    qweight = quantize_weight(weight, tv.int4, group_size=64)
    x, bias = torch.randn(2, 9, 256, generator=generator).half(), torch.randn(40, generator=generator).half()
    out = quantized_matmul(x, qweight, bias, config=SQUARE)
    expected = x.double() @ qweight.dequantize(torch.float64).T + bias.double()
    magnitude = x.double().abs() @ qweight.dequantize(torch.float64).abs().T
    # the check's bound: the scaled weight rounded once, float32 sums, the output rounded once
    tolerance = 2.0**-11 * (expected.abs() + magnitude) + 256 * 2.0**-24 * magnitude
    assert out.shape == (2, 9, 40) and ((out.double() - expected).abs() <= tolerance).all()


def test_default_config_takes_the_warpgroups_for_4_and_8_bits_where_the_gpu_has_them():
    """From 256 rows (a whole block of 128 x 256), 4 and 8 bits run on the warpgroups where the GPU has
    wgmma; other widths, fewer rows and other GPUs keep the mma.sync prefill kernel."""
    for bits in (4, 8):
        config = default_config(4096, 8192, 8192, bits, "cuda", 128, warpgroups=True)
        assert config == warpgroup_config(bits) and config.warpgroups
        assert (config.block_n, config.block_m, config.num_warps, config.stages) == (128, 256, 8, 4)
        assert config.shared_bytes(bits) <= 227 * 1024
        assert default_config(4096, 8192, 8192, bits, "cuda", 128) == prefill_config(bits)
        assert default_config(255, 28672, 8192, bits, "cuda", 128, warpgroups=True) == prefill_config(bits)
    assert default_config(4096, 8192, 8192, 3, "cuda", 128, warpgroups=True) == prefill_config(3)
    # weights of 96 MiB or more, which L2 does not hold: the blocks in bands of row tiles
    for bits, n, raster in ((4, 28672, RASTER), (8, 28672, RASTER), (8, 8192, 1), (4, 16384, 1)):
        assert default_config(4096, n, 8192, bits, "cuda", 128, warpgroups=True).raster == raster
    with pytest.raises(ValueError, match="3 stages or more"):
        replace(warpgroup_config(4), stages=2)


def test_default_config_picks_the_prefill_kernel_where_it_fills_the_machine():
    assert isinstance(default_config(4096, 8192, 8192, 4, "cuda", 128), PrefillConfig)
    assert isinstance(default_config(4096, 8192, 8192, 8, "cuda", None), PrefillConfig)
    assert isinstance(default_config(4096, 8192, 8192, 4, "cpu", 128), QGemmConfig)  # the interpreter
    assert isinstance(default_config(64, 8192, 8192, 4, "cuda", 128), QGemmConfig)
    # 128 x 128 tiles: 2 x 64 and 32 x 4 are fewer than an H100's 132 SMs, 3 x 64 and 32 x 5 are not
    assert [uses_prefill(m, n) for m, n in ((256, 8192), (4096, 512), (257, 8192), (4096, 513))] == [
        False,
        False,
        True,
        True,
    ]


#: the default's block (columns, rows, warps) and stages: warps of 32 x 128 for 4 and 8 bits (the H100
#: timings of ``prefill_config``'s docstring), 32 x 64 for the widths whose sub-steps are longer
DEFAULT_BLOCKS = {4: (128, 128, 4, 2), 8: (256, 128, 8, 2)}


@pytest.mark.parametrize("bits", range(1, 9))
def test_prefill_config_fits_shared_memory_with_the_most_stages(bits):
    config = prefill_config(bits)
    block_n, block_m, warps, stages = DEFAULT_BLOCKS.get(bits, (128, 64, 4, None))
    chunk = prelayout.chunk_k(bits)
    stage_k = config.steps * config.chunks * chunk
    stage = stage_k * (2 * block_m + block_n * bits // 8)  # X and W bytes a stage
    rows = 2 * (stage_k // 16) * 2 * block_n  # the most rows of scales and zero points: groups of 16
    assert (config.block_n, config.block_m, config.num_warps) == (block_n, block_m, warps)
    assert config.chunks * chunk == max(64, chunk) and stage_k >= 128
    assert config.shared_bytes(bits, group_size=None) == config.stages * stage
    scales = max(1, stage_k // 128) * 2 * block_n  # a row of 16-bit scales per group of 128
    assert config.shared_bytes(bits, 128, zeros=False) == config.stages * (stage + scales)
    assert config.shared_bytes(bits) == config.stages * (stage + rows) <= 227 * 1024
    if stages is None:  # as many stages as fit, up to 3
        assert config.stages == 3 or (config.stages + 1) * (stage + rows) > 227 * 1024
    else:
        assert config.stages == stages


def _program(config: PrefillConfig, bits: int, m: int, n: int, k: int, group: int):
    """The prefill kernel, its arguments (``meta`` tensors of these sizes: compiled, never run) and its
    constexprs."""
    plan = prefill_plan(bits, *_fields(config), group, k)
    meta = functools.partial(torch.empty, device="meta")
    x, out = meta(m, k, dtype=torch.float16), meta(m, n, dtype=torch.float16)
    packed = meta(
        n // 16, k // prelayout.chunk_k(bits), prelayout.loads_per_chunk(bits), 32, 16, dtype=torch.uint8
    )
    scales = meta(k // group, n, dtype=torch.float16)
    kernel = prefill_kernel(config.num_warps, config.max_registers)
    constexprs = dict(CODE=tv.int_type(bits, True), HAS_ZEROS=False, HAS_GLOBAL_SCALE=False, HAS_BIAS=True)
    return kernel, (x, packed, scales, scales, x, x, out, x, x), {**constexprs, "PREFILL": plan}


def _fields(config: PrefillConfig) -> tuple[int, ...]:
    return (config.n_warps, config.m_warps, config.n_tiles, config.m_tiles, config.chunks, config.steps,
            config.stages)  # fmt: skip


@pytest.mark.parametrize("bits", [4, 8])
def test_the_loop_converts_no_layout_and_the_stages_are_all_the_shared_memory(bits):
    """The pinned shared loads give the dot its operands' layouts (no ``convert_layout`` through shared
    memory in the loop; the ones it may have are the decode kernel's own, the codes put in the A
    fragment's slots inside each thread, a gather that the cast reads through), and the block's shared
    memory is its stages'."""
    from tilevm.passes.lower.local_maps import conversion_map

    config = prefill_config(bits)
    kernel, args, constexprs = _program(config, bits, 4096, 8192, 8192, 128)  # as the ptxas test's
    program = kernel.ir(*args, **constexprs)
    loops = [statement for statement in walk_instructions(program.body) if isinstance(statement, For)]
    (main,) = [loop for loop in loops if any(type(i).__name__ == "Dot" for i in walk_instructions(loop.body))]
    conversions = [i for i in walk_instructions(main.body) if type(i).__name__ == "ConvertLayout"]
    assert all(c.operand.type.dtype.nbits == bits for c in conversions)
    assert all(conversion_map(c.operand.type.layout, c.output.type.layout) is not None for c in conversions)
    assert program.shared_bytes == config.shared_bytes(bits, 128, zeros=False)


@pytest.mark.skipif(shutil.which("ptxas") is None, reason="ptxas is not on PATH")
@pytest.mark.parametrize("bits", [4, 8])
def test_ptxas_fits_the_default_in_the_registers(bits):
    """The default configuration for sm_90 at the benchmark's shape: no spills, at most 255 registers
    (8 warps of 256 threads: one block an SM), and the shared loads of X take their constant offsets as
    immediates (one address register for all of a thread's 16-byte loads of a stage), as do the copies
    into a stage (one swizzle serves a thread's rounds of 16 bytes)."""
    kernel, args, constexprs = _program(prefill_config(bits), bits, 4096, 8192, 8192, 128)
    ptx = kernel.ptx(*args, **constexprs, target="sm_90")
    report = assemble(ptx, "sm_90", verbose=True)
    assert "0 bytes spill stores, 0 bytes spill loads" in report, report
    assert registers_used(report) <= 255, report
    loads = re.findall(r"ld\.shared\.v4\.b32\s+\{[^}]*\}, \[(%r\d+)(\+-?\d+)?\]", ptx)
    assert len(loads) >= 32 and sum(1 for _, immediate in loads if immediate) >= len(loads) // 2
    # a copy's shared address: a register plus an immediate, in its brackets (the intrinsic's form) or by
    # the add that makes the operand of the inline form with the ignore-src predicate
    offsets = set(re.findall(r"add\.s32\s+(%r\d+), %r\d+, \d+;", ptx))
    copies = re.findall(r"cp\.async\.cg\.shared\.global\s+\[(%r\d+)(\+\d+)?\]", ptx)
    immediates = sum(1 for register, immediate in copies if immediate or register in offsets)
    assert len(copies) >= 12 and immediates >= len(copies) * 3 // 4


@pytest.mark.gpu
@pytest.mark.parametrize("code", [tv.int4, tv.int8], ids=str)
def test_prefill_at_the_benchmark_shape(code):
    """M = 4096, N = K = 8192 with groups of 128: the default configuration (the prefill kernel) against
    the float64 reference."""
    n = k = 8192
    inputs = make_inputs(code, torch.float16, "compute", 128, 4096, n, k, bias=True, seed=5, device="cuda")
    assert isinstance(default_config(4096, n, k, code.nbits, "cuda", 128), PrefillConfig)
    check(inputs, run_qgemm(inputs, code, 128, None))


#: the configurations the GPU test runs with 4-bit codes (WIDE8's 4 sub-steps of 64 values of k would take
#: 300 KB of shared memory for them: 2 here)
GPU_CONFIGS = [
    SQUARE,
    ROWS,
    COLUMNS,
    EIGHT,
    SHORT,
    WIDE,
    replace(WIDE8, steps=2),
    WIDE_N,
    prefill_config(4),
    STAGED_PAIRS,
    WARPGROUP,
    WARPGROUPS,
    replace(prefill_config(4), n_warps=8, n_tiles=1, steps=1, stages=4, warpgroups=True),
    replace(WARPGROUP, raster=8),  # 19 x 16 tiles in bands of 8, 8 and 3
]


def test_the_gpu_configurations_fit_in_shared_memory():
    """Every configuration of the GPU test fits an H100's shared memory with 4-bit codes, as counted
    here: each stage holds its weight bytes, its rows of X in 16 bits and one row of scales and of zero
    points a group of 64 in it (``PrefillConfig.shared_bytes`` counts the rows of the largest format)."""
    for config in GPU_CONFIGS:
        stage_k = config.steps * config.chunks * 64
        stage = (
            stage_k * config.block_n // 2
            + stage_k * config.block_m * 2
            + 2 * -(-stage_k // 64) * config.block_n * 2
        )
        assert config.stages * stage <= config.shared_bytes(4) <= 227 * 1024, config
    assert not WIDE8.fits(4)


@pytest.mark.gpu
@pytest.mark.parametrize("config", GPU_CONFIGS, ids=str)
def test_prefill_configurations_on_the_gpu(config):
    inputs = make_inputs(
        tv.uint4, torch.bfloat16, "compute", 64, 300, 1000, 2112, bias=True, seed=4, device="cuda"
    )
    check(inputs, run_qgemm(inputs, tv.uint4, 64, config))


@pytest.mark.gpu
@pytest.mark.parametrize("config", [warpgroup_config(4), STAGED16], ids=["warpgroups", "staged"])
def test_small_float_codes_cast_into_halves_on_the_gpu(config):
    """float4_e2m1 codes per channel on the GPU: cast into float16 halves with no multiply
    (``kernel.code_scale``) by the prefill kernel at decode size, whose halves for 0.5 are subnormal and
    which ``mma.sync`` takes exactly; cast as they are on the warpgroups (``prefill._code_scale``)."""
    k = 1024
    inputs = make_inputs(
        tv.float4_e2m1, torch.float16, "compute", k, 300, 640, k, bias=True, seed=9, device="cuda"
    )
    check(inputs, run_qgemm(inputs, tv.float4_e2m1, k, config))


@pytest.mark.parametrize(
    ("m", "n", "k", "bits", "staged"),
    [
        (16, 8192, 8192, 3, True),  # several loads a chunk: X read once a block pays at 9 to 16 rows
        (16, 8192, 28672, 7, True),
        (16, 8192, 8192, 4, False),  # one load a chunk: the decode kernel, below 16384 columns
        (16, 8192, 28672, 2, True),  # but for 1 and 2 bits
        (12, 8192, 8192, 8, False),
        (16, 28672, 8192, 4, True),
        (16, 8192, 28672, 4, True),  # 4 bits where k is 16384 or more
        (16, 8192, 28672, 8, False),
        (16, 4096, 4096, 3, False),  # small weights: the decode kernel's smaller tiles fill the GPU
        (1, 8192, 28672, 5, True),  # up to 8 rows: 5 and 7 bits where k >= n
        (4, 28672, 8192, 7, False),
        (1, 8192, 8192, 3, False),
        (17, 28672, 8192, 3, False),  # above 16 rows: the decode kernel's row tiles
        (16, 28672, 8192, 6, True),  # 6 to 8 bits where k < n: blocks of 128 columns, 2 a tile
        (12, 16384, 4096, 7, True),
        (16, 28672, 8192, 8, True),
    ],
)
def test_decode_shapes_take_the_staged_kernel_by_the_sweep_rule(m, n, k, bits, staged):
    """``default_config`` at decode sizes: the prefill kernel with one warp across m where the H100 sweep
    found it faster (``uses_staged_decode``'s docstring), with 4 blocks a tile (8 at 4096 columns or
    fewer: ``staged_config``'s docstring), blocks of 128 columns for 2 and 3 bits, 64 for the others, and
    3 stages for 4 bits, 2 for the others; but 6 to 8 bits where k < n take blocks of 128 columns (two
    atoms a warp, 8 warps for 7 bits) and 2 blocks a tile."""
    config = default_config(m, n, k, bits, "cuda", 128)
    assert isinstance(config, PrefillConfig) == staged
    if staged:
        block_m = 8 if m <= 8 else 16
        wide = bits in (6, 7, 8) and k < n
        block_n = 128 if bits in (2, 3) or wide else 64
        assert (config.block_m, config.m_warps, config.block_n) == (block_m, 1, block_n)
        assert config.num_warps == (8 if wide and bits == 7 else 4)
        tiles = -(-n // config.block_n)
        assert tiles * config.split_k >= 256 and config.split_k in ((2,) if wide else (4, 8))
        assert config.stages == (3 if bits == 4 else 2)
        assert isinstance(default_config(m, n, k, bits, "cpu", 128), QGemmConfig)


def test_six_bit_floats_keep_blocks_of_64_columns_where_k_is_less_than_n():
    integers = default_config(16, 28672, 8192, 6, "cuda", 128)
    floats = default_config(16, 28672, 8192, 6, "cuda", 128, float_codes=True)
    assert (integers.block_n, integers.split_k) == (128, 2) and (floats.block_n, floats.split_k) == (64, 4)
    assert default_config(16, 28672, 8192, 8, "cuda", 128, float_codes=True).block_n == 128  # float8


@pytest.mark.parametrize(
    ("m", "n", "k", "bits", "group", "two"),
    [
        (1, 8192, 8192, 2, 128, True),
        (4, 8192, 28672, 2, 32, True),
        (8, 8192, 28672, 3, 128, True),
        (1, 28672, 8192, 2, 128, False),  # k < n
        (4, 28672, 8192, 3, 64, False),
        (1, 4096, 4096, 2, 128, False),  # too few blocks
        (16, 8192, 8192, 3, 128, False),  # the staged kernel
        (1, 8192, 28672, 4, 128, False),  # 4 bits keep one atom
    ],
)
def test_narrow_widths_take_two_column_atoms_by_the_sweep_rule(m, n, k, bits, group, two):
    """``decode_config`` at decode sizes: 2 and 3 bits where k is at least n, from 8192 x 8192, give each
    warp two atoms of 16 columns and an iteration of half the values of k (``_two_tiles``' docstring), with
    whole groups an iteration and the weights prefetched only where a chunk is one load."""
    config = default_config(m, n, k, bits, "cuda", group)
    assert isinstance(config, QGemmConfig) == (m <= 8)
    if m > 8:
        return
    values = config.chunks * prelayout.chunk_k(bits)
    assert (config.n_tiles == 2) == two
    if two:
        assert values == (128 if bits == 2 else 256)
    assert values % group == 0
    assert config.prefetch == (bits != 3)
