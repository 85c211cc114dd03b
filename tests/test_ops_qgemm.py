"""The quantized GEMM kernel (``tilevm.ops.qgemm.qgemm``) through the SIMT interpreter, against
``x.double() @ W64.T`` where ``W64`` is the float64 weight dequantized here from the codes with the dtype
codec (``tilevm.dtypes.decode``) and the scales: every code dtype, every group size, every scale kind,
float16 and bfloat16, zero points, bias, ragged M and N, several configurations."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
import torch

import tilevm as tv
from tilevm.ops.qgemm import CODE_DTYPES, QGemmConfig, prelayout, qgemm
from tilevm.ops.qgemm.kernel import code_scale

#: unit roundoff of the compute dtypes
ROUNDOFF = {torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}
#: the smallest subnormal step of the compute dtypes (a weight rounded there errs by half of it)
SUBNORMAL = {torch.float16: 2.0**-24, torch.bfloat16: 2.0**-133}
CONFIGS = [
    QGemmConfig(num_warps=4, n_tiles=1, block_m=8, chunks=1, prefetch=False),
    QGemmConfig(num_warps=2, n_tiles=2, block_m=16, chunks=2, prefetch=True),
    QGemmConfig(num_warps=1, n_tiles=4, block_m=32, chunks=1, prefetch=True),
    QGemmConfig(num_warps=8, n_tiles=1, block_m=8, chunks=1, prefetch=True, k_warps=8),
    QGemmConfig(num_warps=4, n_tiles=1, block_m=8, chunks=2, prefetch=True, k_warps=2, split_k=3),
    QGemmConfig(num_warps=2, n_tiles=2, block_m=16, chunks=4, prefetch=False, k_warps=2, split_k=2),
    QGemmConfig(num_warps=4, n_tiles=1, block_m=8, chunks=1, prefetch=True, k_warps=4, stream_k=True),
    QGemmConfig(num_warps=2, n_tiles=1, block_m=16, chunks=2, prefetch=False, stream_k=True),
]


def _exact_codes(dtype: tv.DType, compute: torch.dtype) -> np.ndarray:
    """The codes whose values ``compute`` holds exactly (the kernel casts codes to the compute dtype before
    scaling; float16 lacks the range of the widest-exponent formats), NaN and inf codes excluded."""
    codes = np.arange(1 << dtype.nbits)
    values = tv.dtypes.decode(codes, dtype).astype(np.float64)
    rounded = torch.from_numpy(values).to(compute).double().numpy()
    return codes[np.isfinite(values) & (rounded == values)]


def fitted(config: QGemmConfig, code: tv.DType, group: int, k: int) -> QGemmConfig:
    """``config`` with enough chunks an iteration to hold whole groups of ``group`` (``plan_error``)."""
    if group in (16, k):
        return config
    return dataclasses.replace(config, chunks=max(config.chunks, group // prelayout.chunk_k(code.nbits)))


def _case(index: int) -> dict:
    """The seeded case ``index``: one code dtype each, the other choices cycled or drawn."""
    rng = random.Random(1000 + index)
    code = CODE_DTYPES[index % len(CODE_DTYPES)]
    compute = (torch.float16, torch.bfloat16)[index % 2]
    scale_kind = ("compute", "compute", "e8m0", "ue4m3")[index % 4]
    if code.kind == "uint":
        scale_kind = "compute"  # zero points go with compute-dtype scales
    group = {"e8m0": 32, "ue4m3": 16}.get(scale_kind, (16, 32, 64, 128, None)[index % 5])
    k = {16: 144, 32: 160, 64: 320, 128: 256}.get(group, 200)
    return {
        "code": code,
        "compute": compute,
        "scale_kind": scale_kind,
        "group": group or k,
        "k": k,
        "m": (1, 5, 17)[index % 3],
        "n": rng.choice([3, 20, 37, 72]),
        "bias": index % 3 != 1,
        "config": fitted(CONFIGS[0], code, group or k, k),
        "seed": index,
    }


def make_inputs(
    code: tv.DType,
    compute: torch.dtype,
    scale_kind: str,
    group: int,
    m: int,
    n: int,
    k: int,
    bias: bool,
    seed: int,
    device: str = "cpu",
) -> dict:
    """Seeded codes, scales (``scale_kind``: "compute", "e8m0" or "ue4m3" with a global scale), zero
    points for uint codes, bias and X, with ``weight``: the float64 weight dequantized from them here."""
    generator = torch.Generator(device).manual_seed(seed)
    groups = k // group
    allowed = torch.from_numpy(_exact_codes(code, compute)).to(device)
    codes = allowed[torch.randint(0, len(allowed), (n, k), generator=generator, device=device)].to(
        torch.uint8
    )
    table = torch.from_numpy(tv.dtypes.decode(np.arange(1 << code.nbits), code).astype(np.float64)).to(device)
    values = table[codes.long()]
    # scales near 1 / max|value|, so that the weights are of order 1 whatever the format's range
    largest = float(table[allowed.long()].abs().max()) or 1.0
    wanted = (torch.rand(groups, n, generator=generator, device=device, dtype=torch.float64) + 0.5) / largest
    inputs = {"zeros": None, "global_scale": None, "scale_dtype": None}
    if scale_kind == "compute":
        scales = wanted.to(compute)
        scale_values = scales.double()
    else:
        scale_dtype = tv.e8m0 if scale_kind == "e8m0" else tv.ue4m3
        target = wanted.cpu().numpy() * (1 if scale_dtype == tv.e8m0 else 64)  # ue4m3: 2^-9 .. 448
        scale_codes = tv.dtypes.encode(target, scale_dtype).astype(np.uint8)
        scales = torch.from_numpy(scale_codes).to(device)
        scale_values = torch.from_numpy(tv.dtypes.decode(scale_codes, scale_dtype).astype(np.float64)).to(
            device
        )
        inputs["scale_dtype"] = scale_dtype
    weight = values.reshape(n, groups, group)
    if code.kind == "uint":
        zeros = torch.randint(0, 1 << code.nbits, (groups, n), generator=generator, device=device)
        inputs["zeros"] = zeros.to(compute)
        weight = weight - inputs["zeros"].double().T[:, :, None]
    weight = (weight * scale_values.T[:, :, None]).reshape(n, k)
    if scale_kind == "ue4m3":
        inputs["global_scale"] = torch.tensor(1 / 64, dtype=torch.float32, device=device)
        weight = weight / 64
    inputs["bias"] = torch.randn(n, generator=generator, device=device).to(compute) if bias else None
    inputs["x"] = torch.randn(m, k, generator=generator, device=device).to(compute)
    inputs["scales"] = scales
    inputs["packed"] = prelayout.pack(codes, code.nbits)
    inputs["weight"] = weight
    return inputs


def run_qgemm(inputs: dict, code: tv.DType, group: int, config: QGemmConfig | None) -> torch.Tensor:
    """``qgemm`` on ``inputs`` into an output poisoned with NaN."""
    x = inputs["x"]
    n = inputs["weight"].shape[0]
    out = torch.full((x.shape[0], n), float("nan"), dtype=x.dtype, device=x.device)
    returned = qgemm(
        x,
        inputs["packed"],
        inputs["scales"],
        code_dtype=code,
        n=n,
        group_size=group,
        scale_dtype=inputs["scale_dtype"],
        zeros=inputs["zeros"],
        global_scale=inputs["global_scale"],
        bias=inputs["bias"],
        config=config,
        out=out,
    )
    assert returned is out
    return out


def check(inputs: dict, out: torch.Tensor) -> None:
    """``out`` against ``x.double() @ weight.T + bias`` within the error bound of the kernel's arithmetic."""
    x, weight = inputs["x"].double(), inputs["weight"]
    compute = inputs["x"].dtype
    expected = x @ weight.T
    if inputs["bias"] is not None:
        expected = expected + inputs["bias"].double()
    # Error sources: each weight rounded once to the compute dtype when the scale multiplies it there
    # (relative u, or half a subnormal step); float32 products exact and sums of K terms (at most
    # K * 2^-24 relative to sum |x||w| for any order, tensor cores' included); the final rounding to the
    # compute dtype (relative u of the result).
    u = ROUNDOFF[compute]
    magnitude = x.abs() @ weight.abs().T
    k = weight.shape[1]
    tolerance = (
        u * expected.abs()
        + (u + k * 2.0**-24) * magnitude
        + SUBNORMAL[compute] * x.abs().sum(dim=1, keepdim=True)
    )
    error = (out.double() - expected).abs()
    assert not torch.isnan(out).any(), "an output element was not written"
    worst = int(error.argmax())
    assert (error <= tolerance).all(), (
        f"max error {float(error.max())}, tolerance there {float(tolerance.flatten()[worst])}"
    )


