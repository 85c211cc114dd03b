"""How the autotuner times a candidate on the GPU: CUDA events around each call, the median of several calls
after a warm-up, with the L2 cache flushed before each call by reading a buffer twice its size (so that the
weights are read from device memory, as they are in a model where other layers ran in between).

The flush reads rather than writes: a flush that writes leaves the L2 full of dirty lines, and their
write-back to device memory then runs during the timed call, which pays for traffic that is not its own
(on an H100, 11 µs more on a 49 µs kernel that reads 121 MB). After a read the L2 holds clean lines only.

Events around a call also count the GPU's wait for the host to launch it when the queue runs dry, which
would rank candidates by their host path. So each timed call is queued behind a GPU sleep that outlasts the
host's time to launch it: when the start event fires, the launch is already queued.

>>> callable(gpu_time_us)
True
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable

import torch

__all__ = ["gpu_time_us", "l2_flush_bytes"]

#: the L2 size assumed where torch does not report it (an H100 has 50 MiB)
_DEFAULT_L2_BYTES = 50 * 2**20


def l2_flush_bytes(device: torch.device) -> int:
    """The size of a buffer whose reading evicts everything from ``device``'s L2 cache: twice the L2."""
    properties = torch.cuda.get_device_properties(device)
    return 2 * max(getattr(properties, "L2_cache_size", 0), _DEFAULT_L2_BYTES)


def gpu_time_us(function: Callable[[], object], *, warmup: int = 3, repeats: int = 15) -> float:
    """The median GPU time of ``function()`` in µs, on torch's current CUDA device and stream. The first call
    (which compiles and loads the kernel) and ``warmup`` more are not timed."""
    device = torch.device("cuda", torch.cuda.current_device())
    flush = torch.empty(l2_flush_bytes(device), dtype=torch.uint8, device=device).random_()
    for _ in range(1 + warmup):
        function()
    sleep_cycles = int(_cycles_per_us(device.index) * (2 * _host_time_us(function, device) + 20))
    events = [
        (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeats)
    ]
    for start, end in events:
        flush.sum()
        torch.cuda._sleep(sleep_cycles)
        start.record()
        function()
        end.record()
    torch.cuda.synchronize(device)
    return statistics.median(start.elapsed_time(end) for start, end in events) * 1e3


def _host_time_us(function: Callable[[], object], device: torch.device, calls: int = 5) -> float:
    """The host's time to launch one call, measured while the GPU is kept busy (the queue never blocks)."""
    torch.cuda._sleep(int(_cycles_per_us(device.index) * 500 * calls))
    start = time.perf_counter()
    for _ in range(calls):
        function()
    elapsed = (time.perf_counter() - start) / calls * 1e6
    torch.cuda.synchronize(device)
    return elapsed


@functools.cache
def _cycles_per_us(device_index: int) -> float:
    """Clock cycles of ``torch.cuda._sleep`` per µs on a device, measured once."""
    cycles = 10_000_000
    torch.cuda._sleep(cycles // 10)  # the clock ramps up
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    torch.cuda._sleep(cycles)
    end.record()
    torch.cuda.synchronize(device_index)
    return cycles / (start.elapsed_time(end) * 1e3)
