"""What the GPU a launch runs on offers the quantized GEMM's configurations (``config.default_config``)."""

from __future__ import annotations

import functools

import torch

__all__ = ["runs_wgmma"]


def runs_wgmma(device: torch.device) -> bool:
    """Whether ``device`` is a GPU whose code has the warpgroups' ``wgmma`` (sm_90a: compute capability
    9.0), where the prefill kernel runs on them (``default_config``'s ``warpgroups``)."""
    if device.type != "cuda":
        return False
    return _index_runs_wgmma(torch.cuda.current_device() if device.index is None else device.index)


@functools.cache
def _index_runs_wgmma(index: int) -> bool:
    from tilevm.codegen.targets import TARGETS  # the driver's bindings: only for a GPU
    from tilevm.runtime.cuda.device import properties, target_for

    return TARGETS[target_for(properties(index).capability)].has("wgmma")