@pytest.mark.parametrize("index", range(len(CODE_DTYPES)))
def test_qgemm_matches_float64_reference(index: int) -> None:
    case = _case(index)
    keys = ("code", "compute", "scale_kind", "group", "m", "n", "k", "bias", "seed")
    inputs = make_inputs(*(case[key] for key in keys))
    out = run_qgemm(inputs, case["code"], case["group"], case["config"])
    assert out.dtype == case["compute"] and out.shape == (case["m"], case["n"])
    check(inputs, out)


def test_cases_cover_every_choice() -> None:
    cases = [_case(index) for index in range(len(CODE_DTYPES))]
    assert {case["code"] for case in cases} == set(CODE_DTYPES)
    assert {case["group"] for case in cases if case["group"] != case["k"]} == {16, 32, 64, 128}
    assert any(case["group"] == case["k"] for case in cases)
    assert {case["scale_kind"] for case in cases} == {"compute", "e8m0", "ue4m3"}
    assert {(case["compute"], case["scale_kind"]) for case in cases if case["scale_kind"] == "compute"} == {
        (torch.float16, "compute"),
        (torch.bfloat16, "compute"),
    }
    assert {case["m"] for case in cases} == {1, 5, 17}


@pytest.mark.parametrize(
    ("code", "group", "k", "config_index"),
    [
        (tv.int8, 64, 512, 1),  # 2 chunks of 32: one group an iteration, on the partial sums
        (tv.uint4, 32, 512, 2),  # zero points on the weights, 4 m16 atoms a warp, 4 m8 atoms of X
        (tv.int2, 64, 512, 3),  # 8 warps all across k: 2 groups an iteration, a batch dim of the dot
        (tv.float8_e4m3, 16, 512, 3),  # groups of 16: scales on the weights, 8 slices of k
        (tv.int4, 128, 1152, 4),  # 3 blocks split 5 iterations: the last block runs one, half past K
        (tv.uint3, None, 1000, 5),  # per channel: zeros for every slice, scales at the end; split in 2
        (tv.int5, 32, 2304, 5),  # 9 chunks of 256: the last iteration of a slice past K
        # the persistent grid (7 blocks in the interpreter): 9 tiles of 5 iterations (the last past K),
        # 45 units in runs of 7, so most tiles are shared by two blocks, loads running ahead across tiles
        (tv.int4, 64, 1152, 6),
        # 4 tiles of 9 iterations in runs of 6: tiles shared by three blocks; per-channel scales and zeros
        (tv.uint2, None, 2304, 7),
    ],
)
def test_qgemm_configurations(code: tv.DType, group: int | None, k: int, config_index: int) -> None:
    config = CONFIGS[config_index]
    group = group or k
    inputs = make_inputs(code, torch.float16, "compute", group, 20, 45, k, True, seed=config_index + k)
    check(inputs, run_qgemm(inputs, code, group, config))


