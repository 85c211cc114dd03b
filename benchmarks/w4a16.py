"""The W4A16 example beside torch fp16 ``F.linear`` at decode sizes (M = 1 and 16, N = K = 8192), on the GPU.

    PYTHONPATH=. python benchmarks/w4a16.py

The bandwidth limit is the bytes the kernel must move (int4 weights, float16 scales, activations and output)
over the copy bandwidth measured in the same run; the copy of the same bytes is the practical floor (launch
and ramp-up included). Every configuration is checked against a float32 product of the dequantized weights
before it is timed. Times are medians with L2 flushed; "eager" is the host wall time per call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import tilevm as tv
from benchmarks.gpu_timing import copy_bandwidth, copy_time_us, eager_wall_us, gpu_time_us, load_example

N = K = 8192
GROUP = 128
#: (BM, BN) of the example kernel, which has 4 warps and a K step of one group
CONFIGS = ((16, 32), (16, 64), (16, 128))


def main() -> None:
    example = load_example("w4a16_matmul")
    generator = torch.Generator().manual_seed(0)
    packed, scales = example.quantize(torch.randn(K, N, generator=generator), GROUP)
    packed, scales = packed.cuda(), scales.cuda()
    weights = example.dequantize(packed, scales, GROUP).half()  # [K, N] float16, for torch and the check
    weights_t = weights.t().contiguous()  # F.linear's [N, K]
    bandwidth = copy_bandwidth()
    print(f"W4A16, N = K = {N}, group {GROUP}, on {torch.cuda.get_device_name()}")
    print(f"copy bandwidth (read + write): {bandwidth / 1e12:.2f} TB/s")
    print("| M | kernel | GPU µs | eager µs | limit µs | of limit | copy, same bytes µs | vs torch fp16 |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for m in (1, 16):
        x = torch.randn(m, K, generator=generator).half().cuda()
        nbytes = packed.numel() + scales.numel() * 2 + x.numel() * 2 + m * N * 2
        limit = nbytes / bandwidth * 1e6
        copy = copy_time_us(nbytes // 2)  # a copy reads and writes: half the bytes each way
        reference = x.float() @ weights.float()
        torch_time = gpu_time_us(lambda x=x: F.linear(x, weights_t))
        torch_eager = eager_wall_us(lambda x=x: F.linear(x, weights_t))
        rows = [("torch fp16 F.linear", torch_time, torch_eager)]
        for block_m, block_n in CONFIGS:
            out = torch.full((m, N), float("nan"), device="cuda", dtype=torch.float16)
            grid = (tv.cdiv(m, block_m), N // block_n)

            def run(x=x, out=out, grid=grid, bm=block_m, bn=block_n) -> None:
                example.w4a16_matmul[grid](x, packed, scales, out, BM=bm, BN=bn, GROUP=GROUP)

            run()
            error = ((out.float() - reference).norm() / reference.norm()).item()
            assert error < 2e-3, f"M={m} BN={block_n}: relative error {error}"
            rows.append((f"tilevm BM={block_m} BN={block_n}", gpu_time_us(run), eager_wall_us(run)))
        for name, time_us, eager in rows:
            print(
                f"| {m} | {name} | {time_us:.1f} | {eager:.1f} | {limit:.1f} | {limit / time_us:.2f} | "
                f"{copy:.1f} | {torch_time / time_us:.2f} |"
            )


if __name__ == "__main__":
    main()
