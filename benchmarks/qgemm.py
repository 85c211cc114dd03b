"""The quantized GEMM (``tilevm.ops.quantized_matmul``) at decode and prefill sizes beside its peers, on the
GPU: the "Speed" section of the op library's issue.

    PYTHONPATH=. python benchmarks/qgemm.py --out qgemm.json                      # every row (long)
    PYTHONPATH=. python benchmarks/qgemm.py --widths 4 --shapes 8192x8192 --m 1   # a subset

Decode rows: M in {1, 4, 16}, (N, K) in {4096x4096, 8192x8192, 28672x8192, 8192x28672}, weights int2..int8,
float4_e2m1, float6_e3m2, float8_e4m3, float16 scales per group of 128 along K. Each row gives:

- the median GPU time of the tilevm kernel (L2 flushed, ``benchmarks/gpu_timing.py``);
- the limit: bytes of weights + scales (+ zeros) + activations + output over the copy bandwidth of a large
  buffer measured in the same run, and the kernel's fraction of it (limit / time);
- a device copy moving the same bytes: the practical floor for a kernel of that size;
- torch float16 ``F.linear`` on the dequantized weight, torch's ``_weight_int4pack_mm`` for int4 (bfloat16
  activations: its CUDA kernel takes no others), and vLLM's Humming (``humming-kernels``) where it imports;
- the eager wall time per call of ``quantized_matmul`` (host overhead included).

Prefill rows: M = 4096, N = K = 8192, int4 and int8, in TFLOP/s beside torch float16 (the prefill kernel,
``tilevm.ops.qgemm.prefill``; the JSON row names the configuration timed), each timed for at least
``PREFILL_REPEAT_MS`` whatever ``--repeat-ms`` says.

Every kernel's output is checked before it is timed: tilevm's and torch's against a float32 product with the
same dequantized weight; Humming, which quantizes the weight itself, by its error against the float weight's
product, which must be no worse than 1.5 times tilevm's quantization error. ``--no-autotune`` times the
default config of each shape instead of searching (a search compiles several configs per row).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable

DECODE_M = (1, 4, 16)
SHAPES = ((4096, 4096), (8192, 8192), (28672, 8192), (8192, 28672))
WIDTHS = ("2", "3", "4", "5", "6", "7", "8", "float4_e2m1", "float6_e3m2", "float8_e4m3")
PREFILL_M = 4096
PREFILL_WIDTHS = ("4", "8")
#: the least time spent timing each prefill kernel: a call takes about 1 ms, and a median of the 10 calls
#: that 10 ms allow is a few outliers' (H100, int8, one machine: 947 to 1015 µs in runs of 10 ms, 918 in
#: 200 ms, as in benchmarks/prefill_configs.py)
PREFILL_REPEAT_MS = 200
GROUP = 128
#: relative Frobenius error allowed against the float32 product with the same weight: float16 output
#: rounding (2**-11) and float16 weights in the mma, with a margin for K up to 28672
TOLERANCE = 4e-3


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--m", type=int, nargs="+", default=list(DECODE_M), help="decode M values (default 1 4 16)"
    )
    parser.add_argument(
        "--shapes",
        nargs="+",
        default=[f"{n}x{k}" for n, k in SHAPES],
        help="NxK shapes (default the four of the issue)",
    )
    parser.add_argument(
        "--widths",
        nargs="+",
        default=list(WIDTHS),
        help="2..8 for intN, or a float format's name (default all ten)",
    )
    parser.add_argument("--no-decode", action="store_true", help="skip the decode rows")
    parser.add_argument(
        "--no-prefill", action="store_true", help="skip the prefill rows (M = 4096, int4 and int8)"
    )
    parser.add_argument(
        "--no-autotune", action="store_true", help="time each shape's default config (no search)"
    )
    parser.add_argument(
        "--repeat-ms",
        type=int,
        default=100,
        help="time spent timing each kernel (default 100; each prefill row takes at least 200)",
    )
    parser.add_argument("--out", help="write the rows as JSON to this path")
    arguments = parser.parse_args(argv)
    arguments.shapes = [tuple(int(size) for size in shape.lower().split("x")) for shape in arguments.shapes]
    return arguments


def relative_error(value, reference) -> float:
    return ((value.float() - reference).norm() / reference.norm()).item()


def check(name: str, value, reference, tolerance: float = TOLERANCE) -> None:
    error = relative_error(value, reference)
    if not error <= tolerance:
        raise AssertionError(f"{name}: relative error {error:.2e} > {tolerance:.0e}; not timed")


def torch_int4(qweight, x) -> Callable[[], object] | str:
    """``torch._weight_int4pack_mm`` on tilevm's int4 codes and scales (checked; bfloat16 output rounding
    allowed), or why it cannot run: tinygemm computes ``(q - 8) * scale + zero`` with q = code + 8 unsigned,
    two codes per byte (the even k in the high nibble), and takes bfloat16."""
    import torch

    values = qweight.codes().to(torch.int32)
    unsigned = torch.where(values >= 8, values - 16, values) + 8
    scales = qweight.scales.to(torch.bfloat16)  # [K / group, N]
    scale_and_zero = torch.stack([scales, torch.zeros_like(scales)], dim=-1).contiguous()
    x16 = x.to(torch.bfloat16)
    reference = x16.float() @ ((unsigned - 8).float() * scales.float().repeat_interleave(GROUP, 0).T).T
    try:
        weight = torch._convert_weight_to_int4pack(
            (unsigned[:, ::2] << 4 | unsigned[:, 1::2]).to(torch.uint8), 8
        )
        check("torch int4", torch._weight_int4pack_mm(x16, weight, GROUP, scale_and_zero), reference, 1e-2)
    except (RuntimeError, AssertionError) as error:  # another torch's packing: reported in the table
        return f"failed: {str(error).splitlines()[0][:60]}"
    return lambda: torch._weight_int4pack_mm(x16, weight, GROUP, scale_and_zero)


def humming(weight, dtype, x, our_error: float) -> Callable[[], object] | str:
    """vLLM's Humming layer for ``weight`` quantized to ``dtype`` (checked), or why it is not there."""
    try:
        from humming.layer import HummingLayer
    except ImportError:
        return "not installed"
    n, k = weight.shape
    name = dtype.name.replace("_", "")  # Humming writes float4e2m1
    try:
        layer = HummingLayer(
            shape_n=n,
            shape_k=k,
            weight_config={"dtype": name, "group_size": GROUP, "scale_dtype": "float16"},
            torch_dtype=weight.dtype,
        ).to(weight.device)
        layer.load_from_unquantized(weight)
        layer.transform()
        layer.prepare_default_kernel_configs()
        output = layer(x)
    except Exception as error:  # a peer's API or format it does not take: reported in the table, not fatal
        return f"failed: {type(error).__name__}: {str(error).splitlines()[0][:60]}"
    try:
        check("Humming", output, x.float() @ weight.float().T, 1.5 * our_error + 1e-3)
    except AssertionError as error:
        return str(error)
    return lambda: layer(x)


