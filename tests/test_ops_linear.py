"""QuantizedLinear and quantize_model on CPU (the SIMT interpreter) at tiny ragged sizes, against a float64
product with the weight that ``QuantizedWeight.dequantize(torch.float64)`` gives back; the layer's state
through state_dict, torch.save and safetensors; device moves and dtype conversions.

Tolerance: the kernel rounds each dequantized weight to the compute dtype (relative 2**-8 for bfloat16,
2**-11 for float16) before multiplying exactly and accumulating in float32, and rounds the output once: the
error is bounded by 2**-7 * (|x| @ |W|.T) for both dtypes, with room to spare."""

import io

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import tilevm as tv
from tilevm.ops import QuantizedLinear, quantize_model


def reference(x: torch.Tensor, layer: QuantizedLinear) -> tuple[torch.Tensor, torch.Tensor]:
    """The float64 product with the dequantized weight, and the error bound around it."""
    weight = layer.qweight.dequantize(torch.float64)
    product = x.double() @ weight.T
    if layer.bias is not None:
        product += layer.bias.double()
    return product, 2**-7 * (x.double().abs() @ weight.abs().T) + 1e-6


def assert_close_to_reference(y: torch.Tensor, x: torch.Tensor, layer: QuantizedLinear) -> None:
    expected, bound = reference(x, layer)
    assert y.shape == expected.shape and y.dtype == x.dtype
    assert torch.isfinite(y).all()
    error = (y.double() - expected).abs()
    assert (error <= bound).all(), f"max error {error.max().item()} (bound {bound.min().item()} at least)"


def linear(in_features, out_features, dtype, seed, bias=True) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(in_features, out_features, bias=bias, dtype=dtype)


# (code dtype, group size, compute dtype, bias, extra quantize_weight arguments), ragged N and leading dims
CASES = [
    (tv.int4, 32, torch.float16, True, {}),
    (tv.uint3, 64, torch.bfloat16, False, {}),
    (tv.float6_e3m2, 32, torch.float16, True, {}),
    (tv.int8, 64, torch.bfloat16, True, {}),
    ("nvfp4", 128, torch.bfloat16, False, {}),  # a preset: ue4m3 scales per 16 values, a global scale
    (tv.uint5, None, torch.float16, True, {"method": "mse"}),  # one group per output channel
]


@pytest.mark.parametrize(("dtype", "group_size", "compute_dtype", "bias", "kwargs"), CASES, ids=str)
def test_from_linear_matches_the_dequantized_weight(dtype, group_size, compute_dtype, bias, kwargs):
    seed = CASES.index((dtype, group_size, compute_dtype, bias, kwargs))
    layer = QuantizedLinear.from_linear(
        linear(64, 13, compute_dtype, seed, bias), dtype, group_size, **kwargs
    )
    assert (layer.in_features, layer.out_features) == (64, 13)
    assert layer.format.dtype == (tv.float4_e2m1 if dtype == "nvfp4" else dtype)
    x = torch.randn(2, 3, 64, generator=torch.Generator().manual_seed(100 + seed)).to(compute_dtype)
    assert_close_to_reference(layer(x), x, layer)


def test_the_quantized_weight_is_close_to_the_float_one():
    float_layer = linear(128, 16, torch.float16, 7)
    layer = QuantizedLinear.from_linear(float_layer, tv.int8, group_size=32)
    weight = float_layer.weight.double()
    error = (layer.qweight.dequantize(torch.float64) - weight).abs()
    # absmax per group of 32: the step is max|w| / 127, the rounding error half of it, plus the scale's f16
    step = weight.abs().reshape(16, 4, 32).amax(-1, keepdim=True) / 127
    assert (error.reshape(16, 4, 32) <= step * (0.5 + 2**-9) + 1e-4).all()
    assert torch.equal(layer.bias, float_layer.bias)


