"""Scales of `quantize_weight`: the OCP MX shared exponent and NVFP4's block and global scales on
hand-picked blocks (expected codes worked out by hand from the definitions) and random ones; groups that
are all zero, tiny or huge; the MSE search; and the errors for bad arguments."""

import math

import numpy as np
import pytest
import quantization_reference as reference
import torch

import tilevm as tv
from tilevm.ops import quantize_weight


def blocks(absmaxes: list[float], size: int, seed: int) -> torch.Tensor:
    """One row of blocks of ``size``: block i holds ``absmaxes[i]`` (at a random place, sign alternating)
    and smaller values (a quarter of it and less)."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for index, absmax in enumerate(absmaxes):
        block = (torch.rand(size, generator=generator, dtype=torch.float64) - 0.5) * (absmax / 2)
        block[int(torch.randint(size, (1,), generator=generator))] = absmax * (-1) ** index
        rows.append(block)
    return torch.cat(rows)[None].to(torch.float32)


@pytest.mark.parametrize(
    ("preset", "absmaxes", "exponents"),
    [
        # e2m1: largest normal 6 = 1.5 * 2^2, emax_elem = 2; X = floor(log2(absmax)) - 2
        ("mxfp4", [1.0, 6.0, 7.9, 0.75, 3e38, 2.0**-130, 0.0], [-2, 0, 0, -3, 125, -127, -127]),
        # e4m3: 448 = 1.75 * 2^8, emax_elem = 8
        ("mxfp8_e4m3", [448.0, 1.0, 500.0, 0.01], [0, -8, 0, -15]),
        # e5m2: 57344 = 1.75 * 2^15, emax_elem = 15
        ("mxfp8_e5m2", [1.0, 65504.0, 2.0**-20], [-15, 0, -35]),
        # e3m2: 28 = 1.75 * 2^4; e2m3: 7.5 = 1.875 * 2^2
        ("mxfp6_e3m2", [28.0, 1.0], [0, -4]),
        ("mxfp6_e2m3", [7.5, 1.0, 0.1], [0, -2, -6]),
    ],
)
def test_mx_shared_exponents_follow_the_ocp_definition(preset, absmaxes, exponents):
    w = blocks(absmaxes, 32, seed=len(preset))
    q = quantize_weight(w, preset)
    assert q.scales[:, 0].tolist() == [x + 127 for x in exponents]  # e8m0 codes: 2^(code - 127)
    scales = torch.tensor([math.ldexp(1.0, x) for x in exponents], dtype=torch.float64)
    assert torch.equal(q.scale_values()[:, 0], scales)
    # the largest element: exact when its mantissa fits, saturated to the element's largest value otherwise
    largest = w.abs().reshape(-1, 32).argmax(-1)
    got = q.dequantize(torch.float64).reshape(-1, 32).gather(1, largest[:, None])[:, 0]
    wanted = w.double().reshape(-1, 32).gather(1, largest[:, None])[:, 0]
    element = q.format.dtype
    wanted = torch.clamp(wanted, -element.max_value * scales, element.max_value * scales)
    representable = torch.from_numpy(tv.round_to_dtype((wanted / scales).numpy(), element).astype(np.float64))
    assert torch.equal(got, representable * scales)


def test_mx_exponents_of_random_blocks():
    generator = torch.Generator().manual_seed(11)
    w = torch.randn(7, 256, generator=generator) * torch.exp2(
        torch.randint(-20, 20, (7, 1), generator=generator)
    )
    for preset, element in (
        ("mxfp4", tv.float4_e2m1),
        ("mxfp6_e2m3", tv.float6_e2m3),
        ("mxfp8_e5m2", tv.float8_e5m2),
    ):
        q = quantize_weight(w, preset)
        absmax = w.double().abs().reshape(7, 8, 32).amax(-1).T
        expected = [[reference.e8m0_exponent(float(a), element) + 127 for a in row] for row in absmax]
        assert q.scales.tolist() == expected


def test_nvfp4_scales_follow_nvidias_definition():
    # absmax(W) = 6 * 448 makes the global scale 1; block scales absmax / 6 in ue4m3 (bias 7):
    # 448 = 0x7E, 1 = 0b0111_000 = 56, 0.5 = 48, 2^-9 (the smallest, also for an all-zero block) = 1
    absmaxes = [2688.0, 6.0, 3.0, 6 * 2.0**-9, 0.0, 1e-6]
    w = blocks(absmaxes, 16, seed=3)
    q = quantize_weight(w, "nvfp4")
    assert q.global_scale.item() == 1.0 and q.global_scale.dtype == torch.float32
    assert q.scales[:, 0].tolist() == [126, 56, 48, 1, 1, 1]
    deq = q.dequantize(torch.float64).reshape(-1, 16)
    largest = w.abs().reshape(-1, 16).argmax(-1)[:4, None]  # each is 6 * its block's scale: exact
    assert torch.equal(deq[:4].gather(1, largest), w.double().reshape(-1, 16)[:4].gather(1, largest))
    assert (deq[4] == 0).all()


def test_nvfp4_global_scale_of_random_weights():
    generator = torch.Generator().manual_seed(12)
    w = torch.randn(6, 64, generator=generator, dtype=torch.float64).to(torch.bfloat16) * 0.02
    q = quantize_weight(w, "nvfp4")
    expected = np.float32(w.double().abs().max().item() / (6 * 448))
    assert q.global_scale.item() == expected
    block_absmax = w.double().abs().reshape(6, 4, 16).amax(-1).T
    scale = torch.from_numpy(tv.round_to_dtype((block_absmax / 6 / float(expected)).numpy(), tv.ue4m3))
    assert torch.equal(q.scale_values(), scale.double().clamp(min=2.0**-9))


@pytest.mark.parametrize("dtype", ["int4", "int1", "uint4", "float6_e3m2", "float8_e5m2", "mxfp4", "nvfp4"])
@pytest.mark.parametrize("compute_dtype", [torch.float16, torch.bfloat16], ids=str)
def test_extreme_groups_get_finite_non_zero_scales(dtype, compute_dtype):
    """Groups that are all zero, tiny (float32 subnormals) or huge (beyond float16) get finite, non-zero
    scales; the all-zero group dequantizes to exact zeros, the others to finite values of the right sign."""
    generator = torch.Generator().manual_seed(len(dtype))
    unit = torch.rand(3, 32, generator=generator) + 0.5
    w = torch.cat([torch.zeros(3, 32), unit * 1e-40, unit * -1e-30, unit * 1e30, -unit * 2e38], dim=1)
    q = quantize_weight(w, dtype, *(() if dtype == "nvfp4" else (32,)), compute_dtype=compute_dtype)
    scales = q.scale_values() * (1.0 if q.global_scale is None else q.global_scale.item())
    assert torch.isfinite(scales).all() and (scales != 0).all()
    deq = q.dequantize(torch.float64)
    assert torch.isfinite(deq).all()
    assert (deq[:, :32] == 0).all()
    assert (deq[:, 96:] * w.double()[:, 96:] >= 0).all()
    if (
        q.format.scale_dtype is not tv.float16
    ):  # float16 scales saturate (next test); the others keep the size
        largest = w[:, 128:].abs().argmax(-1, keepdim=True) + 128
        ratio = deq.gather(1, largest) / w.double().gather(1, largest)
        assert ((ratio > 0.5) & (ratio < 1.5)).all()


def test_huge_groups_saturate_a_float16_scale():
    w = torch.full((2, 32), 1e9)
    q = quantize_weight(w, "int8", 32, compute_dtype=torch.float16)
    assert q.scales.tolist() == [[65504.0, 65504.0]]
    assert (q.dequantize(torch.float64) == 127 * 65504.0).all()
    exact = quantize_weight(w, "int8", 32, compute_dtype=torch.bfloat16)
    assert torch.allclose(exact.dequantize(torch.float64), w.double(), rtol=2**-8)


@pytest.mark.parametrize(
    ("dtype", "group_size", "ratio"),
    [
        *[("int3", 128, 0.7), ("int4", 64, 0.9), ("uint3", 64, 0.9), ("int2", 32, 0.9)],
        *[("float4_e2m1", 32, 0.9), ("nvfp4", 16, 0.95), ("mxfp4", 32, 0.98), ("int8", 128, 1.0)],
    ],
)
def test_mse_search_never_loses_and_usually_wins(dtype, group_size, ratio):
    generator = torch.Generator().manual_seed(group_size + len(dtype))
    w = torch.randn(16, 256, generator=generator)
    errors = []
    for method in ("absmax", "mse"):
        q = quantize_weight(w, dtype, group_size, method=method)
        squared = (q.dequantize(torch.float64) - w.double()).square()
        errors.append(squared.reshape(16, -1, q.group_size).sum(-1))
    absmax, mse = errors
    assert (mse <= absmax).all()
    assert mse.sum() <= ratio * absmax.sum()


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: quantize_weight([[1.0]], "int4"), TypeError, "w must be a torch.Tensor"),
        (lambda: quantize_weight(torch.ones(32), "int4"), ValueError, r"2-D tensor \[N, K\].*\[32\]"),
        (lambda: quantize_weight(torch.ones(0, 32), "int4", 32), ValueError, r"got shape \[0, 32\]"),
        (
            lambda: quantize_weight(torch.ones(4, 32, dtype=torch.int32), "int4", 32),
            ValueError,
            "not torch.int32",
        ),
        (
            lambda: quantize_weight(torch.ones(4, 64, dtype=torch.float64), "int4", 32),
            ValueError,
            "not torch.float64",
        ),
        (lambda: quantize_weight(torch.full((4, 32), math.nan), "int4", 32), ValueError, "NaN or infinite"),
        (
            lambda: quantize_weight(torch.ones(4, 96), "int4", 64),
            ValueError,
            "group_size=64 must divide K = 96",
        ),
        (lambda: quantize_weight(torch.ones(4, 32), "int4", 32, method="gptq"), ValueError, "method='gptq'"),
        (
            lambda: quantize_weight(torch.ones(4, 32), "mxfp4", 16),
            ValueError,
            "dtype='mxfp4' fixes group_size=32",
        ),
        (
            lambda: quantize_weight(torch.ones(4, 32), "nvfp4", scale_dtype="e8m0"),
            ValueError,
            "fixes scale_dtype",
        ),
        (
            lambda: quantize_weight(torch.ones(4, 32), "mxfp4", zero_point=True),
            ValueError,
            "fixes zero_point=False",
        ),
        (
            lambda: quantize_weight(torch.ones(4, 32), "int4", 32, compute_dtype=torch.float32),
            ValueError,
            "float32",
        ),
        (
            lambda: quantize_weight(
                torch.ones(4, 32), "int4", 32, scale_dtype="bf16", compute_dtype=torch.float16
            ),
            ValueError,
            "scale_dtype=bfloat16 must be the compute dtype float16",
        ),
    ],
)
def test_bad_arguments_raise_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_compute_dtype_defaults():
    w = torch.randn(8, 64)
    assert quantize_weight(w, "int4", 32).compute_dtype == torch.float16
    assert quantize_weight(w.to(torch.bfloat16), "int4", 32).compute_dtype == torch.bfloat16
    assert quantize_weight(w.half(), "int4", 32, scale_dtype="bfloat16").compute_dtype == torch.bfloat16
    assert quantize_weight(w, "mxfp4", 32, compute_dtype=torch.bfloat16).compute_dtype == torch.bfloat16
