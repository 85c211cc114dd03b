"""The scratch memory of split-K launches: a float32 workspace that holds the blocks' partial tiles and the
int32 tile counters the blocks draw tickets from.

The kernel leaves every counter at zero when it ends (the last block of a tile resets it), so a stream's
counters are zero between its launches and one pair of buffers serves every launch on a stream, in stream
order. Two streams never share buffers: launches that may run at the same time never draw tickets from one
counter. Under CUDA graph capture a new buffer comes from the graph's memory pool and its zeroing is a node
of the graph, run before the graph's first launch; if the same stream later launches outside the graph,
the buffer is zeroed then, once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["split_buffers"]


@dataclass
class _Buffers:
    workspace: torch.Tensor  # float32, flat
    counters: torch.Tensor  # int32, flat, zero between launches
    captured: bool  # made during graph capture: zeroed only by the graph so far


_BUFFERS: dict[tuple[torch.device, int], _Buffers] = {}
_raw_stream = getattr(
    torch._C, "_cuda_getCurrentRawStream", lambda index: torch.cuda.current_stream(index).cuda_stream
)
_capturing = getattr(torch._C, "_cuda_isCurrentStreamCapturing", torch.cuda.is_current_stream_capturing)


def split_buffers(device: torch.device, partials: int, tiles: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A float32 workspace of at least ``partials`` elements and ``tiles`` zero int32 counters for a
    launch on ``device``'s current stream."""
    # torch's raw getters: the public ones build a Stream object and resolve the device at every call (the
    # hot path of every split-K launch)
    key = (device, _raw_stream(torch.cuda.current_device() if device.index is None else device.index))
    capturing = _capturing()
    buffers = _BUFFERS.get(key)
    if buffers is None or buffers.workspace.numel() < partials or buffers.counters.numel() < tiles:
        size = max(partials, buffers.workspace.numel() if buffers else 0)
        count = max(tiles, buffers.counters.numel() if buffers else 0)
        buffers = _Buffers(
            workspace=torch.empty(size, dtype=torch.float32, device=device),
            counters=torch.zeros(count, dtype=torch.int32, device=device),
            captured=capturing,
        )
        _BUFFERS[key] = buffers
    elif buffers.captured and not capturing:
        buffers.counters.zero_()
        buffers.captured = False
    return buffers.workspace, buffers.counters
