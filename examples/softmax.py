"""Row softmax: one block per row; columns past the end read -inf, so they add nothing to the sum."""

import torch

import tilevm as tv

# on a CUDA GPU when there is one, else on the CPU through the SIMT interpreter (the same lowered program)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@tv.kernel(num_warps=4)
def softmax(x: tv.Tensor, out: tv.Tensor, BLOCK: tv.constexpr):
    row = tv.block_idx()
    values = tv.load_global(x, offsets=[row, 0], shape=[1, BLOCK], other=float("-inf"))
    shifted = values - tv.max(values, dim=1, keepdim=True)
    numerator = tv.exp(shifted)
    tv.store_global(out, numerator / tv.sum(numerator, dim=1, keepdim=True), offsets=[row, 0])


def main() -> None:
    generator = torch.Generator().manual_seed(1)
    rows, columns = 37, 300
    x = (torch.randn(rows, columns, generator=generator) * 4).to(DEVICE)
    out = torch.full_like(x, float("nan"))
    block = 1 << (columns - 1).bit_length()  # the next power of two holding a row
    softmax[(rows,)](x, out, BLOCK=block)
    expected = torch.softmax(x.double(), dim=1).float()
    # float32 arithmetic over a few hundred terms: a few ulps of error
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-7)
    print(f"softmax: {rows}x{columns} matches torch (on {where()})")


def where() -> str:
    return torch.cuda.get_device_name() if DEVICE == "cuda" else "the CPU"


if __name__ == "__main__":
    main()
