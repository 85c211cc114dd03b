"""tilevm's data types, defined in one place: the `DType` values, name parsing, and the numpy reference
codec (encode, decode, pack, unpack) that kernels are tested against.

- `types`: the DType class, `int_type`, `float_type` and every named instance, with the special-value
  decisions (inf, NaN, e8m0, ue4m3) in its docstring.
- `parse`: `dtype(name)` and the accepted names.
- `codec`: `encode` / `decode`, with the rounding, saturation, NaN and -0 rules in its docstring.
- `packing`: dense LSB-first `pack` / `unpack`.
- `values`: `wrap_integer`, `round_to_dtype`, `representable_values`.

>>> import tilevm as tv
>>> tv.dtype("f4e2m1") is tv.float4_e2m1
True
>>> tv.decode(tv.encode([1.2, -7.0], tv.float4_e2m1), tv.float4_e2m1)
array([ 1., -6.], dtype=float32)
"""

from tilevm.dtypes.codec import code_storage_dtype, decode, encode
from tilevm.dtypes.packing import pack, unpack
from tilevm.dtypes.parse import dtype
from tilevm.dtypes.rounding import ROUNDING_MODES
from tilevm.dtypes.types import (
    DType,
    all_dtypes,
    bfloat16,
    boolean,
    e8m0,
    float2_e1m0,
    float3_e1m1,
    float3_e2m0,
    float4_e1m2,
    float4_e2m1,
    float4_e3m0,
    float5_e1m3,
    float5_e2m2,
    float5_e3m1,
    float5_e4m0,
    float6_e1m4,
    float6_e2m3,
    float6_e3m2,
    float6_e4m1,
    float6_e5m0,
    float7_e1m5,
    float7_e2m4,
    float7_e3m3,
    float7_e4m2,
    float7_e5m1,
    float7_e6m0,
    float8_e1m6,
    float8_e2m5,
    float8_e3m4,
    float8_e4m3,
    float8_e5m2,
    float8_e6m1,
    float8_e7m0,
    float16,
    float32,
    float_type,
    int1,
    int2,
    int3,
    int4,
    int5,
    int6,
    int7,
    int8,
    int16,
    int32,
    int64,
    int_type,
    low_bit_floats,
    ue4m3,
    uint1,
    uint2,
    uint3,
    uint4,
    uint5,
    uint6,
    uint7,
    uint8,
    uint16,
    uint32,
    uint64,
)
from tilevm.dtypes.values import representable_values, round_to_dtype, wrap_integer

__all__ = [
    # the type, its constructors and parser
    "DType",
    "all_dtypes",
    "dtype",
    "float_type",
    "int_type",
    "low_bit_floats",
    # the reference codec
    "ROUNDING_MODES",
    "code_storage_dtype",
    "decode",
    "encode",
    "pack",
    "representable_values",
    "round_to_dtype",
    "unpack",
    "wrap_integer",
    # integers and bool
    "boolean",
    "int1",
    "int2",
    "int3",
    "int4",
    "int5",
    "int6",
    "int7",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint1",
    "uint2",
    "uint3",
    "uint4",
    "uint5",
    "uint6",
    "uint7",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    # IEEE floats
    "bfloat16",
    "float16",
    "float32",
    # low-bit floats float{1+e+m}_e{e}m{m}
    "float2_e1m0",
    "float3_e1m1",
    "float3_e2m0",
    "float4_e1m2",
    "float4_e2m1",
    "float4_e3m0",
    "float5_e1m3",
    "float5_e2m2",
    "float5_e3m1",
    "float5_e4m0",
    "float6_e1m4",
    "float6_e2m3",
    "float6_e3m2",
    "float6_e4m1",
    "float6_e5m0",
    "float7_e1m5",
    "float7_e2m4",
    "float7_e3m3",
    "float7_e4m2",
    "float7_e5m1",
    "float7_e6m0",
    "float8_e1m6",
    "float8_e2m5",
    "float8_e3m4",
    "float8_e4m3",
    "float8_e5m2",
    "float8_e6m1",
    "float8_e7m0",
    # scale formats
    "e8m0",
    "ue4m3",
]
