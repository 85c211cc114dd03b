"""Timing on the GPU, shared by the benchmarks: median kernel time with the L2 cache flushed, eager wall time
per call, and the copy bandwidth that bounds a memory-bound kernel.

Kernel time is the median of CUDA events around each call, a 256 MB buffer written between calls so that no
input stays in L2, and each call queued behind a GPU sleep so that the host's launch time is not counted.
Eager wall time is what a Python caller pays per call: many calls back to back, one synchronisation at the
end, divided by the number of calls.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable

import torch

__all__ = ["copy_bandwidth", "copy_time_us", "eager_wall_us", "gpu_time_us", "load_example"]


def gpu_time_us(function: Callable[[], object], warmup_ms: int = 25, repeat_ms: int = 200) -> float:
    """The median GPU time of ``function()`` in µs, L2 flushed before each call.

    CUDA events around a call also time the GPU's wait for the host to launch it, when the queue runs dry
    (a slow host path would count as kernel time). So each call is queued behind a GPU sleep that outlasts
    the host's time to launch it: the start event fires when the launch is already queued."""
    function()
    torch.cuda.synchronize()
    host_us = _host_time_us(function)
    sleep_cycles = int(_cycles_per_us() * (2 * host_us + 20))
    flush = torch.empty(256 * 2**20, dtype=torch.uint8, device="cuda")
    estimate = max(_event_time_us(function), 1.0)
    warmup = max(1, int(warmup_ms * 1e3 / estimate))
    repeats = max(5, min(1000, int(repeat_ms * 1e3 / (estimate + 100.0))))
    times = []
    for index in range(warmup + repeats):
        flush.zero_()
        torch.cuda._sleep(sleep_cycles)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        function()
        end.record()
        if index >= warmup:
            times.append((start, end))
    torch.cuda.synchronize()
    return statistics.median(start.elapsed_time(end) for start, end in times) * 1e3


def _host_time_us(function: Callable[[], object], calls: int = 20) -> float:
    """The host's time to make one call (launches queue up; no synchronisation inside)."""
    torch.cuda._sleep(int(_cycles_per_us() * 200 * calls))  # the GPU stays busy: the queue never blocks
    start = time.perf_counter()
    for _ in range(calls):
        function()
    elapsed = (time.perf_counter() - start) / calls * 1e6
    torch.cuda.synchronize()
    return elapsed


def _event_time_us(function: Callable[[], object]) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    function()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) * 1e3


@functools.cache
def _cycles_per_us() -> float:
    """Clock cycles of ``torch.cuda._sleep`` per µs, measured once."""
    cycles = 10_000_000
    torch.cuda._sleep(cycles // 10)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    torch.cuda._sleep(cycles)
    end.record()
    torch.cuda.synchronize()
    return cycles / (start.elapsed_time(end) * 1e3)


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
