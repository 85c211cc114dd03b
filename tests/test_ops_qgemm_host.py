"""The eager host path of ``quantized_matmul`` (``tilevm.ops.qgemm.host``): a weight keeps one launch per M
bucket and bias (filed under each M seen too), used again within a bucket and never for another weight, dtype,
device or bucket; after its first call a weight's launch binds X and the output only (no slow path, whatever
the format); the bias is read at every call. Every result is compared with ``x.double() @
qweight.dequantize(torch.float64).T (+ bias)``."""

from __future__ import annotations

import copy
import gc

import pytest
import torch
from test_ops_qgemm import ROUNDOFF

import tilevm as tv
from tilevm.ops import QuantizedLinear, custom_op, quantize_weight, quantized_matmul
from tilevm.ops.custom_op import quantized_matmul_op
from tilevm.ops.qgemm import PrefillConfig, host
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


def slow_calls(monkeypatch) -> list[tuple]:
    """The arguments of every call of the custom op that makes a weight for the call only
    (``custom_op.quantized_matmul_once``: no registered weight found), recorded as the call goes on."""
    calls: list[tuple] = []
    original = custom_op.quantized_matmul_once
    monkeypatch.setattr(
        custom_op, "quantized_matmul_once", lambda *args: calls.append(args) or original(*args)
    )
    return calls


def test_a_weight_keeps_one_launch_per_m_bucket_and_bias() -> None:
    generator = torch.Generator().manual_seed(41)
    qweight = quantize_weight(torch.randn(20, 64, generator=generator), tv.int4, 32)
    bias = torch.randn(20, generator=generator).half()
    kept = {}
    cases = [(1, False), (8, False), (3, True), (17, False), (1, True), (12, False), (3, True)]
    for m, with_bias in cases:
        x = torch.randn(m, 64, generator=generator).half()
        b = bias if with_bias else None
        assert_product(quantized_matmul(x, qweight, b), x, qweight, b)
        key = (m_bucket(m), with_bias)
        kept.setdefault(key, qweight.host_cache[key])
        assert qweight.host_cache[key] is kept[key]  # a bucket's launch is used again
        assert qweight.host_cache[(m, with_bias)] is kept[key]  # under its M's own key too
    buckets = {(8, False), (8, True), (16, False), (32, False)}
    assert set(qweight.host_cache) == buckets | set(cases)
    assert len({id(launch) for launch in qweight.host_cache.values()}) == len(buckets)


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


def test_quantized_linear_and_the_custom_op_use_the_weights_launches(monkeypatch) -> None:
    generator = torch.Generator().manual_seed(46)
    qweight = quantize_weight(torch.randn(8, 64, generator=generator), "mxfp4")
    bias = torch.randn(8, generator=generator).half()
    layer = QuantizedLinear(qweight, bias)
    x = torch.randn(2, 3, 64, generator=generator).half()
    assert_product(layer(x), x, qweight, bias)
    assert layer.qweight is qweight  # the layer's buffers are the weight's tensors: one set of launches
    kept = qweight.host_cache[(8, True)]
    once = slow_calls(monkeypatch)
    assert_product(quantized_matmul_op(x, qweight, bias), x, qweight, bias)
    assert_product(quantized_matmul_op(x[0], qweight), x[0], qweight)
    assert (
        once == []
        and qweight.host_cache[(8, True)] is kept
        and set(qweight.host_cache) == {(8, True), (6, True), (8, False), (3, False)}  # buckets and Ms
    )
    layer.scales = layer.scales.clone()  # a buffer replaced: a new weight, with its own launches
    assert layer.qweight is not qweight and layer.qweight.host_cache == {}
    assert_product(layer(x), x, qweight, bias)


