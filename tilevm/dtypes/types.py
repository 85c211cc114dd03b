"""The `DType` value and every named data type of tilevm, defined once.

A dtype is a frozen dataclass with structural equality, and each one is interned: the constructors
`int_type` and `float_type` (and `tilevm.dtypes.dtype`, which parses names) return the same instance for
the same format, so `is` works as well as `==`.

>>> float_type(3, 2) is float6_e3m2
True
>>> float6_e3m2.max_value, int4.min_value
(28.0, -8)

Decisions about special values, one row per family (also in each instance's docstring below):

- integers: two's complement (signed) or plain binary in `nbits` bits.
- `bool`: one bit, values 0 and 1; the result of comparisons and the type of masks.
- `float16`, `bfloat16`, `float32`, `float8_e5m2`: IEEE 754 (subnormals, +-inf, NaN when the exponent
  field is all ones and the mantissa is not zero).
- `float8_e4m3`: the OCP "fn" variant: no inf, NaN only at S.1111.111, max 448.
- every other low-bit float `float{1+e+m}_e{e}m{m}` (all widths below 8, and the 8-bit e1m6, e2m5, e3m4,
  e6m1, e7m0): finite only, as OCP FP6/FP4: every code is a number (no inf, no NaN). Note that this makes
  our float8_e3m4 differ from ml_dtypes' IEEE-like float8_e3m4.
- `e8m0` (MX scale): unsigned, no mantissa, no subnormals, value 2^(code - 127); code 0xFF is NaN; there
  is no zero, no inf and no sign.
- `ue4m3` (NVFP4 scale): e4m3fn without a sign bit, bias 7, max 448, NaN at 0x7F. It is stored in 8 bits
  with the top bit always zero, so its valid codes are 0..127 (`num_codes` is 128).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

KINDS = ("int", "uint", "float", "bool")
INTEGER_WIDTHS = (1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 64)
MAX_LOW_BIT_WIDTH = 8


@dataclass(frozen=True, repr=False)
class DType:
    """A data type: an integer, boolean or floating-point format of 1 to 64 bits.

    Floats decode a code as (-1)^S * 2^(E - bias) * 1.M for an exponent field E > 0, and as
    (-1)^S * 2^(1 - bias) * 0.M when E == 0 (subnormals), unless `has_subnormals` is False (e8m0), where
    E == 0 is a normal exponent too. NaN and inf codes: with `has_inf`, IEEE (exponent all ones); with
    `has_nan` but no inf, NaN is the all-ones magnitude (S.1111.111 in e4m3fn, 0xFF in e8m0).

    Build dtypes through `int_type`, `float_type` or `dtype(name)`, not directly, so that they are
    interned.

    >>> int4.nbits, int4.kind, int4.is_signed, str(int4), repr(int4)
    (4, 'int', True, 'int4', 'tilevm.int4')
    >>> float8_e5m2.has_inf, float8_e4m3.has_inf, float8_e4m3.has_nan
    (True, False, True)
    """

    name: str
    kind: str
    nbits: int
    is_signed: bool
    exponent_bits: int = 0
    mantissa_bits: int = 0
    bias: int = 0
    has_inf: bool = False
    has_nan: bool = False
    has_subnormals: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"dtype kind must be one of {KINDS}, not {self.kind!r}")
        if self.kind == "float" and self.value_bits > self.nbits:
            raise ValueError(f"{self.name}: sign, exponent and mantissa need {self.value_bits} bits")
        if self.has_inf and not self.has_nan:
            raise ValueError(f"{self.name}: a format with inf has NaN too (IEEE)")

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"tilevm.{_ATTRIBUTE_NAMES.get(self.name, self.name)}"

    @property
    def is_float(self) -> bool:
        """True for floating-point formats, including the scale formats e8m0 and ue4m3."""
        return self.kind == "float"

    @property
    def is_integer(self) -> bool:
        """True for int{n} and uint{n}; False for bool (which is its own kind) and floats."""
        return self.kind in ("int", "uint")

    @property
    def value_bits(self) -> int:
        """Bits that carry the value: `nbits`, except ue4m3, whose 8-bit storage has 7 value bits."""
        if self.kind != "float":
            return self.nbits
        return int(self.is_signed) + self.exponent_bits + self.mantissa_bits

    @property
    def num_codes(self) -> int:
        """How many codes are valid: codes are the integers 0 .. num_codes - 1 (128 for ue4m3)."""
        return 1 << self.value_bits

    @property
    def max_magnitude_code(self) -> int:
        """The code (sign bit clear) of the largest finite value."""
        all_ones = (1 << (self.exponent_bits + self.mantissa_bits)) - 1
        if not self.is_float:
            return (1 << (self.nbits - int(self.is_signed))) - 1
        if self.has_inf:  # IEEE: the largest finite has the exponent field all ones minus one
            return all_ones - (1 << self.mantissa_bits)
        return all_ones - int(self.has_nan)  # "fn": only the all-ones magnitude is NaN

    @property
    def max_value(self) -> float | int:
        """The largest finite value (an int for integer kinds).

        >>> float8_e4m3.max_value, float8_e5m2.max_value, e8m0.max_value == 2.0**127, uint3.max_value
        (448.0, 57344.0, True, 7)
        """
        if not self.is_float:
            return self.max_magnitude_code
        return magnitude_value(self, self.max_magnitude_code)

    @property
    def min_value(self) -> float | int:
        """The most negative finite value; 0 for unsigned kinds, and the smallest value 2^-127 for e8m0.

        >>> int3.min_value, float4_e2m1.min_value, ue4m3.min_value, e8m0.min_value == 2.0**-127
        (-4, -6.0, 0.0, True)
        """
        if not self.is_float:
            return -(1 << (self.nbits - 1)) if self.is_signed else 0
        if self.is_signed:
            return -self.max_value
        return magnitude_value(self, 0)


def magnitude_value(dtype: DType, code: int) -> float:
    """The value of a float format's magnitude code (sign bit clear), in Python floats (exact).

    >>> magnitude_value(float4_e2m1, 0b001), magnitude_value(float4_e2m1, 0b111)
    (0.5, 6.0)
    """
    exponent_field = code >> dtype.mantissa_bits
    mantissa_field = code & ((1 << dtype.mantissa_bits) - 1)
    if exponent_field == 0 and dtype.has_subnormals:
        return math.ldexp(mantissa_field, 1 - dtype.bias - dtype.mantissa_bits)
    significand = (1 << dtype.mantissa_bits) + mantissa_field
    return math.ldexp(significand, exponent_field - dtype.bias - dtype.mantissa_bits)


_INTERNED: dict[DType, DType] = {}
# Attribute names differ from dtype names only where the name is a Python keyword or builtin.
_ATTRIBUTE_NAMES = {"bool": "boolean"}


def _intern(dtype: DType) -> DType:
    return _INTERNED.setdefault(dtype, dtype)


def int_type(nbits: int, signed: bool = True) -> DType:
    """The integer dtype of `nbits` bits (1..8, 16, 32 or 64), two's complement when signed.

    >>> int_type(4) is int4, int_type(3, signed=False) is uint3
    (True, True)
    """
    if nbits not in INTEGER_WIDTHS:
        raise ValueError(f"integer width {nbits} is not supported; widths are 1..8, 16, 32 and 64")
    kind = "int" if signed else "uint"
    return _intern(DType(f"{kind}{nbits}", kind, nbits, signed))


# The wide IEEE formats, keyed by (exponent bits, mantissa bits).
_WIDE_FLOATS = {(5, 10): "float16", (8, 7): "bfloat16", (8, 23): "float32"}


def float_type(exponent_bits: int, mantissa_bits: int) -> DType:
    """The signed float with `exponent_bits` >= 1 and `mantissa_bits` >= 0, bias 2^(e-1) - 1.

    Low-bit formats (1 + e + m <= 8) are named `float{1+e+m}_e{e}m{m}`; (5, 10), (8, 7) and (8, 23) give
    float16, bfloat16 and float32. The special values follow the table in this module's docstring.

    >>> float_type(4, 3) is float8_e4m3, float_type(2, 1).name, float_type(8, 7) is bfloat16
    (True, 'float4_e2m1', True)
    """
    e, m = exponent_bits, mantissa_bits
    if e < 1 or m < 0:
        raise ValueError(f"a float needs exponent bits >= 1 and mantissa bits >= 0, not e{e}m{m}")
    wide_name = _WIDE_FLOATS.get((e, m))
    nbits = 1 + e + m
    if wide_name is None and nbits > MAX_LOW_BIT_WIDTH:
        raise ValueError(
            f"float e{e}m{m} needs 1 + {e} + {m} = {nbits} bits; low-bit floats have at most "
            f"{MAX_LOW_BIT_WIDTH} bits (1 + e + m <= 8); the wider floats are float16 (e5m10), "
            "bfloat16 (e8m7) and float32 (e8m23)"
        )
    ieee = wide_name is not None or (e, m) == (5, 2)
    fn = (e, m) == (4, 3)  # OCP float8_e4m3fn: NaN at S.1111.111, no inf
    name = wide_name or f"float{nbits}_e{e}m{m}"
    bias = (1 << (e - 1)) - 1
    return _intern(DType(name, "float", nbits, True, e, m, bias, has_inf=ieee, has_nan=ieee or fn))


# Integers: two's complement (int) or plain binary (uint).
int1, int2, int3, int4 = (int_type(n) for n in (1, 2, 3, 4))
int5, int6, int7, int8 = (int_type(n) for n in (5, 6, 7, 8))
int16, int32, int64 = (int_type(n) for n in (16, 32, 64))
uint1, uint2, uint3, uint4 = (int_type(n, signed=False) for n in (1, 2, 3, 4))
uint5, uint6, uint7, uint8 = (int_type(n, signed=False) for n in (5, 6, 7, 8))
uint16, uint32, uint64 = (int_type(n, signed=False) for n in (16, 32, 64))

#: One bit, values 0 and 1: comparison results and masks. Named "bool"; the attribute is `boolean`.
boolean = _intern(DType("bool", "bool", 1, False))

# IEEE floats.
float16 = float_type(5, 10)
bfloat16 = float_type(8, 7)
float32 = float_type(8, 23)

# Low-bit floats: every e >= 1, m >= 0 with 1 + e + m <= 8. Only e5m2 (IEEE) and e4m3 (OCP fn) have
# special values; the others are finite only (all codes are numbers).
float2_e1m0 = float_type(1, 0)
float3_e1m1, float3_e2m0 = float_type(1, 1), float_type(2, 0)
float4_e1m2, float4_e2m1, float4_e3m0 = float_type(1, 2), float_type(2, 1), float_type(3, 0)
float5_e1m3, float5_e2m2, float5_e3m1 = float_type(1, 3), float_type(2, 2), float_type(3, 1)
float5_e4m0 = float_type(4, 0)
float6_e1m4, float6_e2m3, float6_e3m2 = float_type(1, 4), float_type(2, 3), float_type(3, 2)
float6_e4m1, float6_e5m0 = float_type(4, 1), float_type(5, 0)
float7_e1m5, float7_e2m4, float7_e3m3 = float_type(1, 5), float_type(2, 4), float_type(3, 3)
float7_e4m2, float7_e5m1, float7_e6m0 = float_type(4, 2), float_type(5, 1), float_type(6, 0)
float8_e1m6, float8_e2m5, float8_e3m4 = float_type(1, 6), float_type(2, 5), float_type(3, 4)
float8_e4m3, float8_e5m2, float8_e6m1 = float_type(4, 3), float_type(5, 2), float_type(6, 1)
float8_e7m0 = float_type(7, 0)

#: MX scale: 2^(code - 127) for codes 0..254 (2^-127 .. 2^127), 0xFF is NaN; no zero, sign or inf.
e8m0 = _intern(DType("e8m0", "float", 8, False, 8, 0, 127, has_nan=True, has_subnormals=False))
#: NVFP4 scale: e4m3fn without a sign bit (bias 7, max 448, NaN at 0x7F); 8-bit storage, codes 0..127.
ue4m3 = _intern(DType("ue4m3", "float", 8, False, 4, 3, 7, has_nan=True))


def all_dtypes() -> tuple[DType, ...]:
    """Every named dtype, in the order they were defined (integers, bool, floats, scale formats).

    >>> len(all_dtypes()), all_dtypes()[0]
    (56, tilevm.int1)
    """
    return tuple(_INTERNED.values())


def low_bit_floats() -> tuple[DType, ...]:
    """The 28 signed floats `float{1+e+m}_e{e}m{m}` with 1 + e + m <= 8.

    >>> len(low_bit_floats()), low_bit_floats()[0]
    (28, tilevm.float2_e1m0)
    """
    return tuple(float_type(e, n - 1 - e) for n in range(2, 9) for e in range(1, n))
