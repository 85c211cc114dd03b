"""`quantize_weight` against the formats' definitions (`quantization_reference`: numpy float64 and the
reference codec), its round-trip error bounds, the MX and NVFP4 scales on hand-picked blocks, extreme
groups, the MSE search, and its errors."""

import numpy as np
import pytest
import quantization_reference as reference
import torch

import tilevm as tv
from tilevm.ops import WeightFormat, quantize_weight
from tilevm.ops.quantization import PRESETS
from tilevm.ops.quantization.formats import code_dtypes

GROUP_SIZES = (16, 32, 64, 128, None)
WEIGHT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def random_weight(n: int, k: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    """Gaussian weights with a per-row spread and a few outliers, rounded to ``dtype``."""
    generator = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=generator, dtype=torch.float64) * torch.rand(n, 1, generator=generator)
    outliers = torch.rand(n, k, generator=generator) < 0.01
    return torch.where(outliers, w * 8, w).to(dtype)


def expected_scale_dtype(fmt: WeightFormat, compute_dtype: torch.dtype) -> tv.DType:
    compute = tv.float16 if compute_dtype == torch.float16 else tv.bfloat16
    return compute if fmt.scale_dtype is None else fmt.scale_dtype


def check_against_reference(w: torch.Tensor, q, fmt: WeightFormat, compute_dtype: torch.dtype) -> None:
    group_size = w.shape[1] if fmt.group_size is None else fmt.group_size
    expected = reference.quantize(
        w.double().numpy(), fmt.dtype, group_size, expected_scale_dtype(fmt, compute_dtype)
    )
    np.testing.assert_array_equal(q.codes().numpy(), expected.codes)
    np.testing.assert_array_equal(q.scale_values().numpy(), expected.scales)
    if expected.zeros is None:
        assert q.zeros is None
    else:
        np.testing.assert_array_equal(q.zeros.double().numpy(), expected.zeros)
    if expected.global_scale is None:
        assert q.global_scale is None
    else:
        assert q.global_scale.item() == expected.global_scale
    exact = expected.dequantize(fmt.dtype, group_size)
    np.testing.assert_array_equal(q.dequantize(torch.float64).numpy(), exact)
    target = tv.float16 if compute_dtype == torch.float16 else tv.bfloat16
    rounded = tv.round_to_dtype(exact, target).astype(np.float64)
    np.testing.assert_array_equal(q.dequantize().double().numpy(), rounded)
    assert q.dequantize().dtype == compute_dtype
    assert q.dequantize(torch.float32).numpy().tolist() == exact.astype(np.float32).tolist()


def case_shape(index: int, group_size: int | None) -> tuple[int, int]:
    """A ragged N and a K of 2 or 3 groups (any K for one group per channel)."""
    n = 5 + index % 9
    k = 48 + 8 * (index % 5) if group_size is None else group_size * (2 + index % 2)
    return n, k


@pytest.mark.parametrize("index", range(len(code_dtypes())), ids=[d.name for d in code_dtypes()])
def test_every_code_dtype_quantizes_as_defined(index):
    code = code_dtypes()[index]
    group_size = GROUP_SIZES[index % len(GROUP_SIZES)]
    compute_dtype = (torch.float16, torch.bfloat16)[index % 2]
    n, k = case_shape(index, group_size)
    w = random_weight(n, k, WEIGHT_DTYPES[index % 3], seed=index)
    q = quantize_weight(w, code, group_size, compute_dtype=compute_dtype)
    assert q.shape == (n, k) and q.compute_dtype == compute_dtype
    assert q.format == WeightFormat(code, group_size).resolve(k, compute_dtype)
    check_against_reference(w, q, WeightFormat(code, group_size), compute_dtype)


@pytest.mark.parametrize("name", PRESETS)
def test_presets_quantize_as_defined(name):
    index = list(PRESETS).index(name)
    n, k = 3 + 2 * index, 32 * (3 + index % 2)
    w = random_weight(n, k, WEIGHT_DTYPES[index % 3], seed=100 + index)
    compute_dtype = (torch.bfloat16, torch.float16)[index % 2]
    q = quantize_weight(w, name, compute_dtype=compute_dtype)
    assert q.format == PRESETS[name] and q.scales.dtype == torch.uint8
    check_against_reference(w, q, PRESETS[name], compute_dtype)


def code_steps(values: np.ndarray, code: tv.DType) -> np.ndarray:
    """The spacing of ``code``'s values around each of ``values`` (1 for integers; for floats the step of
    the binade, at least the subnormals' step)."""
    if code.is_integer:
        return np.ones_like(values)
    _, exponent = np.frexp(np.abs(values))
    return np.ldexp(1.0, np.maximum(exponent - 1, 1 - code.bias) - code.mantissa_bits)