def test_the_custom_op_uses_a_weights_launches_only_for_its_own_tensors(monkeypatch) -> None:
    generator = torch.Generator().manual_seed(49)
    qweight = quantize_weight(torch.randn(24, 64, generator=generator), tv.uint4, 32)
    x = torch.randn(5, 64, generator=generator).half()
    quantized_matmul_op(x, qweight)  # registered, its launch kept
    once = slow_calls(monkeypatch)
    plain = custom_op.format_arguments(qweight)
    tensors = (qweight.packed, qweight.scales, qweight.zeros, qweight.global_scale)

    def op(*arguments: torch.Tensor | None, bias: torch.Tensor | None = None) -> torch.Tensor:
        return custom_op.OP(x, *arguments, bias, *plain)

    assert_product(op(*tensors), x, qweight)
    assert once == []
    # equal tensors, not the same objects: another weight (made for the call, checked, its launch not kept)
    for changed in range(3):
        other = [tensor.clone() if index == changed else tensor for index, tensor in enumerate(tensors)]
        other[1] = other[1] * 2 if changed == 1 else other[1]  # other scales: another product
        twin = type(qweight)(qweight.format, qweight.shape, *other, compute_dtype=torch.float16)
        assert_product(op(*other), x, twin)
        assert len(once) == changed + 1
    # a weight sharing the packed codes but with its own scales: each weight's tensors give its own product
    halved = type(qweight)(
        qweight.format, qweight.shape, qweight.packed, qweight.scales / 2, qweight.zeros, None, torch.float16
    )
    for weight in (halved, qweight, halved):
        assert_product(quantized_matmul_op(x, weight), x, weight)
    assert set(qweight.host_cache) == set(halved.host_cache) == {(8, False), (5, False)}  # bucket and M
    # another format named for the same tensors is not this weight: the op checks it, and refuses it
    with pytest.raises(ValueError, match="zero points"):
        custom_op.OP(x, *tensors, None, "int4", *plain[1:])
    # a bfloat16 x is not this weight's either: refused as for any weight, never launched with its launches
    with pytest.raises(ValueError, match="scales"):
        custom_op.OP(x.bfloat16(), *tensors, None, *plain)


def test_a_registered_weight_goes_with_its_owner() -> None:
    generator = torch.Generator().manual_seed(50)
    qweight = quantize_weight(torch.randn(16, 32, generator=generator), tv.int2, 32)
    plain = custom_op.register(qweight)
    tensors = (qweight.packed, qweight.scales, qweight.zeros, qweight.global_scale)
    assert custom_op.registered(*tensors, plain, torch.float16) is qweight
    assert custom_op.registered(*tensors, plain, torch.bfloat16) is None
    key = id(qweight.packed)
    del qweight
    gc.collect()
    assert key not in custom_op._WEIGHTS


def test_a_moved_layer_registers_the_weight_over_its_new_buffers(monkeypatch) -> None:
    generator = torch.Generator().manual_seed(51)
    layer = QuantizedLinear(quantize_weight(torch.randn(16, 64, generator=generator), tv.int3, 64))
    first = layer.qweight
    layer._apply(torch.clone)  # what .to(device) does: new tensors
    assert layer.qweight is not first and layer.qweight.packed is layer.packed
    once = slow_calls(monkeypatch)
    x = torch.randn(3, 64, generator=generator).half()
    tensors = (layer.packed, layer.scales, layer.zeros, layer.global_scale, None)
    assert_product(custom_op.OP(x, *tensors, *custom_op.format_arguments(first)), x, first)
    assert once == []


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


@pytest.mark.parametrize("copied", [False, True])
def test_a_compiled_layers_op_launches_through_the_layers_weight(monkeypatch, copied) -> None:
    generator = torch.Generator().manual_seed(52)
    layer = QuantizedLinear(quantize_weight(torch.randn(24, 64, generator=generator), tv.int4, 32))
    if copied:  # copy.deepcopy, as unpickling: the copy's weight is registered too
        layer = copy.deepcopy(layer)
        assert layer.qweight.packed is layer.packed
    once = slow_calls(monkeypatch)
    torch._dynamo.reset()
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    for m in (3, 5):
        x = torch.randn(m, 64, generator=generator).half()
        assert_product(compiled(x), x, layer.qweight)
    assert once == [] and set(layer.qweight.host_cache) == {(8, False), (3, False), (5, False)}  # bucket, Ms


