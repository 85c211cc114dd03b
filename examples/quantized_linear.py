"""A small transformers-style decoder block (attention projections and a gated MLP, all ``nn.Linear``)
quantized layer by layer with ``tilevm.ops.QuantizedLinear.from_linear``, its output compared with the float
model's after each replacement.

Each quantized layer is also checked against a float64 product with its dequantized weight, which it must
match to float16 rounding: the difference from the float model is the quantization's, not the kernel's.
"""

import torch
from torch import nn

import tilevm as tv
from tilevm.ops import QuantizedLinear

# on a CUDA GPU when there is one, else on the CPU through the SIMT interpreter (the same lowered program)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
HIDDEN, HEADS, INTERMEDIATE = 128, 4, 256


class DecoderBlock(nn.Module):
    """Pre-norm attention (q, k, v, o projections, causal) and a SwiGLU MLP (gate, up, down)."""

    def __init__(self) -> None:
        super().__init__()
        self.input_norm = nn.RMSNorm(HIDDEN)
        self.q_proj = nn.Linear(HIDDEN, HIDDEN, bias=True)
        self.k_proj = nn.Linear(HIDDEN, HIDDEN, bias=True)
        self.v_proj = nn.Linear(HIDDEN, HIDDEN, bias=True)
        self.o_proj = nn.Linear(HIDDEN, HIDDEN, bias=False)
        self.post_norm = nn.RMSNorm(HIDDEN)
        self.gate_proj = nn.Linear(HIDDEN, INTERMEDIATE, bias=False)
        self.up_proj = nn.Linear(HIDDEN, INTERMEDIATE, bias=False)
        self.down_proj = nn.Linear(INTERMEDIATE, HIDDEN, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        h = self.input_norm(x)
        q, k, v = (
            proj(h).view(batch, tokens, HEADS, -1).transpose(1, 2)
            for proj in (self.q_proj, self.k_proj, self.v_proj)
        )
        attention = nn.functional.scaled_dot_product_attention(
            q.float(), k.float(), v.float(), is_causal=True
        )
        x = x + self.o_proj(attention.to(x.dtype).transpose(1, 2).reshape(batch, tokens, HIDDEN))
        h = self.post_norm(x)
        return x + self.down_proj(nn.functional.silu(self.gate_proj(h)) * self.up_proj(h))


def check_layer(layer: QuantizedLinear, x: torch.Tensor) -> None:
    """The layer's output against the float64 product with its dequantized weight (float16 rounding of the
    weights and of the output: within 2**-9 of the sum of |x| * |w|)."""
    weight = layer.qweight.dequantize(torch.float64)
    expected = x.double() @ weight.T + (0 if layer.bias is None else layer.bias.double())
    bound = 2**-9 * (x.double().abs() @ weight.abs().T) + 1e-6
    assert ((layer(x).double() - expected).abs() <= bound).all()


def main() -> None:
    torch.manual_seed(0)
    model = DecoderBlock().to(DEVICE, torch.float16)
    x = torch.randn(2, 8, HIDDEN, device=DEVICE, dtype=torch.float16)
    with torch.no_grad():
        reference = model(x).double()
        for name in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"):
            layer = QuantizedLinear.from_linear(getattr(model, name), tv.int4, group_size=64)
            check_layer(layer, torch.randn(3, layer.in_features, device=DEVICE, dtype=torch.float16))
            setattr(model, name, layer)
            error = ((model(x).double() - reference).norm() / reference.norm()).item()
            print(f"{name:>9} -> {layer.format.dtype}: relative difference from the float model {error:.4f}")
        assert error < 0.05, error  # int4 in groups of 64: a few percent
    print(model)
    where = torch.cuda.get_device_name() if DEVICE == "cuda" else "the CPU"
    print(f"quantized block and float block match (int4, group 64, on {where})")


if __name__ == "__main__":
    main()
