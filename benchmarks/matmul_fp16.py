"""The fp16 matmul examples beside ``torch.matmul`` (cuBLAS) at 4096^3, in TFLOP/s, on the GPU:
``matmul_fp16`` (``mma.sync`` on register tiles) and ``linear_fp16`` (``y = x @ w.T`` by dots of shared
tiles: ``wgmma`` on an H100 or H200).

    PYTHONPATH=. python benchmarks/matmul_fp16.py

Each tile configuration of the example kernels is checked against torch (relative Frobenius error against a
float32 product) before it is timed; the table gives the median kernel time and the rate of each.
"""

from __future__ import annotations

import torch

from benchmarks.gpu_timing import gpu_time_us, load_example

SIZE = 4096
#: (BM, BN, BK, STAGES): the matmul example kernel has 4 warps
CONFIGS = ((64, 64, 32, 2), (128, 64, 32, 3), (64, 128, 32, 3), (128, 128, 32, 3))
#: and the linear example 8 (two warpgroups)
LINEAR_CONFIGS = ((128, 128, 64, 4), (128, 256, 64, 3), (128, 256, 64, 4), (256, 128, 64, 4))


def main() -> None:
    example = load_example("matmul_fp16")
    generator = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(SIZE, SIZE, device="cuda", generator=generator).half()
    b = torch.randn(SIZE, SIZE, device="cuda", generator=generator).half()
    reference = a.float() @ b.float()
    flops = 2 * SIZE**3
    rows = [("torch.matmul (cuBLAS)", gpu_time_us(lambda: torch.matmul(a, b)), "")]
    w = b.T.contiguous()  # the linear example's [N, K] weight
    linear = load_example("linear_fp16")
    kernels = [("matmul", CONFIGS, example.matmul, b), ("linear", LINEAR_CONFIGS, linear.linear, w)]
    runs = [
        (kind, kernel, operand, config) for kind, configs, kernel, operand in kernels for config in configs
    ]
    for kind, kernel, operand, (block_m, block_n, block_k, stages) in runs:
        c = torch.full((SIZE, SIZE), float("nan"), device="cuda", dtype=torch.float16)
        grid = (SIZE // block_m, SIZE // block_n)

        def run(c=c, grid=grid, bm=block_m, bn=block_n, bk=block_k, st=stages, k=kernel, o=operand) -> None:
            k[grid](a, o, c, BM=bm, BN=bn, BK=bk, STAGES=st)

        try:
            run()
        except Exception as error:  # a configuration the compiler refuses is reported, not fatal
            rows.append(
                (f"tilevm {kind} {block_m}x{block_n}x{block_k}, {stages} stages", None, str(error)[:80])
            )
            continue
        error = ((c.float() - reference).norm() / reference.norm()).item()
        assert error < 2e-3, f"{block_m}x{block_n}x{block_k}: relative error {error}"
        name = f"tilevm {kind} {block_m}x{block_n}x{block_k}, {stages} stages"
        rows.append((name, gpu_time_us(run), f"rel. error {error:.1e}"))
    print(f"fp16 matmul {SIZE}^3 on {torch.cuda.get_device_name()}")
    print("| kernel | median time (µs) | TFLOP/s | vs torch | note |")
    print("| --- | ---: | ---: | ---: | --- |")
    torch_time = rows[0][1]
    for name, time_us, note in rows:
        if time_us is None:
            print(f"| {name} | - | - | - | {note} |")
            continue
        rate = flops / (time_us * 1e-6) / 1e12
        print(f"| {name} | {time_us:.1f} | {rate:.1f} | {torch_time / time_us:.2f} | {note} |")


if __name__ == "__main__":
    main()
