"""Casts in kernels, end to end: a DSL kernel through the whole pipeline (layouts, lowering, the SIMT
interpreter) against the reference executor byte for byte, and against the reference codec: low-bit
weights viewed from bytes and dequantized to float16 / bfloat16, and float32 values quantized to a low-bit
format and back, in both roundings. Outputs start as poison (0xAB bytes).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lowering import assert_same_bytes, run_both

import tilevm as tv
from tilevm.dtypes import decode, dtype, encode, unpack
from tilevm.ir import semantics
from tilevm.runtime.reference.carrier import codes_to_carrier


@tv.kernel(num_warps=1)
def dequantize(packed: tv.Tensor, out: tv.Tensor, LOW: tv.constexpr, BM: tv.constexpr, BN: tv.constexpr):
    weights = tv.view(tv.load_global(packed, offsets=[0, 0], shape=[BM, BN]), LOW)
    tv.store_global(out, tv.cast(weights, out.dtype), offsets=[0, 0])


@tv.kernel(num_warps=2)
def round_trip(x: tv.Tensor, out: tv.Tensor, LOW: tv.constexpr, ROUNDING: tv.constexpr, BM: tv.constexpr):
    values = tv.load_global(x, offsets=[0, 0], shape=[BM, 24])
    tv.store_global(out, tv.cast(tv.cast(values, LOW, rounding=ROUNDING), tv.float32), offsets=[0, 0])


def poison(shape: tuple[int, ...], torch_dtype: torch.dtype) -> torch.Tensor:
    width = torch.empty(0, dtype=torch_dtype).element_size()
    return torch.full((*shape[:-1], shape[-1] * width), 0xAB, dtype=torch.uint8).view(torch_dtype)


@pytest.mark.parametrize(
    "low", ["int4", "uint4", "int2", "int3", "uint5", "int8", "float4_e2m1", "float8_e4m3"]
)
@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_dequantize_bytes(low: str, half: torch.dtype):
    low_dtype = dtype(low)
    rows, columns = 8, 3 * low_dtype.nbits  # 24 elements a row, whole bytes for every width
    rng = np.random.default_rng(low_dtype.nbits * 7 + (half == torch.bfloat16))
    packed = torch.from_numpy(rng.integers(0, 256, (rows, columns), dtype=np.uint8))
    out = poison((rows, 24), half)
    reference, lowered = run_both(dequantize, (1,), packed, out, LOW=low_dtype, BM=rows, BN=columns)
    assert_same_bytes(reference, lowered)
    codes = np.stack([unpack(row, low_dtype, 24) for row in packed.numpy()])
    half_dtype = dtype("float16" if half == torch.float16 else "bfloat16")
    expected = semantics.cast(codes_to_carrier(codes, low_dtype), low_dtype, half_dtype, "nearest")
    actual = lowered[1].float().numpy()
    assert np.array_equal(np.isnan(actual), np.isnan(expected))
    assert np.array_equal(actual[~np.isnan(actual)], expected[~np.isnan(expected)])


@pytest.mark.parametrize(
    "low", ["int5", "uint3", "float6_e3m2", "float8_e5m2", "e8m0", "ue4m3", "float4_e2m1"]
)
@pytest.mark.parametrize("rounding", ["nearest", "zero"])
def test_quantize_and_back(low: str, rounding: str):
    low_dtype = dtype(low)
    rng = np.random.default_rng(len(low) * 3 + (rounding == "zero"))
    values = rng.standard_normal((16, 24)) * np.exp2(rng.integers(-6, 8, (16, 24)))
    values[0, :4] = [np.inf, -np.inf, np.nan, -0.0]
    x = torch.from_numpy(values.astype(np.float32))
    out = poison((16, 24), torch.float32)
    reference, lowered = run_both(round_trip, (1,), x, out, LOW=low_dtype, ROUNDING=rounding, BM=16)
    assert_same_bytes(reference, lowered)
    rounded = semantics.cast(x.double().numpy(), dtype("float32"), low_dtype, rounding)
    expected = decode(encode(rounded, low_dtype), low_dtype) if low_dtype.is_float else rounded
    actual = lowered[1].numpy()
    assert np.array_equal(np.isnan(actual), np.isnan(expected))
    assert np.array_equal(actual[~np.isnan(actual)], expected[~np.isnan(expected)])
