"""Parse dtype names: `dtype("f6e3m2") is float6_e3m2`.

Accepted names (the set is closed and exact: no case folding, no spaces):

- integers: `int{n}`, `uint{n}`, `i{n}`, `u{n}` for n in 1..8, 16, 32, 64; and `bool`.
- IEEE floats: `float16`, `f16`, `half`; `bfloat16`, `bf16`; `float32`, `f32`.
- low-bit floats: `float{n}_e{e}m{m}`, `f{n}e{e}m{m}`, `fp{n}_e{e}m{m}`, `fp{n}e{e}m{m}` with e >= 1,
  m >= 0 and n == 1 + e + m <= 8; and the torch spelling `float8_e4m3fn` of `float8_e4m3`.
- scale formats: `e8m0` (also `ue8m0`, `float8_e8m0fnu`) and `ue4m3`.

Every name printed by `str(d)` is in this set, so `dtype(str(d)) is d`.
"""

from __future__ import annotations

import re

from tilevm.dtypes.types import (
    INTEGER_WIDTHS,
    MAX_LOW_BIT_WIDTH,
    DType,
    all_dtypes,
    bfloat16,
    e8m0,
    float8_e4m3,
    float16,
    float32,
    float_type,
    int_type,
)

VALID_FORMS = (
    "int{n}/i{n}, uint{n}/u{n} (n in 1..8, 16, 32, 64), bool, float16/f16/half, bfloat16/bf16, "
    "float32/f32, float{n}_e{e}m{m}/f{n}e{e}m{m}/fp{n}_e{e}m{m} (e >= 1, m >= 0, n = 1 + e + m <= 8), "
    "e8m0, ue4m3"
)

_ALIASES: dict[str, DType] = {
    "f16": float16,
    "half": float16,
    "bf16": bfloat16,
    "f32": float32,
    "float8_e4m3fn": float8_e4m3,
    "ue8m0": e8m0,
    "float8_e8m0fnu": e8m0,
}
_INTEGER = re.compile(r"(int|uint|i|u)([1-9]\d*)")
_FLOAT = re.compile(r"(?:float|fp|f)([1-9]\d*)_?e(\d+)m(\d+)")
_BARE_FLOAT = re.compile(r"e(\d+)m(\d+)")


def dtype(name: str | DType) -> DType:
    """The interned dtype called `name`; a DType is returned unchanged.

    Raises ValueError for an unknown name, a float wider than 8 bits, or a width that disagrees with
    its exponent and mantissa bits; the message lists the valid forms.

    >>> dtype("f6e3m2") is float_type(3, 2), dtype("u3").name, dtype("bf16").name, str(dtype("float8_e4m3fn"))
    (True, 'uint3', 'bfloat16', 'float8_e4m3')
    """
    if isinstance(name, DType):
        return name
    if not isinstance(name, str):
        raise TypeError(f"a dtype name must be a str or a DType, not {type(name).__name__}")
    found = _BY_NAME.get(name) or _ALIASES.get(name)
    if found is not None:
        return found
    integer = _INTEGER.fullmatch(name)
    if integer:
        return _parse_integer(name, integer)
    floating = _FLOAT.fullmatch(name)
    if floating:
        return _parse_float(name, *(int(group) for group in floating.groups()))
    raise ValueError(f"unknown dtype name {name!r}{_suggestion(name)}; valid forms: {VALID_FORMS}")


def _parse_integer(name: str, match: re.Match[str]) -> DType:
    nbits = int(match.group(2))
    if nbits not in INTEGER_WIDTHS:
        raise ValueError(
            f"dtype {name!r}: integer width {nbits} is not supported (widths are 1..8, 16, 32, 64); "
            f"valid forms: {VALID_FORMS}"
        )
    return int_type(nbits, signed=match.group(1) in ("int", "i"))


def _parse_float(name: str, nbits: int, exponent_bits: int, mantissa_bits: int) -> DType:
    needed = 1 + exponent_bits + mantissa_bits
    if exponent_bits < 1:
        problem = f"a float needs at least one exponent bit, not e{exponent_bits}"
    elif needed > MAX_LOW_BIT_WIDTH:
        problem = (
            f"e{exponent_bits}m{mantissa_bits} needs 1 + {exponent_bits} + {mantissa_bits} = {needed} bits, "
            f"more than {MAX_LOW_BIT_WIDTH} (1 + e + m <= 8)"
        )
    elif nbits != needed:
        problem = (
            f"width {nbits} disagrees with e{exponent_bits}m{mantissa_bits}, which needs "
            f"1 + {exponent_bits} + {mantissa_bits} = {needed} bits (did you mean "
            f"'float{needed}_e{exponent_bits}m{mantissa_bits}'?)"
        )
    else:
        return float_type(exponent_bits, mantissa_bits)
    raise ValueError(f"dtype {name!r}: {problem}; valid forms: {VALID_FORMS}")


def _suggestion(name: str) -> str:
    # A bare "e3m2" is ambiguous next to the unsigned scale formats e8m0/ue4m3, so it is not accepted,
    # but the error points at the signed float it most likely means.
    bare = _BARE_FLOAT.fullmatch(name)
    if not bare:
        return ""
    exponent_bits, mantissa_bits = int(bare.group(1)), int(bare.group(2))
    needed = 1 + exponent_bits + mantissa_bits
    if exponent_bits < 1 or needed > MAX_LOW_BIT_WIDTH:
        return ""
    return f" (did you mean 'float{needed}_e{exponent_bits}m{mantissa_bits}'?)"


_BY_NAME: dict[str, DType] = {d.name: d for d in all_dtypes()}
