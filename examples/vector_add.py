"""Vector add: each block adds one tile of BLOCK elements; the last tile runs past the end and is masked."""

import torch

import tilevm as tv

# on a CUDA GPU when there is one, else on the CPU through the SIMT interpreter (the same lowered program)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@tv.kernel(num_warps=4)
def vector_add(a: tv.Tensor, b: tv.Tensor, out: tv.Tensor, BLOCK: tv.constexpr):
    start = tv.block_idx() * BLOCK
    x = tv.load_global(a, offsets=[start], shape=[BLOCK])
    y = tv.load_global(b, offsets=[start], shape=[BLOCK])
    tv.store_global(out, x + y, offsets=[start])


def main() -> None:
    generator = torch.Generator().manual_seed(0)
    n, block = 1000, 256
    a = torch.randn(n, generator=generator).to(DEVICE)
    b = torch.randn(n, generator=generator).to(DEVICE)
    out = torch.full((n,), float("nan")).to(DEVICE)
    vector_add[(tv.cdiv(n, block),)](a, b, out, BLOCK=block)
    torch.testing.assert_close(out, a + b, rtol=0, atol=0)
    print(f"vector_add: {n} elements match torch (on {where()})")


def where() -> str:
    return torch.cuda.get_device_name() if DEVICE == "cuda" else "the CPU"


if __name__ == "__main__":
    main()
