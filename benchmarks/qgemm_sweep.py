"""The quantized GEMM's kernel time under many configurations at a few decode shapes, on the GPU: what the
default configuration and the autotuner's candidates are chosen from.

    PYTHONPATH=. python benchmarks/qgemm_sweep.py --shapes 8192x8192 --widths 4 --m 1 --out sweep.json
    PYTHONPATH=. python benchmarks/qgemm_sweep.py --widths 4 8 --m 4096    # the prefill kernel's candidates
    PYTHONPATH=. python benchmarks/qgemm_sweep.py --widths 6 --only NONE --caps 0 96 128  # the default's caps
    PYTHONPATH=. python benchmarks/qgemm_sweep.py --widths 2 --variants n_tiles=2 "chunks=1,n_tiles=2"

For each shape and width: random codes and float16 scales per group of 128, every configuration of the
sweep (``--only`` narrows it; ``--variants`` replaces it by the default with some fields changed; ``--caps``
times each under several register caps), each output checked
against a float32 product with the dequantized weight before it is timed (median GPU time, L2 flushed:
``benchmarks/gpu_timing.py``), sorted by time, with the fraction of the bandwidth limit (bytes moved over
the copy bandwidth measured in the same run). The sweep
leaves out the configurations that hold more than 1024 values of k a thread's registers (they spill); one
whose iteration does not hold whole groups is kept in the JSON with its error, not timed.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json

GROUP = 128


def sweep_configs(bits: int, block_m: int) -> list[object]:
    """The configurations swept for ``bits``-bit codes: warps across k and columns, tiles a warp, chunks
    an iteration (up to 512 values of k), prefetch, split-k and the
    persistent grid."""
    from tilevm.ops.qgemm import QGemmConfig, prelayout

    chunk = prelayout.chunk_k(bits)
    chunk_counts = [c for c in (1, 2, 4, 8) if c * chunk <= max(512, chunk) and (c * chunk) % GROUP == 0]
    warps = ((8, 4), (4, 4), (8, 8), (4, 2), (8, 2))
    configs = []
    splits = ((1, False), (2, False), (4, False), (1, True))  # (split_k, stream_k)
    for (num_warps, k_warps), n_tiles, chunks, prefetch, (split_k, stream_k) in itertools.product(
        warps, (1, 2, 4), chunk_counts, (True, False), splits
    ):
        if n_tiles * chunks * chunk * (1 + prefetch) > 1024:
            continue  # registers spill
        configs.append(
            QGemmConfig(num_warps, n_tiles, block_m, chunks, prefetch, k_warps, split_k, stream_k=stream_k)
        )
    return configs


def prefill_at_decode(bits: int, block_m: int) -> list[object]:
    """The prefill kernel at decode M: one warp across m with ``block_m`` rows, 4 or 8 warps across the
    columns, one tile a warp, the default sub-steps, 2 or 3 stages and 1 to 8 blocks a tile."""
    from tilevm.ops.qgemm import PrefillConfig
    from tilevm.ops.qgemm.config import prefill_config

    base = prefill_config(bits)
    return [
        PrefillConfig(n_warps, 1, 1, block_m // 8, base.chunks, base.steps, stages, split_k)
        for n_warps, stages, split_k in itertools.product((4, 8), (2, 3), (1, 2, 4, 8))
    ]


def swept(m: int, n: int, k: int, code: object, prefill: bool) -> list[object]:
    """The configurations a shape of ``code`` weights is timed with, the default first: at the prefill
    kernel's sizes its tuner candidates; else the decode kernel's ``sweep_configs`` (and with ``prefill``,
    the prefill kernel's ``prefill_at_decode``)."""
    from tilevm.ops.qgemm import default_config
    from tilevm.ops.qgemm.config import decode_config, uses_prefill
    from tilevm.ops.tuning import candidates

    bits = code.nbits
    default = default_config(m, n, k, bits, "cuda", GROUP, float_codes=code.is_float)
    if uses_prefill(m, n):
        return candidates(m, n, k, bits, GROUP, code.is_float)
    block_m = decode_config(m, n, k, bits, GROUP).block_m
    return [default, *sweep_configs(bits, block_m), *(prefill_at_decode(bits, block_m) if prefill else [])]


def main() -> None:
    import torch

    from benchmarks.gpu_timing import copy_bandwidth, gpu_time_us
    from benchmarks.qgemm_inputs import code_dtype, random_weight, with_fields
    from tilevm.ops.qgemm import default_config, qgemm

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="+", default=["8192x8192"], help="NxK shapes")
    parser.add_argument(
        "--widths", nargs="+", default=["4"], help="code dtypes: a width for an integer (4: int4), or a name"
    )
    parser.add_argument("--m", nargs="+", type=int, default=[1], help="rows of X")
    parser.add_argument("--top", type=int, default=8, help="rows printed per shape")
    parser.add_argument("--repeat-ms", type=int, default=20)
    parser.add_argument("--out", help="write every timing here as JSON")
    parser.add_argument("--only", default="", help="time only the configurations whose repr has this text")
    parser.add_argument(
        "--prefill", action="store_true", help="at decode M, also the prefill kernel with one warp across m"
    )
    parser.add_argument(
        "--caps",
        nargs="+",
        type=int,
        default=[],
        help="time every configuration under each of these register caps (max_registers; 0: none) "
        "instead of its own; the default is timed as it is too",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        default=[],
        help="time the default configuration with these fields changed (each 'name=value,...') instead "
        "of the sweep",
    )
    arguments = parser.parse_args()
    bandwidth = copy_bandwidth()
    print(f"copy bandwidth {bandwidth / 1e12:.2f} TB/s")
    results = []
    generator = torch.Generator("cuda").manual_seed(0)
    for shape, width, m in itertools.product(arguments.shapes, arguments.widths, arguments.m):
        n, k = (int(size) for size in shape.split("x"))
        code = code_dtype(width)
        bits = code.nbits
        packed, scales, weight = random_weight(n, k, code, GROUP, generator)
        x = torch.randn(m, k, generator=generator, device="cuda").half()
        reference = x.float() @ weight.T
        nbytes = packed.numel() + scales.numel() * 2 + x.numel() * 2 + m * n * 2
        limit_us = nbytes / bandwidth * 1e6
        default = default_config(m, n, k, bits, "cuda", GROUP, float_codes=code.is_float)
        if arguments.variants:
            configs = [default, *(with_fields(default, fields) for fields in arguments.variants)]
        else:
            swept_configs = swept(m, n, k, code, arguments.prefill)
            configs = [c for c in swept_configs if c == default or arguments.only in repr(c)]
        if arguments.caps:
            caps = [cap or None for cap in arguments.caps]
            configs = [default, *(dataclasses.replace(c, max_registers=cap) for c in configs for cap in caps)]
        rows = []
        for config in dict.fromkeys(configs):

            def run(config=config, x=x, packed=packed, scales=scales, code=code, n=n):
                return qgemm(x, packed, scales, code_dtype=code, n=n, group_size=GROUP, config=config)

            try:
                out = run()
            except ValueError as error:
                rows.append({"config": repr(config), "error": str(error)})
                continue
            error = float((out.float() - reference).norm() / reference.norm())
            if not error < 4e-3:
                raise AssertionError(f"{config}: relative error {error}")
            time_us = gpu_time_us(run, repeat_ms=arguments.repeat_ms)
            rows.append({"config": repr(config), "us": time_us, "of_limit": limit_us / time_us})
        timed = sorted((row for row in rows if "us" in row), key=lambda row: row["us"])
        default_row = next(row for row in rows if row["config"] == repr(default))
        default_us = default_row.get("us", 0)
        print(f"\n## M={m} {n}x{k} {code}: limit {limit_us:.1f} µs; default {default_us:.1f} µs")
        print("| µs | of limit | config |\n| ---: | ---: | --- |")
        for row in timed[: arguments.top]:
            print(f"| {row['us']:.1f} | {row['of_limit']:.2f} | {row['config']} |")
        results.append({"m": m, "n": n, "k": k, "dtype": code.name, "limit_us": limit_us, "rows": rows})
    if arguments.out:
        with open(arguments.out, "w") as file:
            json.dump(results, file, indent=1)


if __name__ == "__main__":
    main()
