"""The eager host path of ``quantized_matmul`` (``tilevm.ops.qgemm.host``): a weight keeps one launch per M
bucket and bias, used again within a bucket and never for another weight, dtype, device or bucket; after its
first call a weight's launch binds X and the output only (no slow path, whatever the format); the bias is
read at every call. Every result is compared with ``x.double() @ qweight.dequantize(torch.float64).T (+
bias)``."""

from __future__ import annotations

import pytest
import torch
from test_ops_qgemm import ROUNDOFF

import tilevm as tv
from tilevm.ops import QuantizedLinear, quantize_weight, quantized_matmul
from tilevm.ops.custom_op import quantized_matmul_op
from tilevm.ops.qgemm import host
from tilevm.ops.tuning import m_bucket
from tilevm.runtime.jit import Kernel


def assert_product(out: torch.Tensor, x: torch.Tensor, qweight, bias: torch.Tensor | None = None) -> None:
    """``out`` against the float64 product: the weights rounded once to the compute dtype (scaled in it by
    groups), float32 sums, one rounding of the result (as test_ops_qgemm_matmul)."""
    weight = qweight.dequantize(torch.float64)
    expected = x.double() @ weight.T + (0 if bias is None else bias.double())
    u = ROUNDOFF[x.dtype]
    tolerance = u * expected.abs() + 2 * u * (x.double().abs() @ weight.abs().T)
    assert out.shape == expected.shape and out.dtype == x.dtype
    assert ((out.double() - expected).abs() <= tolerance).all()


def test_a_weight_keeps_one_launch_per_m_bucket_and_bias() -> None:
    generator = torch.Generator().manual_seed(41)
    qweight = quantize_weight(torch.randn(20, 64, generator=generator), tv.int4, 32)
    bias = torch.randn(20, generator=generator).half()
    kept = {}
    for m, with_bias in [(1, False), (8, False), (3, True), (17, False), (1, True), (12, False)]:
        x = torch.randn(m, 64, generator=generator).half()
        b = bias if with_bias else None
        assert_product(quantized_matmul(x, qweight, b), x, qweight, b)
        key = (m_bucket(m), with_bias)
        kept.setdefault(key, qweight.host_cache[key])
        assert qweight.host_cache[key] is kept[key]  # a bucket's launch is used again
    assert set(qweight.host_cache) == {(8, False), (8, True), (16, False), (32, False)}


def test_a_launch_is_never_used_for_another_weight_or_dtype() -> None:
    generator = torch.Generator().manual_seed(42)
    weights = [
        quantize_weight(torch.randn(24, 64, generator=generator), tv.int4, 32),
        quantize_weight(torch.randn(24, 64, generator=generator), tv.int4, 32),  # same format and shape
        quantize_weight(torch.randn(24, 64, generator=generator), tv.int4, 32, compute_dtype=torch.bfloat16),
    ]
    for _ in range(2):  # interleaved: each weight's launch kept, none used for another
        for qweight in weights:
            x = torch.randn(2, 64, generator=generator).to(qweight.compute_dtype)
            assert_product(quantized_matmul(x, qweight), x, qweight)
    first, second, _ = (qweight.host_cache[(8, False)] for qweight in weights)
    assert first.fixed["packed"] is weights[0].packed and second.fixed["packed"] is weights[1].packed


def test_a_moved_or_rebuilt_weight_starts_without_launches() -> None:
    generator = torch.Generator().manual_seed(43)
    qweight = quantize_weight(torch.randn(16, 64, generator=generator), tv.uint4, 32)
    x = torch.randn(1, 64, generator=generator).half()
    quantized_matmul(x, qweight)
    moved = qweight.to("cpu")  # a new weight (new tensors: to() on the same device copies nothing here)
    again = type(qweight).from_state_dict(qweight.state_dict())
    for other in (moved, again):
        assert other.host_cache == {}
        assert_product(quantized_matmul(x, other), x, other)


def test_after_the_first_call_no_launch_takes_the_slow_path(monkeypatch) -> None:
    generator = torch.Generator().manual_seed(44)
    weights = [
        quantize_weight(torch.randn(16, 64, generator=generator), "nvfp4"),  # ue4m3 scales: a tv.view
        quantize_weight(torch.randn(16, 64, generator=generator), tv.uint3, 32),  # zero points
    ]
    bias = torch.randn(16, generator=generator).half()
    for qweight in weights:
        quantized_matmul(torch.randn(1, 64, generator=generator).half(), qweight, bias)
    slow = []
    original = Kernel.launch_slowly
    monkeypatch.setattr(Kernel, "launch_slowly", lambda *args: slow.append(args) or original(*args))
    for qweight in weights:
        for m in (2, 7):
            x = torch.randn(m, 64, generator=generator).half()
            assert_product(quantized_matmul(x, qweight, bias), x, qweight, bias)
    assert slow == []


def test_the_bias_is_read_at_every_call() -> None:
    generator = torch.Generator().manual_seed(45)
    qweight = quantize_weight(torch.randn(12, 32, generator=generator), tv.int8, 32)
    x = torch.randn(3, 32, generator=generator).half()
    bias = torch.randn(12, generator=generator).half()
    assert_product(quantized_matmul(x, qweight, bias), x, qweight, bias)
    bias.mul_(-3)  # changed in place: the kept [1, N] view sees it
    assert_product(quantized_matmul(x, qweight, bias), x, qweight, bias)
    other = torch.randn(12, generator=generator).half()
    assert_product(quantized_matmul(x, qweight, other), x, qweight, other)


def test_quantized_linear_and_the_custom_op_give_the_product() -> None:
    generator = torch.Generator().manual_seed(46)
    qweight = quantize_weight(torch.randn(8, 64, generator=generator), "mxfp4")
    bias = torch.randn(8, generator=generator).half()
    layer = QuantizedLinear(qweight, bias)
    x = torch.randn(2, 3, 64, generator=generator).half()
    assert_product(layer(x), x, qweight, bias)
    assert_product(quantized_matmul_op(x, qweight, bias), x, qweight, bias)
    assert qweight.host_cache == {}  # the layer's weight is its own, over its buffers; the op keeps nothing
    layer.scales = layer.scales.clone()  # a buffer replaced: a new weight, with its own launches
    assert layer.qweight.host_cache == {}
    assert_product(layer(x), x, qweight, bias)


@pytest.mark.gpu
def test_on_the_gpu_each_device_has_its_own_launch() -> None:
    generator = torch.Generator().manual_seed(47)
    on_cpu = quantize_weight(torch.randn(256, 512, generator=generator), tv.int4)
    on_gpu = on_cpu.to("cuda")
    x = torch.randn(5, 512, generator=generator).half()
    assert_product(quantized_matmul(x.cuda(), on_gpu).cpu(), x, on_cpu)
    assert_product(quantized_matmul(x, on_cpu), x, on_cpu)
    assert on_gpu.host_cache[(8, False)].fixed["packed"].is_cuda
    with pytest.raises(ValueError, match="one device"):
        quantized_matmul(x, on_gpu)


def test_the_launch_of_an_explicit_config_is_not_kept() -> None:
    generator = torch.Generator().manual_seed(48)
    qweight = quantize_weight(torch.randn(16, 64, generator=generator), tv.int2, 64)
    x = torch.randn(4, 64, generator=generator).half()
    config = host.tuning.candidates(4, 16, 64, 2)[1]
    assert_product(quantized_matmul(x, qweight, config=config), x, qweight)
    assert qweight.host_cache == {}