@pytest.mark.parametrize(
    ("dtype", "group_size"),
    [
        *[("int1", 32), ("int2", 64), ("int3", 16), ("int5", None), ("int8", 128), ("uint1", 32)],
        *[("uint4", 16), ("uint8", None), ("float3_e1m1", 32), ("float5_e3m1", 64), ("float8_e5m2", 128)],
        *[("mxfp6_e3m2", "preset"), ("nvfp4", "preset"), ("mxfp8_e4m3", "preset")],
    ],
)
def test_round_trip_error_is_at_most_half_a_step(dtype, group_size):
    """|w - dequantize(w)| <= scale * step / 2 wherever ``w / scale (+ zero)`` lies in the code's range;
    elsewhere the code is the range's end (saturation). Computed with numpy from the codes and scales."""
    seed = sum(map(ord, f"{dtype}{group_size}"))
    w = random_weight(11, 256, torch.float32, seed)
    q = quantize_weight(w, dtype) if group_size == "preset" else quantize_weight(w, dtype, group_size)
    code, size = q.format.dtype, q.group_size
    scales = np.repeat(q.scale_values().numpy().T, size, axis=1)
    if q.global_scale is not None:
        scales = scales * q.global_scale.item()
    zeros = 0.0 if q.zeros is None else np.repeat(q.zeros.double().numpy().T, size, axis=1)
    quotient = w.double().numpy() / scales + zeros
    values = tv.decode(q.codes().numpy(), code).astype(np.float64)
    inside = (quotient >= code.min_value - 0.5 * code.is_integer) & (
        quotient <= code.max_value + 0.5 * code.is_integer
    )
    error = np.abs(w.double().numpy() - q.dequantize(torch.float64).numpy())
    bound = np.abs(scales) * code_steps(quotient, code) / 2
    assert (error[inside] <= bound[inside]).all()
    np.testing.assert_array_equal(
        values[~inside], np.where(quotient[~inside] > 0, code.max_value, code.min_value)
    )
    assert inside.mean() > 0.75  # the bound covers most of the weight (int1 leaves a tenth outside)


@pytest.mark.parametrize("dtype", ["int3", "int4", "int8", "float4_e2m1", "float6_e2m3", "float8_e4m3"])
def test_absmax_elements_are_exact_when_the_scale_is(dtype):
    """With each group's absmax at max_finite * 2^j, the scale is a power of two and absmax is exact."""
    code = tv.dtype(dtype)
    generator = torch.Generator().manual_seed(code.nbits)
    w = torch.rand(6, 64, generator=generator, dtype=torch.float64) * 2 - 1
    largest = torch.randint(0, 32, (6, 2), generator=generator) + torch.arange(2) * 32
    magnitude = float(code.max_value) * 2.0 ** torch.randint(-8, 0, (6, 2), generator=generator)
    signs = torch.where(torch.rand(6, 2, generator=generator) < 0.5, -1.0, 1.0)
    w = w * magnitude.repeat_interleave(32, 1) / 2
    w.scatter_(1, largest, magnitude.double() * signs)
    q = quantize_weight(w.float(), dtype, 32).dequantize(torch.float64)
    assert torch.equal(q.gather(1, largest), w.gather(1, largest))


@pytest.mark.parametrize("dtype", ["int1", "int2"])
def test_int1_and_int2_map_the_largest_element_to_the_most_negative_code(dtype):
    """int1 levels {0, w_ext}, int2 levels {w_ext, w_ext / 2, 0, -w_ext / 2}: w_ext is exact and its code
    is the most negative one, whatever its sign."""
    bits = int(dtype[-1])
    w = random_weight(9, 128, torch.float16, seed=bits)
    q = quantize_weight(w, dtype, 32)
    groups = w.double().reshape(9, 4, 32)
    largest = groups.abs().argmax(-1, keepdim=True)
    extreme = groups.gather(-1, largest)
    assert torch.equal(q.dequantize(torch.float64).reshape(9, 4, 32).gather(-1, largest), extreme)
    codes = q.codes().reshape(9, 4, 32).gather(-1, largest)
    assert (codes == 1 << (bits - 1)).all()  # two's complement of -2^(b-1)
    assert torch.equal(q.scale_values().T[..., None], -extreme / 2 ** (bits - 1))


def test_uint_zero_points_make_zero_exact():
    w = random_weight(7, 96, torch.bfloat16, seed=5)
    w[:, ::5] = 0
    for dtype in ("uint2", "uint3", "uint6"):
        q = quantize_weight(w, dtype, 32)
        assert (q.dequantize(torch.float64)[:, ::5] == 0).all()
        assert torch.equal(q.zeros, q.zeros.round()) and (q.zeros >= 0).all()
