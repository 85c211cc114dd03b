"""The prefill kernel's time and TFLOP/s under the ``PrefillConfig``s given on the command line, beside torch
fp16 and the default configuration, on the GPU: how a candidate tiling is measured before it joins the
tuner's candidates or becomes the default.

    PYTHONPATH=. python benchmarks/prefill_configs.py \\
        "n_warps=4,m_warps=1,n_tiles=2,m_tiles=16,chunks=1,steps=2,stages=2,warpgroups=False" --widths 4 8

A configuration is a ``PrefillConfig``'s fields as ``name=value`` pairs (before ``--widths``, which takes
every number after it); a field left out keeps the default configuration's for the width and shape on
this GPU (``default_config``: on an H100 or H200, the warpgroups' ``warpgroup_config`` for 4 and 8 bits;
``prefill_config`` where the shape is a decode kernel's). For each width: random codes and float16 scales
per group of 128, the output of each configuration checked against a float32 product with the
dequantized weight, then its median GPU time (L2 flushed: ``benchmarks/gpu_timing.py``).
"""

from __future__ import annotations

import argparse


def main() -> None:
    import torch
    import torch.nn.functional as F

    from benchmarks.gpu_timing import gpu_time_us
    from benchmarks.qgemm_inputs import code_dtype, random_weight, with_fields
    from tilevm.ops.qgemm import PrefillConfig, default_config, qgemm
    from tilevm.ops.qgemm.config import prefill_config
    from tilevm.ops.qgemm.gpu import runs_wgmma

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="*", help="PrefillConfig fields as name=value,name=value")
    parser.add_argument(
        "--widths",
        nargs="+",
        default=["4", "8"],
        help="code dtypes: a width for an integer (4: int4), or a name",
    )
    parser.add_argument("--shape", default="4096x8192x8192", help="MxNxK")
    arguments = parser.parse_args()
    m, n, k = (int(size) for size in arguments.shape.split("x"))
    group, flop = 128, 2 * m * n * k
    generator = torch.Generator("cuda").manual_seed(0)
    x = torch.randn(m, k, generator=generator, device="cuda").half()
    dense = torch.randn(n, k, generator=generator, device="cuda").half()
    fp16_us = gpu_time_us(lambda: F.linear(x, dense))
    print(f"| width | µs | TFLOP/s | of torch fp16 ({fp16_us:.0f} µs) | config |")
    print("| ---: | ---: | ---: | ---: | --- |")
    for width in arguments.widths:
        code = code_dtype(width)
        bits = code.nbits
        packed, scales, weight = random_weight(n, k, code, group, generator)
        reference = x.float() @ weight.T
        default = default_config(m, n, k, bits, "cuda", group, runs_wgmma(x.device), code.is_float)
        if not isinstance(default, PrefillConfig):  # a decode shape: the prefill kernel's own default
            default = prefill_config(bits)
        configs = [default, *(with_fields(default, text) for text in arguments.configs)]
        for config in dict.fromkeys(configs):

            def run(config=config, packed=packed, scales=scales, code=code):
                return qgemm(x, packed, scales, code_dtype=code, n=n, group_size=group, config=config)

            error = float((run().float() - reference).norm() / reference.norm())
            if not error < 4e-3:
                raise AssertionError(f"{config}: relative error {error}")
            time_us = gpu_time_us(run)
            rate = flop / time_us / 1e6
            print(f"| {code} | {time_us:.0f} | {rate:.0f} | {fp16_us / time_us:.2f} | {config} |")


if __name__ == "__main__":
    main()
