"""The custom op ``tilevm::quantized_matmul``: torch.library.opcheck on CPU, torch.compile of a model of
QuantizedLinear layers with fullgraph=True (no graph break), and CUDA graph capture and replay on the GPU.
Results are compared with a float64 product with the dequantized weight (tolerance as in test_ops_linear)."""

import pytest
import torch
from torch import nn

import tilevm as tv
from tilevm.ops import QuantizedLinear, quantize_weight
from tilevm.ops.custom_op import format_arguments, quantized_matmul_op


def float64_product(x, qweight, bias=None):
    weight = qweight.dequantize(torch.float64)
    product = x.double() @ weight.T + (0 if bias is None else bias.double())
    return product, 2**-7 * (x.double().abs() @ weight.abs().T) + 1e-6


def assert_close(y, x, qweight, bias=None):
    expected, bound = float64_product(x, qweight, bias)
    assert y.shape == expected.shape and y.dtype == x.dtype
    assert ((y.double() - expected).abs() <= bound).all()


def test_opcheck_passes_on_cpu():
    generator = torch.Generator().manual_seed(21)
    qweight = quantize_weight(torch.randn(10, 64, generator=generator).half(), tv.int4, group_size=32)
    x = torch.randn(3, 64, generator=generator).half()
    bias = torch.randn(10, generator=generator).half()
    arguments = (x, qweight.packed, qweight.scales, qweight.zeros, qweight.global_scale, bias)
    torch.library.opcheck(torch.ops.tilevm.quantized_matmul.default, (*arguments, *format_arguments(qweight)))
    assert_close(quantized_matmul_op(x, qweight, bias), x, qweight, bias)


def test_the_fake_implementation_gives_shape_and_dtype_without_running():
    qweight = quantize_weight(torch.randn(24, 64).to(torch.bfloat16), tv.uint4, group_size=64)
    with torch._subclasses.FakeTensorMode() as mode:
        x = mode.from_tensor(torch.empty(2, 5, 64, dtype=torch.bfloat16))
        tensors = (qweight.packed, qweight.scales, qweight.zeros, qweight.global_scale)
        fake = [None if tensor is None else mode.from_tensor(tensor) for tensor in tensors]
        y = torch.ops.tilevm.quantized_matmul(x, *fake, None, *format_arguments(qweight))
    assert (tuple(y.shape), y.dtype) == ((2, 5, 24), torch.bfloat16)


class Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Linear(64, 40, dtype=torch.float16)
        self.down = nn.Linear(40, 64, bias=False, dtype=torch.float16)

    def forward(self, x):
        return x + self.down(torch.relu(self.up(x)))


def test_torch_compile_traces_quantized_linear_without_graph_breaks():
    torch.manual_seed(22)
    model = Mlp()
    model.up = QuantizedLinear.from_linear(model.up, tv.int4, group_size=32)
    model.down = QuantizedLinear.from_linear(model.down, tv.float4_e2m1, group_size=None)
    x = torch.randn(2, 3, 64, generator=torch.Generator().manual_seed(23)).half()
    eager = model(x)
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="eager", fullgraph=True)  # a graph break would raise
    assert torch.equal(compiled(x), eager)
    explanation = torch._dynamo.explain(model)(x)
    assert (explanation.graph_count, explanation.graph_break_count) == (1, 0)
    hidden = torch.relu(x.double() @ model.up.qweight.dequantize(torch.float64).T + model.up.bias.double())
    expected = x.double() + hidden @ model.down.qweight.dequantize(torch.float64).T
    assert ((eager.double() - expected).abs().max() / expected.abs().max()).item() < 1e-2


@pytest.mark.gpu
def test_cuda_graph_capture_and_replay():
    torch.manual_seed(24)
    layer = QuantizedLinear.from_linear(nn.Linear(4096, 1000, dtype=torch.float16), tv.int3, group_size=128)
    layer = layer.cuda()
    static_x = torch.randn(4, 4096, device="cuda", dtype=torch.float16)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):  # warm up outside the capture: compile, load, autotune
            layer(static_x)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_y = layer(static_x)
    for seed in (25, 26):
        static_x.copy_(torch.randn(4, 4096, generator=torch.Generator().manual_seed(seed)).half())
        static_y.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        assert_close(static_y, static_x, layer.qweight, layer.bias)


@pytest.mark.gpu
def test_the_custom_op_of_a_registered_weight_is_captured_and_replayed():
    generator = torch.Generator().manual_seed(27)
    qweight = quantize_weight(torch.randn(1000, 4096, generator=generator).half(), tv.uint4, 64).to("cuda")
    bias = torch.randn(1000, generator=generator).half().cuda()
    static_x = torch.randn(3, 4096, generator=generator).half().cuda()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):  # warm up outside the capture: compile, load, autotune
            quantized_matmul_op(static_x, qweight, bias)
    torch.cuda.current_stream().wait_stream(stream)
    # the op launched through the weight's kept launch, filed under its M bucket and under M itself
    assert set(qweight.host_cache) == {(8, True), (3, True)}
    assert qweight.host_cache[(3, True)] is qweight.host_cache[(8, True)]
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_y = quantized_matmul_op(static_x, qweight, bias)
    for seed in (28, 29):
        static_x.copy_(torch.randn(3, 4096, generator=torch.Generator().manual_seed(seed)).half())
        static_y.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        assert_close(static_y, static_x, qweight, bias)