@pytest.mark.parametrize(
    ("code", "group", "config_index"),
    [
        (tv.float4_e2m1, 64, 3),  # groups of 64 a batch dim of the dot: 8 slices of k, prefetched
        (tv.float6_e3m2, None, 0),  # per channel: the scales and the cast's scale at the end
        (tv.float6_e2m3, 32, 4),  # split in 3
        (tv.float3_e1m1, 128, 6),  # the persistent grid
        (tv.float7_e3m3, 64, 1),  # 2 atoms of columns a warp
    ],
)
def test_small_float_codes_cast_into_halves_with_no_multiply(code, group, config_index) -> None:
    """Small float codes whose scales multiply partial sums or block sums are cast to float16 with the
    scale ``2**(bias - 15)`` (``kernel.code_scale``: their bits moved into the halves, no multiply), and the
    block's sum is divided by it: against the float64 reference."""
    assert code_scale(code, tv.float16, "groups" if group else "channel", False) == 2.0 ** (code.bias - 15)
    k = 640
    config = fitted(CONFIGS[config_index], code, group or k, k)
    inputs = make_inputs(code, torch.float16, "compute", group or k, 9, 37, k, True, seed=code.nbits)
    check(inputs, run_qgemm(inputs, code, group or k, config))


def test_code_scale_is_one_where_the_scales_multiply_the_weights() -> None:
    assert code_scale(tv.float4_e2m1, tv.float16, "weights", False) == 1.0  # groups of 16
    assert code_scale(tv.float4_e2m1, tv.bfloat16, "groups", False) == 1.0  # bf16 halves would be subnormal
    assert code_scale(tv.float8_e4m3, tv.float16, "groups", False) == 1.0  # cvt, which multiplies nothing
    assert code_scale(tv.int4, tv.float16, "groups", False) == 1.0


