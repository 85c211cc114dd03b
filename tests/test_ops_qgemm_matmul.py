"""``quantized_matmul`` on a ``QuantizedWeight`` from ``quantize_weight`` (leading dims of x, bias), against
``x.double() @ qweight.dequantize(torch.float64).T``; and the validation of ``qgemm``'s and
``quantized_matmul``'s arguments, which fails before anything launches."""

from __future__ import annotations

import pytest
import torch
from test_ops_qgemm import ROUNDOFF

import tilevm as tv
from tilevm.ops import quantize_weight, quantized_matmul
from tilevm.ops.qgemm import PrefillConfig, QGemmConfig, prelayout, qgemm


def test_quantized_matmul_matches_the_dequantized_weight() -> None:
    generator = torch.Generator().manual_seed(11)
    n, k = 21, 160
    qweight = quantize_weight(
        torch.randn(n, k, generator=generator), tv.uint4, 32, compute_dtype=torch.bfloat16
    )
    x = torch.randn(2, 3, k, generator=generator).to(torch.bfloat16)
    bias = torch.randn(n, generator=generator).to(torch.bfloat16)
    out = quantized_matmul(x, qweight, bias)
    weight = qweight.dequantize(torch.float64)
    expected = x.double() @ weight.T + bias.double()
    # the weights rounded once to bfloat16 (scaled in it by groups of 32), float32 sums of 160 terms, the
    # result rounded once: within 2u of sum |x||w| plus u of the result
    u = ROUNDOFF[torch.bfloat16]
    tolerance = u * expected.abs() + 2 * u * (x.double().abs() @ weight.abs().T)
    assert out.shape == (2, 3, n) and out.dtype == torch.bfloat16
    assert ((out.double() - expected).abs() <= tolerance).all()


def _arguments() -> dict:
    n, k = 16, 256
    return {
        "x": torch.zeros(3, k, dtype=torch.float16),
        "packed": prelayout.pack(torch.zeros(n, k, dtype=torch.uint8), 4),
        "scales": torch.ones(k // 128, n, dtype=torch.float16),
        "code_dtype": tv.int4,
        "n": n,
        "group_size": 128,
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x": torch.zeros(3, 256)}, "x must be a float16 or bfloat16 tensor"),
        ({"x": torch.zeros(256, 3, dtype=torch.float16).T}, "x must be contiguous"),
        ({"code_dtype": tv.int16}, "code_dtype must be an integer of 1 to 8 bits"),
        (
            {"packed": torch.zeros(2, 3, 1, 32, 16, dtype=torch.uint8)},
            r"packed must be a torch.uint8 tensor of shape \[1, 4, 1, 32, 16\]",
        ),
        ({"group_size": 48}, "group_size must be one of"),
        (
            {"scales": torch.ones(2, 16, dtype=torch.bfloat16)},
            "scales must be a torch.float16 tensor|scales must have x's dtype",
        ),
        (
            {"scales": torch.ones(3, 16, dtype=torch.float16)},
            r"scales must be a torch.float16 tensor of shape \[2, 16\]",
        ),
        ({"zeros": torch.zeros(2, 16, dtype=torch.float16)}, "zeros go with uint codes"),
        ({"global_scale": torch.ones(1)}, r"global_scale must be a torch.float32 tensor of shape \[\]"),
        (
            {"bias": torch.zeros(15, dtype=torch.float16)},
            r"bias must be a torch.float16 tensor of shape \[16\]",
        ),
        ({"out": torch.zeros(3, 16)}, "out must be a torch.float16 tensor"),
        ({"scale_dtype": tv.e8m0}, "scales must be a torch.uint8 tensor"),
        ({"config": "fast"}, "config must be a QGemmConfig"),
    ],
)
def test_qgemm_rejects_bad_arguments(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        qgemm(**{**_arguments(), **change})


def test_config_fields_are_checked() -> None:
    with pytest.raises(ValueError, match=r"QGemmConfig\.block_m must be one of"):
        QGemmConfig(block_m=24)
    with pytest.raises(ValueError, match=r"QGemmConfig\.max_registers must be between 24 and 255"):
        QGemmConfig(max_registers=300)
    with pytest.raises(ValueError, match=r"PrefillConfig\.max_registers must be an int or None"):
        PrefillConfig(max_registers=96.0)


def test_quantized_matmul_rejects_bad_arguments() -> None:
    qweight = quantize_weight(torch.randn(8, 64), tv.int4, 32, compute_dtype=torch.float16)
    with pytest.raises(ValueError, match="qweight must be a QuantizedWeight"):
        quantized_matmul(torch.zeros(2, 64, dtype=torch.float16), qweight.packed)
    with pytest.raises(ValueError, match="K = 64"):
        quantized_matmul(torch.zeros(2, 63, dtype=torch.float16), qweight)
    with pytest.raises(ValueError, match=r"compute dtype torch\.float16"):
        quantized_matmul(torch.zeros(2, 64, dtype=torch.bfloat16), qweight)
