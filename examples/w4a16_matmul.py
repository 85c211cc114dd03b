"""W4A16 matmul: int4 weights with one float16 scale per group of K rows, float16 activations.

The weights arrive as bytes (two int4 values per uint8, the even element in the low nibble). The kernel
loads them as uint8, views them as int4 without moving data, casts to float16 and scales them, then
multiplies. This is the decode-time GEMM of quantized language models.
"""

import torch

import tilevm as tv

# on a CUDA GPU when there is one, else on the CPU through the SIMT interpreter (the same lowered program)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@tv.kernel(num_warps=4)
def w4a16_matmul(
    x: tv.Tensor[tv.float16, 2],
    packed_weights: tv.Tensor[tv.uint8, 2],
    scales: tv.Tensor[tv.float16, 2],
    out: tv.Tensor[tv.float16, 2],
    BM: tv.constexpr,
    BN: tv.constexpr,
    GROUP: tv.constexpr,
):
    m0 = tv.block_idx(0) * BM
    n0 = tv.block_idx(1) * BN
    accumulator = tv.register_tensor(tv.float32, [BM, BN], init=0.0)
    for group in range(tv.cdiv(x.shape[1], GROUP)):
        k0 = group * GROUP
        activations = tv.load_global(x, offsets=[m0, k0], shape=[BM, GROUP])
        weight_bytes = tv.load_global(packed_weights, offsets=[k0, n0 // 2], shape=[GROUP, BN // 2])
        weights = tv.cast(tv.view(weight_bytes, tv.int4), tv.float16)
        scale = tv.load_global(scales, offsets=[group, n0], shape=[1, BN])
        accumulator = tv.dot(activations, weights * scale, accumulator)
    tv.store_global(out, tv.cast(accumulator, tv.float16), offsets=[m0, n0])


def quantize(weights: torch.Tensor, group: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int4 quantization of a [K, N] weight, one scale per group of rows; returns bytes, scales."""
    k, n = weights.shape
    grouped = weights.reshape(k // group, group, n)
    scales = (grouped.abs().amax(dim=1) / 7).clamp(min=1e-6).half()
    codes = torch.clamp(torch.round(grouped / scales[:, None, :].float()), -8, 7).to(torch.int8).reshape(k, n)
    nibbles = (codes & 0xF).to(torch.uint8)
    return nibbles[:, 0::2] | (nibbles[:, 1::2] << 4), scales


def dequantize(packed: torch.Tensor, scales: torch.Tensor, group: int) -> torch.Tensor:
    """The reference: unpack the nibbles (two's complement) and scale them, in float64."""
    low, high = (packed & 0xF).to(torch.int16), (packed >> 4).to(torch.int16)
    codes = torch.stack([low, high], dim=-1).reshape(packed.shape[0], -1)
    codes = torch.where(codes >= 8, codes - 16, codes)
    return codes.double() * scales.double().repeat_interleave(group, dim=0)


def main() -> None:
    generator = torch.Generator().manual_seed(3)
    m, n, k, group = 5, 96, 256, 64  # m=5: a decode-sized batch, ragged in its tile of 16
    block_m, block_n = 16, 32
    x = torch.randn(m, k, generator=generator).half().to(DEVICE)
    packed, scales = quantize(torch.randn(k, n, generator=generator), group)
    packed, scales = packed.to(DEVICE), scales.to(DEVICE)
    out = torch.full((m, n), float("nan"), dtype=torch.float16).to(DEVICE)
    grid = (tv.cdiv(m, block_m), tv.cdiv(n, block_n))
    w4a16_matmul[grid](x, packed, scales, out, BM=block_m, BN=block_n, GROUP=group)
    # the kernel scales in float16, so the reference rounds the dequantized weights to float16 too; what is
    # left is float32 accumulation over k=256 and one final rounding to float16
    expected = (x.double() @ dequantize(packed, scales, group).half().double()).half()
    torch.testing.assert_close(out, expected, rtol=2e-3, atol=2e-3)
    print(f"w4a16_matmul: {m}x{n}x{k}, group {group}, matches torch (on {where()})")


def where() -> str:
    return torch.cuda.get_device_name() if DEVICE == "cuda" else "the CPU"


if __name__ == "__main__":
    main()
