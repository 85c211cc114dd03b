"""Weight formats: which code dtype, group size, scale dtype, zero points and global scale a quantized
weight uses, the named presets (OCP MX and NVFP4), and the checks that reject combinations the quantizer
and the kernels do not implement.

A weight ``W [N, K]`` in a format stands for ``W[n, k] = (value(code[n, k]) - zero[g, n]) * scale[g, n] *
global_scale`` with ``g = k // group_size``.

>>> import tilevm as tv
>>> WeightFormat(tv.int4)
WeightFormat(int4, group_size=128, scale_dtype=None)
>>> WeightFormat("uint3", None, tv.bfloat16)
WeightFormat(uint3, group_size=None, scale_dtype=bfloat16, zeros)
>>> WeightFormat.preset("nvfp4")
WeightFormat(float4_e2m1, group_size=16, scale_dtype=ue4m3, global_scale)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

import tilevm as tv

__all__ = ["GROUP_SIZES", "PRESETS", "WeightFormat", "code_dtypes", "parse_dtype", "tilevm_compute_dtype"]

#: the group sizes along K that the kernels implement; ``None`` is one group per output channel (K)
GROUP_SIZES = (16, 32, 64, 128)
#: compute dtypes (X's and Y's): a scale in one of these is stored in the compute dtype itself
COMPUTE_DTYPES = {torch.float16: tv.float16, torch.bfloat16: tv.bfloat16}
#: block-scale formats, stored as their uint8 codes
CODE_SCALE_DTYPES = (tv.e8m0, tv.ue4m3)


def code_dtypes() -> tuple[tv.DType, ...]:
    """The code dtypes a weight may use: int1..int8, uint1..uint8 and every float of 3 to 8 bits.

    >>> len(code_dtypes()), code_dtypes()[0], code_dtypes()[-1]
    (43, tilevm.int1, tilevm.float8_e7m0)
    """
    integers = tuple(tv.int_type(n, signed) for signed in (True, False) for n in range(1, 9))
    return integers + tuple(d for d in tv.low_bit_floats() if d.nbits >= 3)


@dataclass(frozen=True, repr=False)
class WeightFormat:
    """How a weight is quantized: the code dtype and how its groups are scaled.

    - ``dtype``: the code dtype (a tilevm DType or its name), one of `code_dtypes()`.
    - ``group_size``: values of k that share a scale: 16, 32, 64 or 128, or ``None`` for one group per
      output channel. A `QuantizedWeight`'s format always holds the actual size (K for per channel).
    - ``scale_dtype``: ``float16`` or ``bfloat16`` (which must be the compute dtype, since the kernel scales
      in it), ``e8m0`` (MX: power-of-two scales, float codes) or ``ue4m3`` (NVFP4: float codes, with a
      global scale); ``None`` means the compute dtype, chosen when the weight is quantized.
    - ``has_zeros``: integer zero points per group; required by the uint formats (asymmetric), not
      allowed for the others (symmetric). ``None`` chooses that.
    - ``has_global_scale``: one float32 scale for the whole weight; it goes with ``ue4m3`` scales, whose
      range (2^-9 .. 448) is too narrow without it. ``None`` chooses that.
    """

    dtype: tv.DType
    group_size: int | None = 128
    scale_dtype: tv.DType | None = None
    has_zeros: bool | None = None
    has_global_scale: bool | None = None

    def __post_init__(self) -> None:
        set_field = object.__setattr__.__get__(self)  # the dataclass is frozen: fill in the defaults once
        set_field("dtype", _code_dtype(self.dtype))
        set_field("scale_dtype", _scale_dtype(self.scale_dtype, self.dtype))
        _check_group_size(self.group_size)
        uint = self.dtype.kind == "uint"
        set_field("has_zeros", uint if self.has_zeros is None else self.has_zeros)
        if self.has_zeros != uint:
            raise ValueError(
                f"zero_point={self.has_zeros} does not fit {self.dtype.name}: the uint formats are "
                "asymmetric and always have zero points; int and float formats are symmetric and have "
                f"none (use uint{self.dtype.nbits} for zero points)"
            )
        block = self.scale_dtype == tv.ue4m3
        set_field("has_global_scale", block if self.has_global_scale is None else self.has_global_scale)
        if self.has_global_scale != block:
            raise ValueError(
                f"global_scale={self.has_global_scale} does not fit scale_dtype={_name(self.scale_dtype)}: "
                "a global scale goes with ue4m3 block scales (NVFP4) and only with them"
            )

    @classmethod
    def preset(cls, name: str) -> WeightFormat:
        """The named format: ``mxfp4``, ``mxfp6_e3m2``, ``mxfp6_e2m3``, ``mxfp8_e4m3``, ``mxfp8_e5m2``
        (OCP MX: groups of 32 with an e8m0 scale) or ``nvfp4`` (float4_e2m1, ue4m3 scales per 16 values and
        a float32 global scale).

        >>> WeightFormat.preset("mxfp6_e2m3")
        WeightFormat(float6_e2m3, group_size=32, scale_dtype=e8m0)
        """
        if name not in PRESETS:
            raise ValueError(f"dtype={name!r} is not a preset; presets are {', '.join(PRESETS)}")
        return PRESETS[name]

    def resolve(self, k: int, compute_dtype: torch.dtype) -> WeightFormat:
        """This format for a weight with ``k`` input features and that compute dtype: the group size made
        actual (K for per channel) and checked to divide K, the scale dtype filled in and checked."""
        compute = tilevm_compute_dtype(compute_dtype)
        group_size = k if self.group_size is None else self.group_size
        if k % group_size:
            raise ValueError(
                f"group_size={group_size} must divide K = {k} (the weight's in_features, its shape[1])"
            )
        scale_dtype = compute if self.scale_dtype is None else self.scale_dtype
        if scale_dtype not in CODE_SCALE_DTYPES and scale_dtype != compute:
            raise ValueError(
                f"scale_dtype={scale_dtype.name} must be the compute dtype {compute.name} (the kernel "
                "scales in the compute dtype), or e8m0 / ue4m3"
            )
        # Not through the constructor, which takes only the group sizes a user may ask for: K need not be
        # one of them.
        resolved = copy.copy(self)
        object.__setattr__(resolved, "group_size", group_size)
        object.__setattr__(resolved, "scale_dtype", scale_dtype)
        return resolved

    @property
    def bits(self) -> int:
        """Bits per code."""
        return self.dtype.nbits

    def __repr__(self) -> str:
        flags = [
            name for name, on in (("zeros", self.has_zeros), ("global_scale", self.has_global_scale)) if on
        ]
        fields = [self.dtype.name, f"group_size={self.group_size}", f"scale_dtype={_name(self.scale_dtype)}"]
        return f"WeightFormat({', '.join(fields + flags)})"


def tilevm_compute_dtype(compute_dtype: torch.dtype) -> tv.DType:
    """The tilevm dtype of a compute dtype (``torch.float16`` or ``torch.bfloat16``)."""
    if compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(f"compute_dtype must be torch.float16 or torch.bfloat16, not {compute_dtype}")
    return COMPUTE_DTYPES[compute_dtype]


def _name(dtype: tv.DType | None) -> str:
    return "None" if dtype is None else dtype.name


def parse_dtype(value: object) -> tv.DType | None:
    """The tilevm dtype that ``value`` names, or None."""
    if not isinstance(value, (str, tv.DType)):
        return None
    try:
        return tv.dtype(value)
    except ValueError:
        return None


def _code_dtype(dtype: tv.DType | str) -> tv.DType:
    parsed = parse_dtype(dtype)
    if parsed not in code_dtypes():
        raise ValueError(
            f"dtype={dtype!r} is not a weight code dtype; use int1..int8, uint1..uint8, a float of 3 to 8 "
            f"bits (float3_e1m1 .. float8_e5m2) or a preset ({', '.join(PRESETS)})"
        )
    return parsed


def _scale_dtype(scale_dtype: tv.DType | str | None, code: tv.DType) -> tv.DType | None:
    if scale_dtype is None:
        return None
    parsed = parse_dtype(scale_dtype)
    if parsed not in (*COMPUTE_DTYPES.values(), *CODE_SCALE_DTYPES):
        raise ValueError(f"scale_dtype={scale_dtype!r} must be float16, bfloat16, e8m0 or ue4m3")
    if parsed in CODE_SCALE_DTYPES and not code.is_float:
        raise ValueError(
            f"scale_dtype={parsed.name} (a block scale of the MX / NVFP4 formats) needs a float code dtype, "
            f"not {code.name}"
        )
    return parsed


def _check_group_size(group_size: int | None) -> None:
    integer = isinstance(group_size, int) and not isinstance(group_size, bool)
    if group_size is not None and not (integer and group_size in GROUP_SIZES):
        raise ValueError(
            f"group_size={group_size!r} is not supported: use one of {GROUP_SIZES}, or None for one group "
            "per output channel"
        )


_MX = {"mxfp4": tv.float4_e2m1, "mxfp6_e3m2": tv.float6_e3m2, "mxfp6_e2m3": tv.float6_e2m3}
_MX |= {"mxfp8_e4m3": tv.float8_e4m3, "mxfp8_e5m2": tv.float8_e5m2}
#: the named formats, by name
PRESETS: dict[str, WeightFormat] = {name: WeightFormat(code, 32, tv.e8m0) for name, code in _MX.items()}
PRESETS["nvfp4"] = WeightFormat(tv.float4_e2m1, 16, tv.ue4m3)
