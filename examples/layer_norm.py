"""Layer norm over ragged rows: one block per row, BLOCK >= the row length; float16 in and out, the mean and
variance in float32. Columns past the end of a row read 0 and are masked out of the variance by `tv.arange`.
"""

import torch

import tilevm as tv

# on a CUDA GPU when there is one, else on the CPU through the SIMT interpreter (the same lowered program)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@tv.kernel(num_warps=4)
def layer_norm(
    x: tv.Tensor, weight: tv.Tensor, bias: tv.Tensor, out: tv.Tensor, n: int, eps: float, BLOCK: tv.constexpr
):
    row = tv.block_idx()
    inside = tv.arange(BLOCK) < n  # [BLOCK] bool: the columns of the row
    count = tv.cast(n, tv.float32)
    values = tv.cast(tv.load_global(x, offsets=[row, 0], shape=[BLOCK]), tv.float32)  # past the end: 0
    mean = tv.sum(values, dim=0) / count  # [1]: a rank-1 reduction keeps its dim
    centered = tv.where(inside, values - mean, 0.0)
    variance = tv.sum(centered * centered, dim=0) / count
    normalized = centered * tv.rsqrt(variance + eps)
    gamma = tv.cast(tv.load_global(weight, offsets=[0], shape=[BLOCK]), tv.float32)
    beta = tv.cast(tv.load_global(bias, offsets=[0], shape=[BLOCK]), tv.float32)
    result = tv.view(tv.cast(normalized * gamma + beta, tv.float16), tv.float16, [1, BLOCK])
    tv.store_global(out, result, offsets=[row, 0])  # past the end: skipped


def main() -> None:
    generator = torch.Generator().manual_seed(1)
    rows, columns = 37, 300
    x = (torch.randn(rows, columns, generator=generator) * 3 + 1).half().to(DEVICE)
    weight = torch.randn(columns, generator=generator).half().to(DEVICE)
    bias = torch.randn(columns, generator=generator).half().to(DEVICE)
    out = torch.full_like(x, float("nan"))
    block = 1 << (columns - 1).bit_length()  # the next power of two holding a row
    layer_norm[(rows,)](x, weight, bias, out, columns, 1e-5, BLOCK=block)
    expected = torch.nn.functional.layer_norm(x.double(), [columns], weight.double(), bias.double(), eps=1e-5)
    # float32 statistics are ~1e-7 relative; the float16 output rounds once (half an ulp, 2**-11 relative),
    # so the gap to the float64 reference is at most about one float16 ulp
    torch.testing.assert_close(out, expected.half(), rtol=2**-10, atol=2**-14)
    print(f"layer_norm: {rows}x{columns} float16 matches torch (on {where()})")


def where() -> str:
    return torch.cuda.get_device_name() if DEVICE == "cuda" else "the CPU"


if __name__ == "__main__":
    main()
