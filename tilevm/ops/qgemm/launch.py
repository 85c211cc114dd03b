"""``qgemm``: the kernel-level entry point of the quantized GEMM on raw tensors: validation (before anything
launches), the choice of a configuration, and the launch.

``W[n, k] = (value(code[n, k]) - zeros[g, n]) * scales[g, n] * global_scale`` with ``g = k // group_size``;
``qgemm`` returns ``x @ W.T + bias`` in ``x``'s dtype (float32 accumulation, one rounding at the end).
"""

from __future__ import annotations

import torch

import tilevm as tv
from tilevm.ops.qgemm import prelayout
from tilevm.ops.qgemm.config import PrefillConfig, QGemmConfig, default_config
from tilevm.ops.qgemm.gpu import runs_wgmma
from tilevm.ops.qgemm.host import QGemmLaunch
from tilevm.ops.qgemm.kernel import plan_error

__all__ = ["CODE_DTYPES", "SCALE_DTYPES", "qgemm"]

#: every code dtype the kernel decodes: the integers of 1 to 8 bits and the floats of 3 to 8
CODE_DTYPES: tuple[tv.DType, ...] = tuple(
    tv.int_type(bits, signed) for signed in (True, False) for bits in range(1, 9)
) + tuple(dtype for dtype in tv.low_bit_floats() if dtype.nbits >= 3)
_CODE_DTYPE_SET = frozenset(CODE_DTYPES)
#: the scale dtypes, and the torch dtype their tensors have (e8m0 and ue4m3 as their uint8 codes)
SCALE_DTYPES: dict[tv.DType, torch.dtype] = {
    tv.float16: torch.float16,
    tv.bfloat16: torch.bfloat16,
    tv.e8m0: torch.uint8,
    tv.ue4m3: torch.uint8,
}
_COMPUTE = {torch.float16: tv.float16, torch.bfloat16: tv.bfloat16}
GROUP_SIZES = (16, 32, 64, 128)


