"""The scale of each group, one rule per scale dtype, computed in float64 from the group's values.

Every rule takes the groups ``x [R, G, group_size]`` (float64) and a clipping factor ``clip`` (1 for
absmax; smaller values for the MSE search, which shrinks the range the scale covers), and gives `Scales`:
what is stored (in the scale dtype) and the float64 values the codes are computed with, so that the codes
are rounded against the scale exactly as the kernel will apply it.

- compute-dtype scales (float16 / bfloat16), rounded to nearest even and kept finite and non-zero:
  - int3..int8, symmetric: ``scale = absmax / qmax`` with ``qmax = 2^(b-1) - 1``.
  - int1 and int2: that rule would leave 1 and 3 levels (``qmax`` is 0 and 1), so the group's element of
    largest magnitude, ``w_ext``, goes to the most negative code instead: ``scale = -w_ext / 2^(b-1)``
    (negative when ``w_ext`` is positive). int1's levels are ``{0, w_ext}``, int2's ``{w_ext, w_ext/2, 0,
    -w_ext/2}``: ``w_ext`` is exact and every level is used.
  - uint, asymmetric with an integer zero point: ``lo = min(w, 0)``, ``hi = max(w, 0)``, ``scale = (hi -
    lo) / (2^b - 1)``, ``zero = round(-lo / scale)``; 0 is exact.
  - floats: ``scale = absmax / max_finite(format)``.
- e8m0 (OCP MX): the shared exponent ``X = floor(log2(absmax)) - emax_elem`` with ``emax_elem`` the
  exponent of the element format's largest normal, clamped to e8m0's range -127..127; scale ``2^X``.
- ue4m3 (NVFP4, with a global scale ``g``): ``absmax / max_finite(format) / g`` rounded to ue4m3.

An all-zero group gets the smallest positive scale of its dtype (its codes are all 0 whatever the scale);
a group whose scale would overflow the scale dtype gets its largest finite scale and saturating codes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

import tilevm as tv
from tilevm.ops.quantization import codecs
from tilevm.ops.quantization.formats import COMPUTE_DTYPES, WeightFormat

__all__ = ["Scales", "global_scale", "group_scales"]

#: e8m0's exponent range: codes 0..254 are 2^-127 .. 2^127 (255 is NaN)
_E8M0_MIN_EXPONENT, _E8M0_MAX_EXPONENT = -127, 127
#: the torch dtype of each compute-dtype scale
_TORCH_SCALE_DTYPES = {scale: torch_dtype for torch_dtype, scale in COMPUTE_DTYPES.items()}


@dataclass(frozen=True)
class Scales:
    """The scales of groups ``[R, G]`` as stored (``stored``: float16/bfloat16, or uint8 codes of e8m0 /
    ue4m3) and as float64 ``[R, G, 1]`` (``value``, times the global scale), with the float64 zero points
    ``[R, G, 1]`` (``zero``) of the uint formats."""

    stored: torch.Tensor
    value: torch.Tensor
    zero: torch.Tensor | None = None


def group_scales(
    x: torch.Tensor, fmt: WeightFormat, clip: float, global_value: torch.Tensor | None
) -> Scales:
    """The `Scales` of the groups ``x [R, G, group_size]`` (float64) in ``fmt`` (resolved), with the
    range shrunk by ``clip`` (1.0 for absmax) and, for ue4m3, the float64 global scale ``global_value``."""
    if fmt.scale_dtype == tv.e8m0:
        return _e8m0_scales(x, fmt.dtype, clip)
    if fmt.scale_dtype == tv.ue4m3:
        return _ue4m3_scales(x, fmt.dtype, clip, global_value)
    if fmt.has_zeros:
        return _asymmetric_scales(x, fmt, clip)
    return _symmetric_scales(x, fmt, clip)


def global_scale(w: torch.Tensor, fmt: WeightFormat) -> torch.Tensor | None:
    """The float32 global scale ``absmax(W) / (max_finite(format) * 448)`` of ue4m3 formats (NVIDIA's
    NVFP4 rule: the largest block scale then lands on ue4m3's largest value), else None. An all-zero
    weight gets 1; a tiny one at least float32's smallest normal."""
    if not fmt.has_global_scale:
        return None
    absmax = w.abs().amax().to(torch.float64)
    raw = absmax / (fmt.dtype.max_value * tv.ue4m3.max_value)
    raw = torch.where(
        absmax == 0, 1.0, raw.clamp(torch.finfo(torch.float32).tiny, torch.finfo(torch.float32).max)
    )
    return raw.to(torch.float32)


def _rounded_scale(raw: torch.Tensor, fmt: WeightFormat) -> tuple[torch.Tensor, torch.Tensor]:
    """``raw`` float64 scales rounded to the compute-dtype scale dtype, their magnitude first clamped to
    its positive finite range: (stored, value)."""
    torch_dtype = _TORCH_SCALE_DTYPES[fmt.scale_dtype]
    info = torch.finfo(torch_dtype)
    magnitude = raw.abs().clamp(info.tiny * info.eps, info.max)  # tiny * eps: the smallest subnormal
    stored = codecs.round_float64(torch.where(raw < 0, -magnitude, magnitude), torch_dtype)
    return stored, stored.to(torch.float64)[..., None]


def _symmetric_scales(x: torch.Tensor, fmt: WeightFormat, clip: float) -> Scales:
    code = fmt.dtype
    if code.is_integer and code.nbits <= 2:
        largest = x.abs().argmax(-1, keepdim=True)
        raw = -x.gather(-1, largest)[..., 0] * clip / 2 ** (code.nbits - 1)
    else:
        raw = x.abs().amax(-1) * clip / code.max_value
    stored, value = _rounded_scale(raw, fmt)
    return Scales(stored, value)


def _asymmetric_scales(x: torch.Tensor, fmt: WeightFormat, clip: float) -> Scales:
    qmax = fmt.dtype.max_value
    low = x.amin(-1).clamp(max=0) * clip
    high = x.amax(-1).clamp(min=0) * clip
    stored, value = _rounded_scale((high - low) / qmax, fmt)
    zero = torch.round(-low[..., None] / value).clamp(0, qmax)
    return Scales(stored, value, zero)


def _e8m0_scales(x: torch.Tensor, code: tv.DType, clip: float) -> Scales:
    absmax = x.abs().amax(-1) * clip
    element_emax = math.floor(math.log2(code.max_value))  # exact: max_value is a float of few bits
    _, frexp_exponent = torch.frexp(absmax)  # absmax in [2^(e - 1), 2^e): floor(log2(absmax)) = e - 1
    exponent = frexp_exponent.to(torch.int64) - 1 - element_emax
    exponent = torch.where(absmax == 0, _E8M0_MIN_EXPONENT, exponent)
    exponent = exponent.clamp(_E8M0_MIN_EXPONENT, _E8M0_MAX_EXPONENT)
    stored = (exponent - _E8M0_MIN_EXPONENT).to(torch.uint8)
    return Scales(stored, codecs.power_of_two(exponent)[..., None])


def _ue4m3_scales(x: torch.Tensor, code: tv.DType, clip: float, global_value: torch.Tensor | None) -> Scales:
    assert global_value is not None, "ue4m3 scales come with a global scale"
    raw = x.abs().amax(-1) * clip / code.max_value / global_value
    # Code 0 is ue4m3's zero: a block that small takes the smallest positive scale, code 1 (2^-9).
    stored = codecs.encode_float(raw, tv.ue4m3).clamp(min=1)
    return Scales(stored, (codecs.decode(stored, tv.ue4m3) * global_value)[..., None])
