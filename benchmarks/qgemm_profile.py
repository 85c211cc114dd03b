"""One quantized GEMM launched a few times, for a profiler to read (Nsight Compute's hardware counters).

    ncu --clock-control none --launch-skip 2 --launch-count 1 --section SpeedOfLight \\
        python benchmarks/qgemm_profile.py --shape 28672x8192 --code 4 --m 1

The weight is random codes of ``--code`` (``4``: int4, or a dtype's name) with float16 scales per group
of 128; ``--config`` changes
fields of the default ``QGemmConfig`` or ``PrefillConfig`` (``"num_warps=8, k_warps=8, chunks=2"``). The
output is checked against a float32 product with the dequantized weight, so a profile is never of a wrong
kernel.
"""

from __future__ import annotations

import argparse

GROUP = 128


def main() -> None:
    import torch

    from benchmarks.qgemm_inputs import code_dtype, random_weight, with_fields
    from tilevm.ops.qgemm import default_config, qgemm
    from tilevm.ops.qgemm.gpu import runs_wgmma

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="28672x8192", help="NxK")
    parser.add_argument("--code", default="4", help="code dtype: a width for an integer (4: int4), or a name")
    parser.add_argument("--m", type=int, default=1, help="rows of X")
    parser.add_argument("--config", default="", help="QGemmConfig fields, e.g. 'chunks=2, split_k=2'")
    parser.add_argument("--launches", type=int, default=4)
    arguments = parser.parse_args()
    n, k = (int(size) for size in arguments.shape.split("x"))
    code, m = code_dtype(arguments.code), arguments.m
    bits = code.nbits
    generator = torch.Generator("cuda").manual_seed(n * 31 + k * 7 + bits)
    packed, scales, weight = random_weight(n, k, code, GROUP, generator)
    x = torch.randn(m, k, generator=generator, device="cuda").half()
    default = default_config(m, n, k, bits, "cuda", GROUP, runs_wgmma(x.device), code.is_float)
    config = with_fields(default, arguments.config)
    for _ in range(arguments.launches):
        out = qgemm(x, packed, scales, code_dtype=code, n=n, group_size=GROUP, config=config)
    torch.cuda.synchronize()
    reference = x.float() @ weight.T
    error = float((out.float() - reference).norm() / reference.norm())
    print(f"M={m} {n}x{k} {code} {config}: relative error {error:.2e}")
    if not error < 4e-3:
        raise AssertionError(f"relative error {error}")


if __name__ == "__main__":
    main()