def decode_rows(arguments, bandwidth: float) -> list[dict]:
    import torch
    import torch.nn.functional as F

    from benchmarks.gpu_timing import gpu_time_us
    from benchmarks.qgemm_inputs import code_dtype

    rows = []
    generator = torch.Generator(device="cuda").manual_seed(0)
    for n, k in arguments.shapes:
        weight = torch.randn(n, k, device="cuda", generator=generator).half()
        xs = {m: torch.randn(m, k, device="cuda", generator=generator).half() for m in arguments.m}
        fp16 = {}
        for m, x in xs.items():
            check(f"torch fp16 {m}x{n}x{k}", F.linear(x, weight), x.float() @ weight.float().T)
            fp16[m] = gpu_time_us(lambda x=x, w=weight: F.linear(x, w), repeat_ms=arguments.repeat_ms)
        for width in arguments.widths:
            rows += width_rows(weight, code_dtype(width), xs, fp16, bandwidth, arguments.repeat_ms)
        torch.cuda.empty_cache()
    return rows


def width_rows(weight, dtype, xs: dict, fp16: dict, bandwidth: float, repeat_ms: int) -> list[dict]:
    """The rows of one weight quantized to ``dtype``, one per M (``xs``: the activations by M)."""
    import torch

    from benchmarks.gpu_timing import copy_time_us, eager_wall_us, gpu_time_us
    from tilevm.ops import quantize_weight, quantized_matmul

    n, k = weight.shape
    qweight = quantize_weight(weight, dtype, group_size=GROUP)
    dequantized = qweight.dequantize(torch.float32)
    weight_bytes = qweight.nbytes  # codes, scales, zero points, global scale: what the kernel reads
    rows = []
    for m, x in xs.items():

        def run(x=x):
            return quantized_matmul(x, qweight)

        check(f"tilevm {dtype} M={m} {n}x{k}", run(), x.float() @ dequantized.T)
        nbytes = weight_bytes + x.nbytes + m * n * 2
        row = {
            "m": m, "n": n, "k": k, "dtype": dtype.name, "weight_mb": weight_bytes / 1e6,
            "tilevm_us": gpu_time_us(run, repeat_ms=repeat_ms), "eager_us": eager_wall_us(run),
            "limit_us": nbytes / bandwidth * 1e6,
            "copy_us": copy_time_us(nbytes // 2),  # a copy reads and writes: half the bytes each way
            "torch_fp16_us": fp16[m],
        }  # fmt: skip
        peers = {"humming": humming(weight, dtype, x, relative_error(run(), x.float() @ weight.float().T))}
        if dtype.name == "int4":
            peers["torch_int4"] = torch_int4(qweight, x)
        for name, peer in peers.items():  # a time in µs, or the reason there is none
            row[f"{name}_us"] = gpu_time_us(peer, repeat_ms=repeat_ms) if callable(peer) else peer
        rows.append(row)
        print(format_decode(row), flush=True)
    return rows


def prefill_rows(arguments) -> list[dict]:
    import torch
    import torch.nn.functional as F

    from benchmarks.gpu_timing import gpu_time_us
    from benchmarks.qgemm_inputs import code_dtype
    from tilevm.ops import quantize_weight, quantized_matmul
    from tilevm.ops.tuning import tuned_config

    n = k = 8192
    generator = torch.Generator(device="cuda").manual_seed(1)
    weight = torch.randn(n, k, device="cuda", generator=generator).half()
    x = torch.randn(PREFILL_M, k, device="cuda", generator=generator).half()
    flops = 2 * PREFILL_M * n * k
    repeat_ms = max(arguments.repeat_ms, PREFILL_REPEAT_MS)
    check("torch fp16 prefill", F.linear(x, weight), x.float() @ weight.float().T)
    torch_us = gpu_time_us(lambda: F.linear(x, weight), repeat_ms=repeat_ms)
    rows = []
    for width in PREFILL_WIDTHS:
        dtype = code_dtype(width)
        qweight = quantize_weight(weight, dtype, group_size=GROUP)
        check(
            f"tilevm prefill {dtype}",
            quantized_matmul(x, qweight),
            x.float() @ qweight.dequantize(torch.float32).T,
        )
        tilevm_us = gpu_time_us(lambda qweight=qweight: quantized_matmul(x, qweight), repeat_ms=repeat_ms)
        row = {
            "m": PREFILL_M, "n": n, "k": k, "dtype": dtype.name, "tilevm_us": tilevm_us,
            "torch_fp16_us": torch_us, "tilevm_tflops": flops / tilevm_us / 1e6,
            "torch_fp16_tflops": flops / torch_us / 1e6, "config": repr(tuned_config(x, qweight, None)),
        }  # fmt: skip
        rows.append(row)
        print(format_prefill(row), flush=True)
    return rows


DECODE_HEADER = (
    "| M | N x K | weights | MB | tilevm µs | limit µs | of limit | copy µs | tilevm / copy | torch fp16 µs "
    "| torch int4 µs | Humming µs | eager µs |\n"
    "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
)
PREFILL_HEADER = (
    "| M | N x K | weights | tilevm µs | tilevm TFLOP/s | torch fp16 TFLOP/s | of torch fp16 |\n"
    "| ---: | --- | --- | ---: | ---: | ---: | ---: |"
)


def format_decode(row: dict) -> str:
    peer = _cell(row["humming_us"])
    int4 = _cell(row.get("torch_int4_us", ""))
    return (
        f"| {row['m']} | {row['n']}x{row['k']} | {row['dtype']} | {row['weight_mb']:.1f} "
        f"| {row['tilevm_us']:.1f} | {row['limit_us']:.1f} | {row['limit_us'] / row['tilevm_us']:.2f} "
        f"| {row['copy_us']:.1f} | {row['tilevm_us'] / row['copy_us']:.2f} | {row['torch_fp16_us']:.1f} "
        f"| {int4} | {peer} | {row['eager_us']:.1f} |"
    )


def _cell(value: float | str) -> str:
    return f"{value:.1f}" if isinstance(value, float) else value


def format_prefill(row: dict) -> str:
    return (
        f"| {row['m']} | {row['n']}x{row['k']} | {row['dtype']} | {row['tilevm_us']:.1f} "
        f"| {row['tilevm_tflops']:.0f} | {row['torch_fp16_tflops']:.0f} "
        f"| {row['tilevm_tflops'] / row['torch_fp16_tflops']:.2f} |"
    )


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    if arguments.no_autotune:
        os.environ["TILEVM_AUTOTUNE"] = "0"
    import torch

    from benchmarks.gpu_timing import copy_bandwidth

    bandwidth = copy_bandwidth()
    print(f"quantized GEMM on {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print(f"copy bandwidth (read + write): {bandwidth / 1e12:.2f} TB/s; command: {' '.join(sys.argv)}\n")
    result = {
        "device": torch.cuda.get_device_name(),
        "bandwidth": bandwidth,
        "command": sys.argv,
        "decode": [],
    }
    if not arguments.no_decode:
        print(DECODE_HEADER)
        result["decode"] = decode_rows(arguments, bandwidth)
    if not arguments.no_prefill:
        print("\n" + PREFILL_HEADER)
        result["prefill"] = prefill_rows(arguments)
    if arguments.out:
        with open(arguments.out, "w") as file:
            json.dump(result, file, indent=1)


if __name__ == "__main__":
    main()