def test_an_iteration_must_hold_whole_groups() -> None:
    inputs = make_inputs(tv.int8, torch.float16, "compute", 128, 2, 16, 256, False, seed=5)
    with pytest.raises(ValueError, match="config: chunks=1 gives an iteration of 32 values of k for 8-bit"):
        run_qgemm(inputs, tv.int8, 128, CONFIGS[0])


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_no_layout_conversion_in_the_loop(config: QGemmConfig) -> None:
    """The pinned loads make every layout of the loop what the next instruction needs: inference leaves no
    ``convert_layout`` there (a conversion between threads goes through shared memory every iteration).
    The one conversion the loop has is the kernel's own: the codes, twins in the pre-layout, put side by
    side in the A fragment's slots before the cast (a gather in each thread, which the cast reads
    through)."""
    from tilevm.ir import ConvertLayout
    from tilevm.ir.rewrite import walk_instructions
    from tilevm.ir.stmt import For
    from tilevm.ops.qgemm.kernel import decode_kernel, kernel_plan
    from tilevm.passes.lower.local_maps import conversion_map

    m, n, k, group = 5, 40, 1024, 64
    plan = kernel_plan(4, config.n_warps, config.k_warps, config.split_k, config.n_tiles, config.block_m,
                       config.chunks, group, k, config.stream_k)  # fmt: skip
    workspace = (
        torch.empty(7, 2, config.block_m, 16 * config.n_warps)
        if config.stream_k
        else torch.empty(config.split_k, m, n)
    )
    x, out = torch.empty(m, k, dtype=torch.float16), torch.empty(m, n, dtype=torch.float16)
    packed = prelayout.pack(torch.zeros(n, k, dtype=torch.uint8), 4)
    scales, counters = torch.empty(k // group, n, dtype=torch.float16), torch.empty(8, dtype=torch.int32)
    program = decode_kernel(config.num_warps).ir(
        x, packed, scales, scales, x, x, out, workspace, counters,
        CODE=tv.int4, HAS_ZEROS=False, HAS_GLOBAL_SCALE=False, HAS_BIAS=False, PREFETCH=config.prefetch,
        PLAN=plan,
    )  # fmt: skip
    loops = [statement for statement in walk_instructions(program.body) if isinstance(statement, For)]
    bodies = [list(walk_instructions(loop.body)) for loop in loops]
    (main,) = [body for body in bodies if any(type(item).__name__ == "Dot" for item in body)]  # not split-k's
    conversions = [item for item in main if isinstance(item, ConvertLayout)]
    assert [conversion.operand.type.dtype for conversion in conversions] == [tv.int4]
    (codes,) = conversions
    assert conversion_map(codes.operand.type.layout, codes.output.type.layout) is not None
