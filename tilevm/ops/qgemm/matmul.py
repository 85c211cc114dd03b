"""``quantized_matmul``: ``x @ W.T (+ bias)`` for a `QuantizedWeight` ``W``, on any leading shape of ``x``.

The weight's tensors were checked when it was made (`QuantizedWeight`), so a call checks ``x`` and the bias
only, and launches through the weight's kept launch (``host.kept_launch``): its configuration, plan and
bound tensors found with one dict lookup. The checks are ordered so that the common call pays for each fact
once (``x``'s shape is read once; its device is compared with the kept launch's), and every one of them
is made before anything launches.
"""

from __future__ import annotations

import torch

from tilevm.ops.qgemm.config import PrefillConfig, QGemmConfig
from tilevm.ops.qgemm.host import QGemmLaunch, cached_launch, kept_launch
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
    if not isinstance(qweight, QuantizedWeight):
        raise ValueError(f"qweight must be a QuantizedWeight, got {type(qweight).__name__}")
    shape, rows, m = _rows(x, qweight, bias)
    if m == 0:
        return _empty(x, qweight, shape)
    launch = kept_launch(qweight, m, bias is not None) if config is None else None
    if launch is None or x.device != launch.device:
        _check_device(x, qweight)
        launch = _launch(rows, qweight, bias, config, keep=True)
    return _product(launch, shape, rows, bias)


def quantized_matmul_once(
    x: torch.Tensor, qweight: QuantizedWeight, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``quantized_matmul(x, qweight, bias)`` for a weight made for this call only (the custom op makes one
    from tensors of no registered weight): the launch is not kept by the weight, since none would use it
    again (``Kernel.partial`` compiles a binder)."""
    shape, rows, m = _rows(x, qweight, bias)
    if m == 0:
        return _empty(x, qweight, shape)
    _check_device(x, qweight)
    launch = _launch(rows, qweight, bias, None, keep=False)
    return _product(launch, shape, rows, bias)


def _rows(
    x: torch.Tensor, qweight: QuantizedWeight, bias: torch.Tensor | None
) -> tuple[torch.Size, torch.Tensor, int]:
    """``x``'s shape, ``x`` as contiguous rows ``[M, K]``, and M, after checking ``x`` (but its device) and
    the bias."""
    k = qweight.shape[1]
    shape = x.shape if isinstance(x, torch.Tensor) else None
    if not shape or shape[-1] != k:
        raise ValueError(
            f"x must be a tensor [..., K] with K = {k} (qweight's in_features), "
            f"got {list(shape) if shape is not None else type(x).__name__}"
        )
    if x.dtype != qweight.compute_dtype:
        raise ValueError(f"x must have qweight's compute dtype {qweight.compute_dtype}, got {x.dtype}")
    if bias is not None:
        _check_bias(bias, qweight)
    if x.is_contiguous():
        if len(shape) == 2:
            return shape, x, shape[0]
        rows = x.view(-1, k)
    else:
        rows = x.reshape(-1, k).contiguous()
    return shape, rows, rows.shape[0]


def _launch(
    rows: torch.Tensor,
    qweight: QuantizedWeight,
    bias: torch.Tensor | None,
    config: QGemmConfig | PrefillConfig | None,
    keep: bool,
) -> QGemmLaunch:
    """The launch for these rows: the weight's kept one (made now if it has none), or one made for the
    call (an explicit ``config``, or a weight made for the call)."""
    if config is None and keep:
        return cached_launch(rows, qweight, bias)
    if config is None:
        config = tuned_config(rows, qweight, bias)
    elif not isinstance(config, (QGemmConfig, PrefillConfig)):
        raise ValueError(f"config must be a QGemmConfig or a PrefillConfig, got {type(config).__name__}")
    return QGemmLaunch.of(qweight, bias is not None, config, persistent=False)


def _product(
    launch: QGemmLaunch, shape: torch.Size, rows: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """The launch's product of the rows, in ``x``'s leading shape."""
    out = launch.launch(rows, bias, None)
    if len(shape) == 2:
        return out
    if len(shape) == 3:  # [batch, sequence, features]: the sizes given one by one (no torch.Size slice)
        return out.view(shape[0], shape[1], launch.n)
    return out.view(*shape[:-1], launch.n)


def _empty(x: torch.Tensor, qweight: QuantizedWeight, shape: torch.Size) -> torch.Tensor:
    """The product of no rows (nothing launched)."""
    _check_device(x, qweight)
    return x.new_empty(*shape[:-1], qweight.shape[0])


def _check_device(x: torch.Tensor, qweight: QuantizedWeight) -> None:
    device = qweight.packed.device
    if x.device != device:
        raise ValueError(f"x is on {x.device}, qweight on {device}: they must be on one device")


def _check_bias(bias: object, qweight: QuantizedWeight) -> None:
    n = qweight.shape[0]
    if not isinstance(bias, torch.Tensor) or bias.dtype != qweight.compute_dtype or bias.shape != (n,):
        got = f"a {bias.dtype} tensor {list(bias.shape)}" if isinstance(bias, torch.Tensor) else repr(bias)
        raise ValueError(f"bias must be a {qweight.compute_dtype} tensor of shape [{n}], got {got}")
    if bias.device != qweight.packed.device:
        raise ValueError(f"bias is on {bias.device}, qweight on {qweight.packed.device}: one device")
    if not bias.is_contiguous():
        raise ValueError("bias must be contiguous")
