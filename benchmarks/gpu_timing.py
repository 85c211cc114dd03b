"""Timing on the GPU, shared by the benchmarks: median kernel time with the L2 cache flushed, eager wall time
per call, and the copy bandwidth that bounds a memory-bound kernel.

Kernel time is ``tilevm.autotune``'s timer: the median of CUDA events around each call, a buffer of twice the
L2 written between calls so that no input stays in L2, and each call queued behind a GPU sleep so that the
host's launch time is not counted.
Eager wall time is what a Python caller pays per call: many calls back to back, one synchronisation at the
end, divided by the number of calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

__all__ = ["copy_bandwidth", "copy_time_us", "eager_wall_us", "gpu_time_us", "load_example"]


def gpu_time_us(function: Callable[[], object], warmup_ms: int = 25, repeat_ms: int = 200) -> float:
    """The median GPU time of ``function()`` in µs: ``tilevm.autotune``'s timer (L2 flushed before each call,
    each call queued behind a GPU sleep so that the host's launch time is not counted), with as many calls as
    fit in about ``repeat_ms`` after about ``warmup_ms`` of warm-up."""
    from tilevm.autotune.timing import gpu_time_us as timed

    estimate = max(timed(function, warmup=0, repeats=3), 1.0)
    warmup = max(1, min(100, int(warmup_ms * 1e3 / estimate)))
    repeats = max(5, min(1000, int(repeat_ms * 1e3 / (estimate + 100.0))))  # + the flush and the sleep
    return timed(function, warmup=warmup, repeats=repeats)


def eager_wall_us(function: Callable[[], object], calls: int = 300) -> float:
    """Host wall time per call of ``function()`` launched back to back, in µs (one sync at the end)."""
    function()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        function()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / calls * 1e6


def copy_time_us(nbytes: int) -> float:
    """The median time of a device-to-device copy of ``nbytes`` bytes (a kernel's practical floor)."""
    source = torch.empty(nbytes, dtype=torch.uint8, device="cuda").random_()
    destination = torch.empty_like(source)
    return gpu_time_us(lambda: destination.copy_(source))


def copy_bandwidth(nbytes: int = 2**31) -> float:
    """Bytes per second that a large copy moves, counting bytes read and bytes written."""
    return 2 * nbytes / (copy_time_us(nbytes) * 1e-6)


def load_example(name: str) -> object:
    """The module ``examples/<name>.py`` (its kernel and helpers), imported by path."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parent.parent / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
