"""The DType values and dtype names: interning, fields, the 28 low-bit floats, parsing and its errors."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tilevm
from tilevm import dtypes as dt
from tilevm.dtypes import DType

LOW_BIT_SHAPES = [(e, n - 1 - e) for n in range(2, 9) for e in range(1, n)]


def test_every_low_bit_float_is_a_module_attribute_with_its_shape():
    assert len(LOW_BIT_SHAPES) == 28
    for e, m in LOW_BIT_SHAPES:
        name = f"float{1 + e + m}_e{e}m{m}"
        d = getattr(dt, name)
        assert name in dt.__all__
        assert (d.name, d.nbits, d.exponent_bits, d.mantissa_bits) == (name, 1 + e + m, e, m)
        assert d.bias == 2 ** (e - 1) - 1
        assert d.kind == "float" and d.is_float and d.is_signed and not d.is_integer
        assert dt.float_type(e, m) is d
    assert [d.name for d in dt.low_bit_floats()] == [f"float{1 + e + m}_e{e}m{m}" for e, m in LOW_BIT_SHAPES]


def test_only_e5m2_and_e4m3_have_special_values():
    for d in dt.low_bit_floats():
        expected = {"float8_e5m2": (True, True), "float8_e4m3": (False, True)}.get(d.name, (False, False))
        assert (d.has_inf, d.has_nan) == expected, d


def test_integer_attributes():
    for n in (1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 64):
        signed, unsigned = getattr(dt, f"int{n}"), getattr(dt, f"uint{n}")
        assert (signed.kind, signed.nbits, signed.is_signed, signed.is_integer) == ("int", n, True, True)
        assert (unsigned.kind, unsigned.nbits, unsigned.is_signed) == ("uint", n, False)
        assert (signed.min_value, signed.max_value) == (-(2 ** (n - 1)), 2 ** (n - 1) - 1)
        assert (unsigned.min_value, unsigned.max_value) == (0, 2**n - 1)
        assert dt.int_type(n) is signed and dt.int_type(n, signed=False) is unsigned
        assert not signed.has_inf and not signed.has_nan and not signed.is_float


def test_the_package_re_exports_every_public_name():
    for name in dt.__all__:
        assert getattr(tilevm, name) is getattr(dt, name), name
        assert name in tilevm.__all__


def test_boolean():
    b = dt.boolean
    assert (b.name, b.kind, b.nbits, b.min_value, b.max_value) == ("bool", "bool", 1, 0, 1)
    assert not b.is_integer and not b.is_float and not b.is_signed
    assert dt.dtype("bool") is b and str(b) == "bool" and repr(b) == "tilevm.boolean"


# (dtype, kind, nbits, e, m, bias, has_inf, has_nan, min_value, max_value), the values from the specs:
# OCP MX v1.0 (e4m3 448, e5m2 57344, e2m1 6, e3m2 28, e2m3 7.5, e8m0 2^+-127), IEEE 754, NVFP4 (ue4m3).
FLOAT_FACTS = [
    (dt.float8_e4m3, 8, 4, 3, 7, False, True, -448.0, 448.0),
    (dt.float8_e5m2, 8, 5, 2, 15, True, True, -57344.0, 57344.0),
    (dt.float6_e3m2, 6, 3, 2, 3, False, False, -28.0, 28.0),
    (dt.float6_e2m3, 6, 2, 3, 1, False, False, -7.5, 7.5),
    (dt.float4_e2m1, 4, 2, 1, 1, False, False, -6.0, 6.0),
    (dt.float2_e1m0, 2, 1, 0, 0, False, False, -2.0, 2.0),
    (dt.float8_e7m0, 8, 7, 0, 63, False, False, -(2.0**64), 2.0**64),
    (dt.float16, 16, 5, 10, 15, True, True, -65504.0, 65504.0),
    (dt.bfloat16, 16, 8, 7, 127, True, True, -(2 - 2**-7) * 2.0**127, (2 - 2**-7) * 2.0**127),
    (dt.float32, 32, 8, 23, 127, True, True, -(2 - 2**-23) * 2.0**127, (2 - 2**-23) * 2.0**127),
    (dt.e8m0, 8, 8, 0, 127, False, True, 2.0**-127, 2.0**127),
    (dt.ue4m3, 8, 4, 3, 7, False, True, 0.0, 448.0),
]


@pytest.mark.parametrize(("d", "nbits", "e", "m", "bias", "has_inf", "has_nan", "low", "high"), FLOAT_FACTS)
def test_float_facts(d, nbits, e, m, bias, has_inf, has_nan, low, high):
    assert (d.nbits, d.exponent_bits, d.mantissa_bits, d.bias) == (nbits, e, m, bias)
    assert (d.has_inf, d.has_nan) == (has_inf, has_nan)
    assert (d.min_value, d.max_value) == (low, high)


def test_scale_formats():
    assert not dt.e8m0.is_signed and not dt.e8m0.has_subnormals and dt.e8m0.num_codes == 256
    assert not dt.ue4m3.is_signed and dt.ue4m3.num_codes == 128 and dt.ue4m3.value_bits == 7


def test_structural_equality_and_interning():
    again = DType("int4", "int", 4, True)
    assert again == dt.int4 and hash(again) == hash(dt.int4) and again is not dt.int4
    assert dt.dtype("int4") is dt.int4 and dt.dtype("i4") is dt.int4
    assert dt.float_type(3, 2) is dt.dtype("f6e3m2") is dt.dtype("float6_e3m2") is dt.float6_e3m2
    assert dt.float8_e4m3 != dt.float8_e5m2 and dt.float8_e4m3 != dt.ue4m3
    with pytest.raises(dataclasses.FrozenInstanceError):
        dt.int4.nbits = 5


def test_str_parses_back_and_repr_names_the_attribute():
    all_dtypes = dt.all_dtypes()
    assert len(all_dtypes) == len(set(all_dtypes)) == 22 + 1 + 3 + 28 + 2
    for d in all_dtypes:
        assert str(d) == d.name
        assert dt.dtype(str(d)) is d
        prefix, attribute = repr(d).split(".")
        assert prefix == "tilevm" and getattr(dt, attribute) is d
        assert attribute in dt.__all__
    assert repr(dt.int4) == "tilevm.int4" and repr(dt.float6_e3m2) == "tilevm.float6_e3m2"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("int4", dt.int4),
        ("uint3", dt.uint3),
        ("i4", dt.int4),
        ("u3", dt.uint3),
        ("int32", dt.int32),
        ("u64", dt.uint64),
        ("f16", dt.float16),
        ("float16", dt.float16),
        ("half", dt.float16),
        ("bf16", dt.bfloat16),
        ("bfloat16", dt.bfloat16),
        ("f32", dt.float32),
        ("float32", dt.float32),
        ("f6e3m2", dt.float6_e3m2),
        ("float6_e3m2", dt.float6_e3m2),
        ("fp6_e3m2", dt.float6_e3m2),
        ("fp4e2m1", dt.float4_e2m1),
        ("f2e1m0", dt.float2_e1m0),
        ("float8_e4m3fn", dt.float8_e4m3),
        ("e8m0", dt.e8m0),
        ("ue8m0", dt.e8m0),
        ("float8_e8m0fnu", dt.e8m0),
        ("ue4m3", dt.ue4m3),
        ("bool", dt.boolean),
    ],
)
def test_parse_names(name, expected):
    assert dt.dtype(name) is expected


def test_dtype_of_a_dtype_is_itself():
    assert dt.dtype(dt.float5_e2m2) is dt.float5_e2m2


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("foo", r"unknown dtype name 'foo'.*valid forms: int\{n\}"),
        ("e3m2", r"unknown dtype name 'e3m2' \(did you mean 'float6_e3m2'\?\).*valid forms"),
        ("Int4", r"unknown dtype name 'Int4'"),
        ("int0", r"unknown dtype name 'int0'"),
        ("int9", r"integer width 9 is not supported.*valid forms"),
        ("uint12", r"integer width 12 is not supported"),
        ("f9e4m4", r"e4m4 needs 1 \+ 4 \+ 4 = 9 bits, more than 8.*valid forms"),
        ("float16_e5m10", r"e5m10 needs 1 \+ 5 \+ 10 = 16 bits"),
        ("f5e3m2", r"width 5 disagrees with e3m2, which needs 1 \+ 3 \+ 2 = 6 bits.*'float6_e3m2'"),
        ("float4_e0m3", r"at least one exponent bit.*valid forms"),
        ("", r"unknown dtype name ''"),
    ],
)
def test_parse_errors(name, message):
    with pytest.raises(ValueError, match=message):
        dt.dtype(name)


def test_parse_rejects_non_strings():
    with pytest.raises(TypeError, match="must be a str or a DType, not int"):
        dt.dtype(4)


@pytest.mark.parametrize(
    ("e", "m", "message"),
    [
        (0, 3, r"exponent bits >= 1 and mantissa bits >= 0, not e0m3"),
        (2, -1, r"not e2m-1"),
        (4, 4, r"e4m4 needs 1 \+ 4 \+ 4 = 9 bits; low-bit floats have at most 8 bits"),
        (5, 9, r"the wider floats are float16 \(e5m10\)"),
    ],
)
def test_float_type_errors(e, m, message):
    with pytest.raises(ValueError, match=message):
        dt.float_type(e, m)


def test_wide_float_types():
    assert dt.float_type(5, 10) is dt.float16
    assert dt.float_type(8, 7) is dt.bfloat16
    assert dt.float_type(8, 23) is dt.float32


def test_int_type_errors():
    with pytest.raises(ValueError, match=r"integer width 9 is not supported; widths are 1..8, 16, 32 and 64"):
        dt.int_type(9)


def test_invalid_dtype_fields():
    with pytest.raises(ValueError, match="dtype kind must be one of"):
        DType("x", "complex", 8, True)
    with pytest.raises(ValueError, match="need 9 bits"):
        DType("x", "float", 8, True, 4, 4, 7)


@given(
    st.sampled_from(LOW_BIT_SHAPES), st.sampled_from(["f{n}e{e}m{m}", "float{n}_e{e}m{m}", "fp{n}_e{e}m{m}"])
)
def test_every_spelling_of_every_low_bit_float(shape, form):
    e, m = shape
    assert dt.dtype(form.format(n=1 + e + m, e=e, m=m)) is dt.float_type(e, m)


def test_min_and_max_follow_the_field_formula():
    # Independently of DType: a finite-only format's max is all ones, (2 - 2^-m) * 2^(2^e - 1 - bias).
    for e, m in LOW_BIT_SHAPES:
        d = dt.float_type(e, m)
        if d.has_nan:
            continue
        bias = 2 ** (e - 1) - 1
        top = (2 - 2.0**-m) * 2.0 ** (2**e - 1 - bias)
        assert d.max_value == top and d.min_value == -top, d
        assert math.isfinite(d.max_value)
