"""``quantized_matmul``: ``x @ W.T (+ bias)`` for a `QuantizedWeight` ``W``, on any leading shape of ``x``.

The weight's tensors were checked when it was made (`QuantizedWeight`), so a call checks ``x`` and the bias
only, and launches through the weight's cached launch (``host.cached_launch``): its configuration, plan and
bound tensors found with one dict lookup.
"""

from __future__ import annotations

import torch

from tilevm.ops.qgemm.config import PrefillConfig, QGemmConfig
from tilevm.ops.qgemm.host import QGemmLaunch, cached_launch
from tilevm.ops.quantization import QuantizedWeight
from tilevm.ops.tuning import tuned_config

__all__ = ["quantized_matmul", "quantized_matmul_once"]


def quantized_matmul(
    x: torch.Tensor,
    qweight: QuantizedWeight,
    bias: torch.Tensor | None = None,
    config: QGemmConfig | PrefillConfig | None = None,
) -> torch.Tensor:
    """``x [..., K] @ W.T (+ bias)`` -> ``[..., N]`` in ``qweight.compute_dtype`` (``x``'s dtype), with
    ``W = qweight``'s ``[N, K]`` weight: the GPU kernel on CUDA tensors, the SIMT interpreter on CPU ones.
    ``config`` overrides the autotuner's choice (``tilevm.ops.tuning``; ``default_config`` on the CPU)."""
    return _matmul(x, qweight, bias, config, keep=True)


def quantized_matmul_once(
    x: torch.Tensor, qweight: QuantizedWeight, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``quantized_matmul(x, qweight, bias)`` for a weight made for this call only (the custom op makes one
    from its tensors at every call): the launch is not kept by the weight, since none would use it again
    (``Kernel.partial`` compiles a binder)."""
    return _matmul(x, qweight, bias, None, keep=False)


def _matmul(
    x: torch.Tensor,
    qweight: QuantizedWeight,
    bias: torch.Tensor | None,
    config: QGemmConfig | PrefillConfig | None,
    keep: bool,
) -> torch.Tensor:
    if not isinstance(qweight, QuantizedWeight):
        raise ValueError(f"qweight must be a QuantizedWeight, got {type(qweight).__name__}")
    n, k = qweight.shape
    if not isinstance(x, torch.Tensor) or not x.shape or x.shape[-1] != k:
        shape = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a tensor [..., K] with K = {k} (qweight's in_features), got {shape}")
    if x.dtype != qweight.compute_dtype:
        raise ValueError(f"x must have qweight's compute dtype {qweight.compute_dtype}, got {x.dtype}")
    device = qweight.packed.device
    if x.device != device:
        raise ValueError(f"x is on {x.device}, qweight on {device}: they must be on one device")
    if bias is not None:
        _check_bias(bias, qweight)
    flat = x.dim() == 2
    rows = x if flat and x.is_contiguous() else x.reshape(-1, k).contiguous()
    if rows.shape[0] == 0:
        return x.new_empty(*x.shape[:-1], n)
    if config is None and keep:
        launch = cached_launch(rows, qweight, bias)
    elif config is None:
        launch = QGemmLaunch.of(
            qweight, bias is not None, tuned_config(rows, qweight, bias), persistent=False
        )
    elif isinstance(config, (QGemmConfig, PrefillConfig)):
        launch = QGemmLaunch.of(qweight, bias is not None, config, persistent=False)
    else:
        raise ValueError(f"config must be a QGemmConfig or a PrefillConfig, got {type(config).__name__}")
    out = launch.launch(rows, bias, None)
    return out if flat else out.view(*x.shape[:-1], n)


def _check_bias(bias: object, qweight: QuantizedWeight) -> None:
    n = qweight.shape[0]
    if not isinstance(bias, torch.Tensor) or bias.dtype != qweight.compute_dtype or bias.shape != (n,):
        got = f"a {bias.dtype} tensor {list(bias.shape)}" if isinstance(bias, torch.Tensor) else repr(bias)
        raise ValueError(f"bias must be a {qweight.compute_dtype} tensor of shape [{n}], got {got}")
    if bias.device != qweight.packed.device:
        raise ValueError(f"bias is on {bias.device}, qweight on {qweight.packed.device}: one device")
    if not bias.is_contiguous():
        raise ValueError("bias must be contiguous")
