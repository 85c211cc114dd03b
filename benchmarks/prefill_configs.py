"""The prefill kernel's time and TFLOP/s under the ``PrefillConfig``s given on the command line, beside torch
fp16 and the default configuration, on the GPU: how a candidate tiling is measured before it joins the
tuner's candidates or becomes the default.

    PYTHONPATH=. python benchmarks/prefill_configs.py --widths 4 8 \\
        "n_warps=4,m_warps=1,n_tiles=2,m_tiles=16,chunks=1,steps=2,stages=2"

A configuration is a ``PrefillConfig``'s fields as ``name=value`` pairs; a field left out keeps the
default configuration's for the width (``prefill_config``). For each width: random codes and float16
scales per group of 128, the output of each configuration checked against a float32 product with the
dequantized weight, then its median GPU time (L2 flushed: ``benchmarks/gpu_timing.py``).
"""

from __future__ import annotations

import argparse
import dataclasses


def parse_config(text: str, bits: int) -> object:
    """The default ``PrefillConfig`` for ``bits``-bit codes with the fields of ``name=value`` pairs."""
    from tilevm.ops.qgemm.config import prefill_config

    fields = dict(pair.split("=") for pair in text.replace(" ", "").split(",") if pair)
    values = {name: int(value) for name, value in fields.items()}
    return dataclasses.replace(prefill_config(bits), **values)


def main() -> None:
    import torch
    import torch.nn.functional as F

    import tilevm as tv
    from benchmarks.gpu_timing import gpu_time_us
    from tilevm.ops.qgemm import prelayout, qgemm
    from tilevm.ops.qgemm.config import prefill_config

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="*", help="PrefillConfig fields as name=value,name=value")
    parser.add_argument("--widths", nargs="+", type=int, default=[4, 8], help="integer code widths")
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
    for bits in arguments.widths:
        code = tv.int_type(bits, True)
        codes = torch.randint(0, 1 << bits, (n, k), generator=generator, device="cuda", dtype=torch.uint8)
        packed = prelayout.pack(codes, bits)
        scales = (torch.rand(k // group, n, generator=generator, device="cuda") / (1 << bits) + 1e-3).half()
        values = codes.int() - ((codes.int() >> (bits - 1)) << bits)  # two's complement
        weight = (values.view(n, k // group, group) * scales.T[:, :, None].float()).view(n, k)
        reference = x.float() @ weight.T
        configs = [prefill_config(bits), *(parse_config(text, bits) for text in arguments.configs)]
        for config in dict.fromkeys(configs):

            def run(config=config, packed=packed, scales=scales, code=code):
                return qgemm(x, packed, scales, code_dtype=code, n=n, group_size=group, config=config)

            error = float((run().float() - reference).norm() / reference.norm())
            if not error < 4e-3:
                raise AssertionError(f"{config}: relative error {error}")
            time_us = gpu_time_us(run)
            rate = flop / time_us / 1e6
            print(f"| int{bits} | {time_us:.0f} | {rate:.0f} | {fp16_us / time_us:.2f} | {config} |")


if __name__ == "__main__":
    main()
