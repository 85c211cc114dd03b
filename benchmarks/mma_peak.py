"""The rate of ``tv.dot`` on register tiles alone (``mma.sync`` with no memory traffic in the loop), in
TFLOP/s beside torch float16 ``matmul`` (cuBLAS) at 8192^3: the ceiling of any kernel the DSL builds on
``mma.sync``, such as the quantized GEMM's prefill kernel.

    PYTHONPATH=. python benchmarks/mma_peak.py

Each block loads one ``[BM, 16]`` tile of A and one ``[16, BN]`` tile of B, adds their product into a float32
accumulator ``ITERATIONS`` times, and stores it; the result is checked against torch (``ITERATIONS`` times
the product) before the kernel is timed.
"""

from __future__ import annotations

import torch

import tilevm as tv
from benchmarks.gpu_timing import gpu_time_us

ITERATIONS = 4096
#: (num_warps, BM, BN): the tile a block accumulates (float32: BM * BN / (32 * num_warps) registers a thread)
SHAPES = ((4, 64, 64), (4, 128, 64), (8, 128, 128), (8, 256, 64))


def _body(
    a: tv.Tensor[tv.float16, 2],
    b: tv.Tensor[tv.float16, 2],
    out: tv.Tensor[tv.float32, 2],
    BM: tv.constexpr,
    BN: tv.constexpr,
    ITERATIONS: tv.constexpr,
):
    a_tile = tv.load_global(a, offsets=[0, 0], shape=[BM, 16])
    b_tile = tv.load_global(b, offsets=[0, 0], shape=[16, BN])
    accumulator = tv.register_tensor(tv.float32, [BM, BN], init=0.0)
    for _ in range(ITERATIONS):
        accumulator = tv.dot(a_tile, b_tile, accumulator)
    tv.store_global(out, accumulator, offsets=[tv.block_idx(0) * BM, 0])


def main() -> None:
    generator = torch.Generator(device="cuda").manual_seed(0)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    size = 8192
    x = torch.randn(size, size, device="cuda", generator=generator).half()
    y = torch.randn(size, size, device="cuda", generator=generator).half()
    torch_us = gpu_time_us(lambda: torch.matmul(x, y))
    print(f"torch.matmul {size}^3 float16: {2 * size**3 / torch_us / 1e6:.0f} TFLOP/s")
    print("| warps | BM x BN | blocks | µs | TFLOP/s | of torch |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    for num_warps, block_m, block_n in SHAPES:
        kernel = tv.kernel(_body, num_warps=num_warps)
        a = (torch.randint(-2, 3, (block_m, 16), device="cuda", generator=generator) / 4).half()
        b = (torch.randint(-2, 3, (16, block_n), device="cuda", generator=generator) / 4).half()
        for per_sm in (2, 4, 8):
            blocks = per_sm * sms
            out = torch.full((blocks * block_m, block_n), float("nan"), device="cuda")

            def run(kernel=kernel, a=a, b=b, out=out, blocks=blocks, bm=block_m, bn=block_n) -> None:
                kernel[(blocks,)](a, b, out, BM=bm, BN=bn, ITERATIONS=ITERATIONS)

            try:
                run()
            except Exception as error:  # a tile the registers cannot hold is reported, not fatal
                print(f"| {num_warps} | {block_m} x {block_n} | {blocks} | refused: {str(error)[:60]} | | |")
                break
            # quarters times small integers: every partial sum is exact in float32
            expected = (ITERATIONS * (a.float() @ b.float())).repeat(blocks, 1)
            torch.testing.assert_close(out, expected, rtol=0, atol=0)
            time_us = gpu_time_us(run)
            rate = 2 * blocks * block_m * block_n * 16 * ITERATIONS / time_us / 1e6
            ratio = rate / (2 * size**3 / torch_us / 1e6)
            tile = f"| {num_warps} | {block_m} x {block_n} | {blocks}"
            print(f"{tile} | {time_us:.1f} | {rate:.0f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