class DecoderBlock(nn.Module):
    """Attention projections and a gated MLP, as in a transformers decoder layer (no attention softmax: the
    linear layers are what is under test)."""

    def __init__(self, hidden: int, intermediate: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.q_proj = nn.Linear(hidden, hidden, bias=True, dtype=dtype)
        self.k_proj = nn.Linear(hidden, hidden, bias=True, dtype=dtype)
        self.o_proj = nn.Linear(hidden, hidden, bias=False, dtype=dtype)
        self.mlp = nn.ModuleDict(
            {
                "gate_proj": nn.Linear(hidden, intermediate, bias=False, dtype=dtype),
                "up_proj": nn.Linear(hidden, intermediate, bias=False, dtype=dtype),
                "down_proj": nn.Linear(intermediate, hidden, bias=False, dtype=dtype),
            }
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x + self.o_proj(self.q_proj(x) * self.k_proj(x))
        mlp = self.mlp
        return h + mlp["down_proj"](torch.relu(mlp["gate_proj"](h)) * mlp["up_proj"](h))


def float64_forward(block: DecoderBlock, x: torch.Tensor) -> torch.Tensor:
    """The block in float64, each quantized layer with its dequantized weight, the others as they are."""

    def apply(layer, value):
        if isinstance(layer, QuantizedLinear):
            out = value @ layer.qweight.dequantize(torch.float64).T
            return out if layer.bias is None else out + layer.bias.double()
        return nn.functional.linear(
            value, layer.weight.double(), None if layer.bias is None else layer.bias.double()
        )

    x = x.double()
    h = x + apply(block.o_proj, apply(block.q_proj, x) * apply(block.k_proj, x))
    mlp = block.mlp
    return h + apply(mlp["down_proj"], torch.relu(apply(mlp["gate_proj"], h)) * apply(mlp["up_proj"], h))


def test_quantize_model_replaces_the_chosen_linear_layers_in_place():
    torch.manual_seed(11)
    block = DecoderBlock(64, 96, torch.float16)
    kept = block.k_proj
    names = quantize_model(block, tv.int4, group_size=32, filter=lambda name, layer: name != "k_proj")
    assert names == ["q_proj", "o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
    assert block.k_proj is kept
    assert all(isinstance(block.get_submodule(name), QuantizedLinear) for name in names)
    x = torch.randn(1, 5, 64, generator=torch.Generator().manual_seed(12)).half() * 0.5
    y = block(x)
    expected = float64_forward(block, x)
    assert y.shape == (1, 5, 64) and torch.isfinite(y).all()
    # a chain of five layers in float16: relative to the output's scale
    assert ((y.double() - expected).abs().max() / expected.abs().max()).item() < 2e-2


def test_quantize_model_names_the_layer_that_cannot_be_quantized():
    block = DecoderBlock(64, 96, torch.float16)
    with pytest.raises(ValueError, match=r"layer 'mlp.down_proj'.*group"):
        quantize_model(block, tv.int4, group_size=64)


def test_state_dict_torch_save_and_safetensors_round_trip(tmp_path):
    layer = QuantizedLinear.from_linear(linear(64, 24, torch.float16, 3), tv.int5, group_size=32)
    x = torch.randn(4, 64, generator=torch.Generator().manual_seed(4)).half()
    y = layer(x)
    assert_close_to_reference(y, x, layer)
    state = layer.state_dict()
    # a signed integer format: no zeros, no global scale; the header holds the format
    assert set(state) == {"packed", "scales", "header", "bias"}
    path = tmp_path / "layer.safetensors"
    save_file(state, path)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    for loaded_state in (load_file(path), torch.load(buffer)):
        other = QuantizedLinear.from_linear(linear(64, 24, torch.float16, 99), tv.int5, group_size=32)
        other.load_state_dict(loaded_state)
        for name, tensor in state.items():
            assert torch.equal(getattr(other, name), tensor), name
        assert torch.equal(other(x), y)
    assigned = QuantizedLinear.from_linear(linear(64, 24, torch.float16, 98), tv.int5, group_size=32)
    assigned.load_state_dict(load_file(path), assign=True)  # replaces the buffers: the weight follows
    assert assigned.qweight.packed is assigned.packed and torch.equal(assigned(x), y)
    rebuilt = QuantizedLinear.from_state_dict(load_file(path))
    assert repr(rebuilt) == repr(layer)
    assert torch.equal(rebuilt(x), y)
    whole = io.BytesIO()
    torch.save(layer, whole)
    whole.seek(0)
    assert torch.equal(torch.load(whole, weights_only=False)(x), y)


def test_a_checkpoint_of_another_format_is_refused():
    int4 = QuantizedLinear.from_linear(linear(64, 16, torch.float16, 8), tv.int4, group_size=64)
    float4 = QuantizedLinear.from_linear(linear(64, 16, torch.float16, 8), tv.float4_e2m1, group_size=64)
    assert float4.packed.shape == int4.packed.shape  # the same buffers' shapes: only the header tells
    packed = int4.packed.clone()
    with pytest.raises(RuntimeError, match=r"header: the checkpoint's weight is dtype=float4_e2m1.*int4"):
        int4.load_state_dict(float4.state_dict())
    assert torch.equal(int4.packed, packed)


def test_extra_repr_and_device_moves_keep_the_format():
    layer = QuantizedLinear.from_linear(linear(64, 8, torch.bfloat16, 5, bias=False), "nvfp4")
    assert repr(layer) == (
        "QuantizedLinear(in_features=64, out_features=8, dtype=float4_e2m1, group_size=16, "
        "scale_dtype=ue4m3, global_scale, bias=False, compute_dtype=bfloat16)"
    )
    assert repr(QuantizedLinear.from_linear(linear(64, 8, torch.float16, 5), tv.uint2, group_size=None)) == (
        "QuantizedLinear(in_features=64, out_features=8, dtype=uint2, group_size=64, scale_dtype=float16, "
        "zeros, bias=True, compute_dtype=float16)"
    )
    dtypes = {name: buffer.dtype for name, buffer in layer.named_buffers()}
    assert dtypes["global_scale"] == torch.float32
    layer.half()  # a model-wide dtype conversion leaves the format's dtypes alone
    assert {name: buffer.dtype for name, buffer in layer.named_buffers()} == dtypes
    moved = layer.to("meta")
    assert moved is layer
    assert {name: (buffer.dtype, buffer.device.type) for name, buffer in layer.named_buffers()} == {
        name: (dtype, "meta") for name, dtype in dtypes.items()
    }
    assert layer.qweight.device.type == "meta" and layer.qweight.global_scale is layer.global_scale


def test_clear_errors():
    with pytest.raises(TypeError, match=r"linear must be an nn\.Linear, not Conv1d"):
        QuantizedLinear.from_linear(nn.Conv1d(4, 4, 1), tv.int4)
    layer = QuantizedLinear.from_linear(linear(64, 8, torch.float16, 6), tv.int4, group_size=32)
    with pytest.raises(ValueError, match=r"bias has shape \(9,\), expected \(8,\)"):
        QuantizedLinear(layer.qweight, torch.zeros(9))