def qgemm(
    x: torch.Tensor,
    packed: torch.Tensor,
    scales: torch.Tensor,
    *,
    code_dtype: tv.DType,
    n: int,
    group_size: int,
    scale_dtype: tv.DType | None = None,
    zeros: torch.Tensor | None = None,
    global_scale: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    config: QGemmConfig | PrefillConfig | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``x [M, K] @ W.T (+ bias)`` for the ``n x K`` weight whose codes ``prelayout.pack`` stored in
    ``packed``; ``scales`` and ``zeros`` are ``[K // group_size, n]`` (``group_size == K``: per channel),
    ``scale_dtype`` the scales' dtype (``e8m0`` and ``ue4m3`` scales are their uint8 codes; by default the
    dtype of ``scales``), ``global_scale`` a float32 scalar tensor. Returns ``[M, n]`` in ``x``'s dtype,
    written into ``out`` when given."""
    _check_x(x, out)
    m, k = x.shape
    if code_dtype not in _CODE_DTYPE_SET:
        raise ValueError(
            f"code_dtype must be an integer of 1 to 8 bits or a float of 3 to 8, got {code_dtype!r}"
        )
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    bits = code_dtype.nbits
    expected = (
        -(-n // prelayout.N_GROUP),
        -(-k // prelayout.chunk_k(bits)),
        prelayout.loads_per_chunk(bits),
        32,
        16,
    )
    _check_tensor("packed", packed, torch.uint8, expected, x.device)
    scale_dtype = _check_groups(x, scales, zeros, code_dtype, scale_dtype, n, group_size)
    if global_scale is not None:
        _check_tensor("global_scale", global_scale, torch.float32, (), x.device)
    if bias is not None:
        _check_tensor("bias", bias, x.dtype, (n,), x.device)
    if out is not None:
        _check_tensor("out", out, x.dtype, (m, n), x.device)
    config = config or default_config(m, n, k, bits, x.device.type, group_size, runs_wgmma(x.device))
    if not isinstance(config, (QGemmConfig, PrefillConfig)):
        raise ValueError(f"config must be a QGemmConfig or a PrefillConfig, got {type(config).__name__}")
    # the prefill kernel scales the weights: its sub-steps need not hold whole groups
    error = plan_error(bits, config.chunks, group_size, k) if isinstance(config, QGemmConfig) else None
    if error:
        raise ValueError(f"config: {error}")
    return _launch(
        x, packed, scales, zeros, global_scale, bias, out, code_dtype, scale_dtype, n, group_size, config
    )


def _launch(
    x: torch.Tensor,
    packed: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None,
    global_scale: torch.Tensor | None,
    bias: torch.Tensor | None,
    out: torch.Tensor | None,
    code_dtype: tv.DType,
    scale_dtype: tv.DType,
    n: int,
    group_size: int,
    config: QGemmConfig | PrefillConfig,
) -> torch.Tensor:
    shape = (n, x.shape[1])
    launch = QGemmLaunch(
        packed,
        scales,
        zeros,
        global_scale,
        bias is not None,
        code_dtype,
        scale_dtype,
        shape,
        group_size,
        config,
    )
    return launch.launch(x, bias, out)


def _check_x(x: object, out: object) -> None:
    if not isinstance(x, torch.Tensor) or x.dtype not in _COMPUTE or x.dim() != 2:
        raise ValueError(f"x must be a float16 or bfloat16 tensor [M, K], got {_describe(x)}")
    if not x.is_contiguous():
        raise ValueError("x must be contiguous (its rows are read 16 bytes at a time)")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"x must have at least one row and one column, got shape {list(x.shape)}")


def _check_groups(
    x: torch.Tensor,
    scales: object,
    zeros: object,
    code_dtype: tv.DType,
    scale_dtype: tv.DType | None,
    n: int,
    group_size: object,
) -> tv.DType:
    """Checks the group size, the scales and the zero points; returns the scales' dtype."""
    k = x.shape[1]
    if not isinstance(group_size, int) or (group_size != k and group_size not in GROUP_SIZES):
        raise ValueError(
            f"group_size must be one of {GROUP_SIZES} or K = {k} (per channel), got {group_size!r}"
        )
    if k % group_size:
        raise ValueError(f"group_size {group_size} must divide K = {k}")
    groups = k // group_size
    scale_dtype = _scale_dtype(scales, scale_dtype)
    _check_tensor("scales", scales, SCALE_DTYPES[scale_dtype], (groups, n), x.device)
    if scale_dtype in (tv.float16, tv.bfloat16) and scales.dtype != x.dtype:
        raise ValueError(f"scales must have x's dtype {x.dtype}, got {scales.dtype}")
    if zeros is not None:
        if code_dtype.kind != "uint":
            raise ValueError(f"zeros go with uint codes, not {code_dtype.name}")
        _check_tensor("zeros", zeros, x.dtype, (groups, n), x.device)
    return scale_dtype


def _scale_dtype(scales: object, scale_dtype: tv.DType | None) -> tv.DType:
    if scale_dtype is None:
        by_torch = {torch.float16: tv.float16, torch.bfloat16: tv.bfloat16}
        if not isinstance(scales, torch.Tensor) or scales.dtype not in by_torch:
            raise ValueError(
                f"scale_dtype is needed for scales that are not float16 or bfloat16, got {_describe(scales)}"
            )
        return by_torch[scales.dtype]
    if scale_dtype not in SCALE_DTYPES:
        names = ", ".join(dtype.name for dtype in SCALE_DTYPES)
        raise ValueError(f"scale_dtype must be one of {names}, got {scale_dtype!r}")
    return scale_dtype


def _check_tensor(
    name: str, value: object, dtype: torch.dtype, shape: tuple[int, ...], device: torch.device
) -> None:
    if not isinstance(value, torch.Tensor) or value.dtype != dtype or tuple(value.shape) != shape:
        raise ValueError(f"{name} must be a {dtype} tensor of shape {list(shape)}, got {_describe(value)}")
    if value.device != device:
        raise ValueError(f"{name} is on {value.device}, x on {device}: they must be on one device")
    if not value.is_contiguous():
        raise ValueError(f"{name} must be contiguous")


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {list(value.shape)}"
    return f"a {type(value).__name__}"
