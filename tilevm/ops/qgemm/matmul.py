"""``quantized_matmul``: ``x @ W.T (+ bias)`` for a `QuantizedWeight` ``W``, on any leading shape of ``x``."""

from __future__ import annotations

import torch

from tilevm.ops.qgemm.config import QGemmConfig
from tilevm.ops.qgemm.launch import qgemm
from tilevm.ops.quantization import QuantizedWeight
from tilevm.ops.tuning import tuned_config

__all__ = ["quantized_matmul"]


def quantized_matmul(
    x: torch.Tensor,
    qweight: QuantizedWeight,
    bias: torch.Tensor | None = None,
    config: QGemmConfig | None = None,
) -> torch.Tensor:
    """``x [..., K] @ W.T (+ bias)`` -> ``[..., N]`` in ``qweight.compute_dtype`` (``x``'s dtype), with
    ``W = qweight``'s ``[N, K]`` weight: the GPU kernel on CUDA tensors, the SIMT interpreter on CPU ones.
    ``config`` overrides the autotuner's choice (``tilevm.ops.tuning``; ``default_config`` on the CPU)."""
    if not isinstance(qweight, QuantizedWeight):
        raise ValueError(f"qweight must be a QuantizedWeight, got {type(qweight).__name__}")
    n, k = qweight.shape
    if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[-1] != k:
        shape = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a tensor [..., K] with K = {k} (qweight's in_features), got {shape}")
    if x.dtype != qweight.compute_dtype:
        raise ValueError(f"x must have qweight's compute dtype {qweight.compute_dtype}, got {x.dtype}")
    if x.device != qweight.device:
        raise ValueError(f"x is on {x.device}, qweight on {qweight.device}: they must be on one device")
    rows = x.reshape(-1, k).contiguous()
    if rows.shape[0] == 0:
        return x.new_empty(*x.shape[:-1], n)
    out = qgemm(
        rows,
        qweight.packed,
        qweight.scales,
        code_dtype=qweight.format.dtype,
        n=n,
        group_size=qweight.group_size,
        scale_dtype=qweight.format.scale_dtype,
        zeros=qweight.zeros,
        global_scale=qweight.global_scale,
        bias=bias,
        config=config if config is not None else tuned_config(rows, qweight, bias),
    )
    return out.reshape(*x.shape[:-1], n)