def test_any_leading_shape_and_layout_of_x_gives_the_product_in_that_shape() -> None:
    generator = torch.Generator().manual_seed(53)
    qweight = quantize_weight(torch.randn(20, 64, generator=generator), tv.int5, 32)
    bias = torch.randn(20, generator=generator).half()
    wide = torch.randn(3, 64, 2, generator=generator).half()
    for x in (
        torch.randn(64, generator=generator).half(),  # one row, no leading dimension
        torch.randn(2, 1, 3, 64, generator=generator).half(),
        wide[..., 1],  # not contiguous: read as a contiguous copy
        wide[1:, :, 0],
    ):
        for b in (None, bias):
            expected_shape = (*x.shape[:-1], 20)
            out = quantized_matmul(x, qweight, b)
            assert out.shape == expected_shape
            assert_product(out.reshape(-1, 20), x.reshape(-1, 64), qweight, b)
    for empty in (torch.empty(0, 64).half(), torch.empty(2, 0, 64).half()):
        assert quantized_matmul(empty, qweight).shape == (*empty.shape[:-1], 20)


@pytest.mark.gpu
def test_a_layer_moved_to_the_gpu_launches_its_compiled_op_through_its_weight(monkeypatch) -> None:
    generator = torch.Generator().manual_seed(54)
    layer = QuantizedLinear(quantize_weight(torch.randn(256, 512, generator=generator), tv.int4))
    layer = layer.cuda()
    assert layer.qweight.packed is layer.packed and layer.packed.is_cuda
    once = slow_calls(monkeypatch)
    torch._dynamo.reset()
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    for m in (1, 5):
        x = torch.randn(m, 512, generator=generator).half().cuda()
        assert_product(compiled(x), x, layer.qweight)
    assert once == [] and layer.qweight.host_cache[(8, False)].fixed["packed"].is_cuda


def test_a_split_k_launch_binds_each_streams_buffers_once_per_m(monkeypatch) -> None:
    """On a GPU a split-K launch binds its stream's buffers (``split_buffers``) in a kernel kept per M and
    pair of buffers; here the buffers of two stand-in streams, kept between launches as on a GPU (the
    kernel leaves the counters at zero), and grown when a larger M needs more."""
    generator = torch.Generator().manual_seed(55)
    qweight = quantize_weight(torch.randn(36, 256, generator=generator), tv.int4, 32)
    bias = torch.randn(36, generator=generator).half()
    stream, buffers = [0], {}

    def split_buffers(device, partials, tiles):
        workspace, counters = buffers.get(stream[0], (torch.empty(0), torch.empty(0)))
        if workspace.numel() < partials or counters.numel() < tiles:
            workspace, counters = torch.empty(partials), torch.zeros(tiles, dtype=torch.int32)
            buffers[stream[0]] = (workspace, counters)
        return workspace, counters

    monkeypatch.setattr(host, "split_buffers", split_buffers)
    monkeypatch.setattr(host, "STREAM_BUFFER_DEVICES", ("cuda", "cpu"))  # as on a GPU
    decode = next(c for c in host.tuning.candidates(4, 36, 256, 4, 32) if c.split_k == 2)
    staged = PrefillConfig(4, 1, 1, 1, chunks=1, steps=2, stages=3, split_k=2)
    for config in (decode, staged):
        buffers.clear()
        launch = host.QGemmLaunch.of(qweight, True, config, persistent=True)
        kept = {}
        for on, m in [(0, 3), (0, 3), (0, 2), (1, 3), (0, 3), (0, 9), (0, 3)]:
            stream[0] = on
            x = torch.randn(m, 256, generator=generator).half()
            assert_product(launch.launch(x, bias, None), x, qweight, bias)
            key = (m, id(buffers[on][1]))
            kept.setdefault(key, launch._split_bound[key][2])
            assert launch._split_bound[key][2] is kept[key]  # kept for its M and buffers, used again
            assert not buffers[on][1].any()  # the counters left at zero for the next launch
        # stream 0's buffers grew for 9 rows: 3 rows on them is another kernel
        assert len(kept) == 5 and len(launch._split_bound) == 5
