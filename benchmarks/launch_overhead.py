"""Host time per launch of a cached kernel with 4 tensor arguments: tilevm's hot path (the generated binder,
a dict lookup, the driver call), tilevm's slow path (what every launch cost before the binder: bind and
check every argument, describe it, look the program up by its description), a Triton kernel taking the
same tensors (and the element count, which it needs to mask), and ``torch.add(a, b, out=c)``, in the same
process.

Each measurement times ``LAUNCHES`` launches back to back with ``time.perf_counter_ns``, synchronizes at the
end, and is repeated ``REPEATS`` times; the table gives the median over repeats of the time per launch. The
tensors are small (4096 float32), so that the GPU keeps up with the host and the time is the host's.

On a machine without a GPU, or with ``--cpu-side``, only the CPU side of tilevm's launch is measured: the
binder, the lookup, the launch's checks and the values it would pass, on CPU tensors with the executor
replaced by nothing (the SIMT interpreter would dominate), and no driver call; with ``--cpu-side`` Triton and
torch still launch on the GPU beside it, which compares tilevm's Python part with Triton's whole launch on
the same host. Without a GPU torch's add runs on the CPU and Triton is left out.

    python benchmarks/launch_overhead.py [--cpu-side]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import torch

import tilevm as tv
from tilevm.runtime import launcher

LAUNCHES = 2000
REPEATS = 15
SIZE = 4096
BLOCK = 1024


@tv.kernel(num_warps=4)
def add3(a: tv.Tensor, b: tv.Tensor, c: tv.Tensor, out: tv.Tensor, BLOCK: tv.constexpr):
    start = tv.block_idx() * BLOCK
    x = tv.load_global(a, offsets=[start], shape=[BLOCK])
    y = tv.load_global(b, offsets=[start], shape=[BLOCK])
    z = tv.load_global(c, offsets=[start], shape=[BLOCK])
    tv.store_global(out, x + y + z, offsets=[start])


def per_launch_us(
    launch: Callable[[], None], synchronize: Callable[[], None], launches: int = LAUNCHES
) -> float:
    """The median over ``REPEATS`` of the host time of one launch, in µs, timed over ``launches`` in a row."""
    launch()
    synchronize()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter_ns()
        for _ in range(launches):
            launch()
        synchronize()
        times.append((time.perf_counter_ns() - start) / launches / 1e3)
    return statistics.median(times)


def triton_launch(a, b, c, out) -> Callable[[], None] | None:
    """A launch of the same sum written in Triton, or None without Triton."""
    try:
        import triton
        import triton.language as tl
    except ImportError:
        return None

    @triton.jit
    def add3_triton(a, b, c, out, n, BLOCK: tl.constexpr):
        offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offsets < n
        x = (
            tl.load(a + offsets, mask=mask)
            + tl.load(b + offsets, mask=mask)
            + tl.load(c + offsets, mask=mask)
        )
        tl.store(out + offsets, x, mask=mask)

    grid = (triton.cdiv(SIZE, BLOCK),)
    return lambda: add3_triton[grid](a, b, c, out, SIZE, BLOCK=BLOCK)


def main() -> None:
    gpu = torch.cuda.is_available()
    cpu_side = "--cpu-side" in sys.argv[1:] or not gpu
    device = "cuda" if gpu else "cpu"
    generator = torch.Generator().manual_seed(0)
    a, b, c = (torch.randn(SIZE, generator=generator).to(device) for _ in range(3))
    out = torch.full((SIZE,), float("nan"), device=device)
    ours = [tensor.cpu() for tensor in (a, b, c, out)] if cpu_side else [a, b, c, out]
    grid = (tv.cdiv(SIZE, BLOCK),)
    synchronize = torch.cuda.synchronize if gpu else (lambda: None)
    if cpu_side:
        launcher.CpuLaunch.execute = lambda self, grid, values: None  # the CPU side only
    else:
        add3[grid](*ours, BLOCK=BLOCK)
        torch.testing.assert_close(out, a + b + c)
    host = f"{torch.cuda.get_device_name()}'s host" if gpu else "no GPU"
    scope = "tilevm: the CPU side of a launch only (no executor, no driver call)" if cpu_side else "host time"
    print(f"# {host}, torch {torch.__version__}; {scope}")
    rows = [
        (
            "tilevm, cached launch (binder + lookup + launch)",
            lambda: add3[grid](*ours, BLOCK=BLOCK),
            LAUNCHES,
        ),
        (
            "tilevm, slow path (bind, describe, look up, launch)",
            lambda: add3.launch_slowly(grid, tuple(ours), {"BLOCK": BLOCK}),
            LAUNCHES // 10,
        ),
        ("torch.add(a, b, out=c)", lambda: torch.add(a, b, out=out), LAUNCHES),
    ]
    triton = triton_launch(a, b, c, out) if gpu else None
    if triton is not None:
        rows.insert(2, ("Triton, cached launch (same tensors + n)", triton, LAUNCHES))
    print("| launch | µs per launch (median) |")
    print("| --- | ---: |")
    for name, launch, launches in rows:
        print(f"| {name} | {per_launch_us(launch, synchronize, launches):.2f} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
