"""How the autotuner times a candidate on the GPU: CUDA events around each call, the median of several calls
after a warm-up, with the L2 cache flushed before each call by writing a buffer twice its size (so that the
weights are read from device memory, as they are in a model where other layers ran in between).

>>> callable(gpu_time_us)
True
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch

__all__ = ["gpu_time_us", "l2_flush_bytes"]

#: the L2 size assumed where torch does not report it (an H100 has 50 MiB)
_DEFAULT_L2_BYTES = 50 * 2**20


def l2_flush_bytes(device: torch.device) -> int:
    """The size of a buffer whose writing evicts everything from ``device``'s L2 cache: twice the L2."""
    properties = torch.cuda.get_device_properties(device)
    return 2 * max(getattr(properties, "L2_cache_size", 0), _DEFAULT_L2_BYTES)


def gpu_time_us(function: Callable[[], object], *, warmup: int = 3, repeats: int = 15) -> float:
    """The median GPU time of ``function()`` in µs, on torch's current CUDA device and stream. The first call
    (which compiles and loads the kernel) and ``warmup`` more are not timed."""
    device = torch.device("cuda", torch.cuda.current_device())
    flush = torch.empty(l2_flush_bytes(device), dtype=torch.uint8, device=device)
    for _ in range(1 + warmup):
        function()
    events = [
        (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeats)
    ]
    for start, end in events:
        flush.fill_(0)
        start.record()
        function()
        end.record()
    torch.cuda.synchronize(device)
    return statistics.median(start.elapsed_time(end) for start, end in events) * 1e3
