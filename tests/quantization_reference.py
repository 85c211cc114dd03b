"""The weight formats' definitions written out in numpy float64 with the reference codec
(`tilevm.dtypes.encode` / `decode`), one group at a time in plain formulas: what the quantization tests
compare `tilevm.ops.quantize_weight` with.

- compute-dtype scales (their magnitude clamped to the format's positive finite range first):
  int3..int8: ``scale = absmax / qmax``; int1, int2: ``scale = -w_ext / 2^(b-1)`` (w_ext: the element of
  largest magnitude); uint: ``scale = (max(w, 0) - min(w, 0)) / qmax``, ``zero = round(-min(w, 0) / scale)``;
  floats: ``scale = absmax / max_finite``; each scale rounded to the compute dtype by the codec.
- e8m0 (OCP MX v1.0, section 6.3): ``X = floor(log2(absmax)) - emax_elem``, clamped to -127..127.
- ue4m3 (NVFP4): ``g = float32(absmax(W) / (6 * 448))``, block scale ``ue4m3(absmax / 6 / g)``.
- codes: the codec's round to nearest even of ``w / scale (+ zero)``, saturated to the format's range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import tilevm as tv


@dataclass
class Reference:
    codes: np.ndarray  # uint8 [N, K]
    scales: np.ndarray  # float64 [G, N], the global scale not applied
    zeros: np.ndarray | None  # float64 [G, N]
    global_scale: float | None

    def dequantize(self, code_dtype: tv.DType, group_size: int) -> np.ndarray:
        """``(value(code) - zero) * scale * global`` in float64, values decoded by the codec."""
        n, k = self.codes.shape
        values = tv.decode(self.codes, code_dtype).astype(np.float64).reshape(n, k // group_size, group_size)
        if self.zeros is not None:
            values = values - self.zeros.T[..., None]
        weight = values * self.scales.T[..., None] * (1.0 if self.global_scale is None else self.global_scale)
        return weight.reshape(n, k)


def floor_log2(value: float) -> int:
    """floor(log2(value)) for value > 0, corrected so that 2^result <= value < 2^(result + 1) exactly."""
    exponent = math.floor(math.log2(value))
    if math.ldexp(1.0, exponent) > value:
        exponent -= 1
    if math.ldexp(1.0, exponent + 1) <= value:
        exponent += 1
    return exponent


def e8m0_exponent(absmax: float, element: tv.DType) -> int:
    """The OCP MX shared exponent of a block (``-127`` for an all-zero block)."""
    if absmax == 0:
        return -127
    return min(max(floor_log2(absmax) - floor_log2(element.max_value), -127), 127)


def compute_scale(raw: float, scale_dtype: tv.DType) -> float:
    """``raw`` rounded to float16 / bfloat16, its magnitude first clamped to the positive finite range (so
    that no scale is 0 or inf)."""
    smallest = float(tv.decode(1, scale_dtype))
    magnitude = min(max(abs(raw), smallest), float(scale_dtype.max_value))
    return float(tv.round_to_dtype(math.copysign(magnitude, raw), scale_dtype))


def group_scale(
    group: np.ndarray, code: tv.DType, scale_dtype: tv.DType, g: float | None
) -> tuple[float, float]:
    """(scale as stored, zero) of one group; the global scale ``g`` (ue4m3 only) multiplies the scale."""
    absmax = float(np.abs(group).max())
    if scale_dtype is tv.e8m0:
        return math.ldexp(1.0, e8m0_exponent(absmax, code)), 0.0
    if scale_dtype is tv.ue4m3:
        block = int(tv.encode(absmax / code.max_value / g, tv.ue4m3))
        return float(tv.decode(max(block, 1), tv.ue4m3)), 0.0
    if code.kind == "uint":
        low, high = min(float(group.min()), 0.0), max(float(group.max()), 0.0)
        scale = compute_scale((high - low) / code.max_value, scale_dtype)
        return scale, float(np.clip(np.round(-low / scale), 0, code.max_value))
    if code.kind == "int" and code.nbits <= 2:
        extreme = float(group[np.argmax(np.abs(group))])
        return compute_scale(-extreme / 2 ** (code.nbits - 1), scale_dtype), 0.0
    return compute_scale(absmax / code.max_value, scale_dtype), 0.0


def quantize(w: np.ndarray, code: tv.DType, group_size: int, scale_dtype: tv.DType) -> Reference:
    """The reference quantization of the float64 weight ``w [N, K]``."""
    n, k = w.shape
    g = None
    if scale_dtype is tv.ue4m3:
        absmax = float(np.abs(w).max())
        g = float(np.float32(absmax / (code.max_value * 448.0))) if absmax else 1.0
    codes = np.zeros((n, k), dtype=np.uint8)
    scales = np.zeros((k // group_size, n))
    zeros = np.zeros((k // group_size, n))
    for row in range(n):
        for index in range(k // group_size):
            columns = slice(index * group_size, (index + 1) * group_size)
            group = w[row, columns]
            stored, zero = group_scale(group, code, scale_dtype, g)
            quotient = group / (stored if g is None else stored * g) + zero
            quotient = np.clip(quotient, code.min_value, code.max_value)
            codes[row, columns] = tv.encode(quotient, code)
            scales[index, row], zeros[index, row] = stored, zero
    return Reference(codes, scales, zeros if code.kind == "uint" else None, g)
