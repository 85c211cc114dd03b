"""`quantize_weight`: a float weight ``[N, K]`` to a `QuantizedWeight` (codes, scales, zero points, global
scale, then the kernel's pre-layout), vectorised on the weight's own device.

Codes are rounded to nearest (ties to even) against the scales as stored, in float64 (a float64 quotient
of a float32 weight by a float16 scale lands on a rounding midpoint only when the exact quotient is one,
so every rounding decision is the exact one). Rows are processed in chunks to bound the float64
temporaries. See `tilevm.ops.quantization.scales` for the scale of each format.

>>> import torch, tilevm.ops as ops
>>> w = torch.tensor([[0.5, -1.0, 0.25, 2.0] * 8])
>>> q = ops.quantize_weight(w, "int4", group_size=32)
>>> q.scales.tolist()  # 2 / 7 rounded to float16
[[0.28564453125]]
>>> q.codes()[0, :4].tolist(), q.dequantize(torch.float64)[0, :4].tolist()  # -1.0 / scale = -3.5009
([2, 12, 1, 7], [0.5712890625, -1.142578125, 0.28564453125, 1.99951171875])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

import tilevm as tv
from tilevm.ops.qgemm.prelayout import pack
from tilevm.ops.quantization import codecs
from tilevm.ops.quantization.formats import COMPUTE_DTYPES, PRESETS, WeightFormat, parse_dtype
from tilevm.ops.quantization.scales import Scales, global_scale, group_scales
from tilevm.ops.quantization.weight import QuantizedWeight

__all__ = ["METHODS", "QuantizedCodes", "quantize_codes", "quantize_weight"]

#: "absmax": round to nearest against the absmax scale; "mse": the clipped scale of least squared error
METHODS = ("absmax", "mse")
#: the MSE search's clipping factors for continuous scales (absmax first, so ties keep it) ...
_MSE_CLIPS = tuple(1 - 0.025 * step for step in range(21))
#: ... and for e8m0's powers of two: the OCP exponent, one above (no clipping), one below
_MSE_E8M0_CLIPS = (1.0, 2.0, 0.5)
#: weight elements per chunk of rows: a few float64 temporaries of 128 MiB each
_CHUNK_ELEMENTS = 1 << 24
_WEIGHT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


@dataclass(frozen=True)
class QuantizedCodes:
    """A quantized weight before the pre-layout: ``codes`` (uint8 ``[N, K]``), ``scales`` and ``zeros``
    (``[K // group_size, N]``) and ``global_scale``, as `QuantizedWeight` defines them."""

    codes: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor | None
    global_scale: torch.Tensor | None


def quantize_weight(
    w: torch.Tensor,
    dtype: tv.DType | str | WeightFormat,
    group_size: int | None = 128,
    *,
    scale_dtype: tv.DType | str | None = None,
    zero_point: bool | None = None,
    compute_dtype: torch.dtype | None = None,
    method: str = "absmax",
) -> QuantizedWeight:
    """Quantize ``w [N, K]`` (an ``nn.Linear.weight``: float16, bfloat16 or float32, finite) for
    `tilevm.ops.quantized_matmul`, on ``w``'s device.

    - ``dtype``: the code dtype (int1..int8, uint1..uint8, float3_e1m1 .. float8_e5m2, as a tilevm DType
      or a name), a preset name (``"mxfp4"``, ``"mxfp6_e3m2"``, ``"mxfp6_e2m3"``, ``"mxfp8_e4m3"``,
      ``"mxfp8_e5m2"``, ``"nvfp4"``) or a `WeightFormat`. A preset or a format fixes the group size, scale
      dtype and zero points: leave those arguments out (or pass the same values).
    - ``group_size``: 16, 32, 64 or 128 values of k per scale, or None for one scale per output channel.
    - ``scale_dtype``: float16 / bfloat16 (the compute dtype, the default), or e8m0 / ue4m3 block scales
      for float codes (a ue4m3 weight also gets a float32 global scale).
    - ``zero_point``: zero points; the uint formats have them, the others do not (the default chooses).
    - ``compute_dtype``: X's and Y's dtype, torch.float16 or torch.bfloat16; by default the compute-dtype
      scale dtype if one was given, else ``w``'s dtype, and float16 for a float32 ``w``.
    - ``method``: "absmax" (round to nearest against the absmax scale of each group) or "mse" (per group,
      the clipping of the range, among a grid of factors, with the least squared error; never worse).

    >>> import torch
    >>> q = quantize_weight(torch.randn(64, 256), "nvfp4")
    >>> q.format
    WeightFormat(float4_e2m1, group_size=16, scale_dtype=ue4m3, global_scale)
    >>> q.scales.shape, q.scales.dtype, q.global_scale.dtype
    (torch.Size([16, 64]), torch.uint8, torch.float32)
    """
    _check_weight(w)
    if method not in METHODS:
        raise ValueError(f"method={method!r} must be one of {METHODS}")
    requested = _requested_format(dtype, group_size, scale_dtype, zero_point)
    compute = _compute_dtype(w, requested, compute_dtype)
    fmt = requested.resolve(w.shape[1], compute)
    quantized = quantize_codes(w, fmt, compute, method)
    return QuantizedWeight(
        format=fmt,
        shape=(w.shape[0], w.shape[1]),
        packed=pack(quantized.codes, fmt.bits),
        scales=quantized.scales,
        zeros=quantized.zeros,
        global_scale=quantized.global_scale,
        compute_dtype=compute,
    )


def quantize_codes(
    w: torch.Tensor, fmt: WeightFormat, compute_dtype: torch.dtype, method: str = "absmax"
) -> QuantizedCodes:
    """The codes, scales, zero points and global scale of ``w [N, K]`` in the format ``fmt``, resolved for
    ``w`` and ``compute_dtype`` (`quantize_weight` checks the arguments, then packs the codes)."""
    n, k = w.shape
    num_groups = k // fmt.group_size
    global_value = global_scale(w, fmt)
    global_float64 = None if global_value is None else global_value.to(torch.float64)
    clips = (1.0,) if method == "absmax" else _MSE_E8M0_CLIPS if fmt.scale_dtype == tv.e8m0 else _MSE_CLIPS
    codes = torch.empty((n, k), dtype=torch.uint8, device=w.device)
    scale_storage = torch.uint8 if fmt.scale_dtype in (tv.e8m0, tv.ue4m3) else compute_dtype
    scales = torch.empty((num_groups, n), dtype=scale_storage, device=w.device)
    zeros = torch.empty((num_groups, n), dtype=compute_dtype, device=w.device) if fmt.has_zeros else None
    rows = max(1, _CHUNK_ELEMENTS // k)
    for start in range(0, n, rows):
        x = w[start : start + rows].to(torch.float64).reshape(-1, num_groups, fmt.group_size)
        chunk_codes, chunk_scales = _best_codes(x, fmt, clips, global_float64)
        codes[start : start + rows] = chunk_codes.reshape(-1, k)
        scales[:, start : start + rows] = chunk_scales.stored.T
        if zeros is not None:
            zeros[:, start : start + rows] = chunk_scales.zero[..., 0].T.to(compute_dtype)  # small integers
    return QuantizedCodes(codes, scales, zeros, global_value)


def _group_codes(x: torch.Tensor, fmt: WeightFormat, scales: Scales) -> torch.Tensor:
    quotient = x / scales.value
    return codecs.encode(quotient if scales.zero is None else quotient + scales.zero, fmt.dtype)


def _squared_error(x: torch.Tensor, codes: torch.Tensor, fmt: WeightFormat, scales: Scales) -> torch.Tensor:
    values = codecs.decode(codes, fmt.dtype)
    if scales.zero is not None:
        values = values - scales.zero
    return (values * scales.value - x).square().sum(-1)


def _best_codes(
    x: torch.Tensor, fmt: WeightFormat, clips: tuple[float, ...], global_value: torch.Tensor | None
) -> tuple[torch.Tensor, Scales]:
    """The codes and scales of the groups ``x``, for the clipping factor of least squared error per group
    (the first factor wins ties)."""
    best_scales = group_scales(x, fmt, clips[0], global_value)
    best_codes = _group_codes(x, fmt, best_scales)
    if len(clips) == 1:
        return best_codes, best_scales
    best_error = _squared_error(x, best_codes, fmt, best_scales)
    for clip in clips[1:]:
        scales = group_scales(x, fmt, clip, global_value)
        codes = _group_codes(x, fmt, scales)
        error = _squared_error(x, codes, fmt, scales)
        better = error < best_error
        best_error = torch.where(better, error, best_error)
        best_codes = torch.where(better[..., None], codes, best_codes)
        best_scales = _where(better, scales, best_scales)
    return best_codes, best_scales


def _where(condition: torch.Tensor, chosen: Scales, other: Scales) -> Scales:
    zero = None if chosen.zero is None else torch.where(condition[..., None], chosen.zero, other.zero)
    stored = torch.where(condition, chosen.stored, other.stored)
    return Scales(stored, torch.where(condition[..., None], chosen.value, other.value), zero)


def _check_weight(w: object) -> None:
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"w must be a torch.Tensor [N, K], not {type(w).__name__}")
    if w.dim() != 2 or w.shape[0] == 0 or w.shape[1] == 0:
        raise ValueError(
            f"w must be a 2-D tensor [N, K] (out_features, in_features), got shape {list(w.shape)}"
        )
    if w.dtype not in _WEIGHT_DTYPES:
        raise ValueError(f"w must be float16, bfloat16 or float32, not {w.dtype}")
    if not bool(torch.isfinite(w).all()):
        raise ValueError("w has NaN or infinite values; only finite weights can be quantized")


def _requested_format(
    dtype: tv.DType | str | WeightFormat,
    group_size: int | None,
    scale_dtype: tv.DType | str | None,
    zero_point: bool | None,
) -> WeightFormat:
    """The format that ``dtype`` and the other arguments ask for (group size and scale dtype possibly
    still to be resolved); a preset or a WeightFormat must not be contradicted by the other arguments."""
    fixed = (
        PRESETS.get(dtype) if isinstance(dtype, str) else dtype if isinstance(dtype, WeightFormat) else None
    )
    if fixed is None:
        return WeightFormat(dtype, group_size, scale_dtype, zero_point)
    given = {
        "group_size": (group_size, 128),
        "scale_dtype": (scale_dtype, None),
        "zero_point": (zero_point, None),
    }
    own = {"group_size": fixed.group_size, "scale_dtype": fixed.scale_dtype, "zero_point": fixed.has_zeros}
    for name, (value, default) in given.items():
        parsed = (parse_dtype(value) or value) if name == "scale_dtype" else value
        if parsed != default and parsed != own[name]:
            raise ValueError(
                f"dtype={dtype!r} fixes {name}={own[name]}, but {name}={value!r} was given: leave it out, or "
                "pass a code dtype to choose it"
            )
    return fixed


def _compute_dtype(w: torch.Tensor, fmt: WeightFormat, compute_dtype: torch.dtype | None) -> torch.dtype:
    if compute_dtype is not None:
        return compute_dtype  # checked by fmt.resolve
    for torch_dtype, scale in COMPUTE_DTYPES.items():
        if fmt.scale_dtype == scale:
            return torch_dtype
    return w.dtype if w.dtype in COMPUTE_DTYPES else torch.float16
