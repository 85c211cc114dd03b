"""Reductions accumulate wide: small integers in int32/uint32, floats in float32, or in the ``dtype=`` asked
for; against torch (exactly for integers, within the float32 summation bound for floats). Every launch also
runs with random layouts (``layout_assignment``)."""

import inspect
import math

import numpy as np
import pytest
import torch
from layout_assignment import execute_with_random_layouts, launch_through

import tilevm as tv
from tilevm import ir
from tilevm.ir.accumulators import holds_every_value

TORCH = {tv.int8: torch.int8, tv.int16: torch.int16, tv.int32: torch.int32, tv.int64: torch.int64}


@pytest.fixture(autouse=True)
def launch_with_random_layouts_too(monkeypatch):
    launch_through(monkeypatch, execute_with_random_layouts)


@tv.kernel(num_warps=2)
def reduce_rows(x: tv.Tensor, out: tv.Tensor, OP: tv.constexpr, SHAPE: tv.constexpr, DTYPE: tv.constexpr):
    tile = tv.load_global(x, offsets=[0, 0], shape=SHAPE)
    if OP == "sum":
        reduced = tv.sum(tile, 1, dtype=DTYPE)
    elif OP == "max":
        reduced = tv.max(tile, 1, dtype=DTYPE)
    else:
        reduced = tv.min(tile, 1, dtype=DTYPE)
    tv.store_global(out, reduced, offsets=[0])


def packed(values: np.ndarray, dtype) -> tv.TensorArgument:
    """``values`` of a low-bit ``dtype``, packed densely, as a kernel argument of their shape."""
    codes = tv.encode(values, dtype)
    return tv.view(torch.from_numpy(tv.pack(codes, dtype)), dtype, shape=values.shape)


def test_eight_int3_threes_sum_to_24_in_int32():
    out = torch.zeros(1, dtype=torch.int32)
    reduce_rows[(1,)](packed(np.full((1, 8), 3), tv.int3), out, "sum", (1, 8), None)
    assert out.tolist() == [24]


@pytest.mark.parametrize("dtype", [tv.int3, tv.uint5, tv.int8, tv.uint16, tv.int32])
def test_integer_sums_are_exact_in_the_default_accumulator(dtype):
    rng = np.random.default_rng(91 + dtype.nbits)
    values = rng.integers(dtype.min_value, dtype.max_value + 1, (5, 200))
    values[0] = dtype.max_value  # int32 sums wrap in int32, as torch's int32 sum does
    unsigned = dtype.kind == "uint"
    out = torch.zeros(5, dtype=torch.int32)
    result = tv.view(out, tv.uint32) if unsigned else out
    reduce_rows[(1,)](packed(values, dtype), result, "sum", (5, 256), None)
    expected = torch.from_numpy(values).sum(dim=1, dtype=torch.int64)
    low = 0 if unsigned else -(2**31)
    wrapped = ((expected - low) % 2**32 + low).tolist()
    assert out.numpy().view(np.uint32 if unsigned else np.int32).tolist() == wrapped


def test_the_program_says_the_accumulator_dtype():
    x, out = torch.zeros(4, 8, dtype=torch.float16), torch.zeros(4)
    text = ir.print_program(reduce_rows.ir(x, out, "sum", (4, 8), None))
    assert 'reduce(operand=%tile, op="sum", dtype=float32, dim=1)' in text


def test_bool_sums_count():
    @tv.kernel(num_warps=1)
    def count_positive(x: tv.Tensor[tv.float32, 2], out: tv.Tensor[tv.int32, 1]):
        tv.store_global(out, tv.sum(tv.load_global(x, offsets=[0, 0], shape=[6, 64]) > 0.0, 1), offsets=[0])

    x = torch.randn(6, 50, generator=torch.Generator().manual_seed(92))
    out = torch.zeros(6, dtype=torch.int32)
    count_positive[(1,)](x, out)
    assert torch.equal(out, (x > 0).sum(dim=1, dtype=torch.int32))


@pytest.mark.parametrize("dtype", [tv.float16, tv.bfloat16])
def test_half_precision_sums_accumulate_in_float32(dtype):
    torch_dtype = torch.float16 if dtype == tv.float16 else torch.bfloat16
    generator = torch.Generator().manual_seed(93)
    x = (torch.randn(8, 300, generator=generator) * 100).to(torch_dtype)
    out = torch.full((8,), float("nan"))
    reduce_rows[(1,)](x, out, "sum", (8, 512), None)
    # any order of float32 additions is within (n - 1) * 2^-24 * sum(|x|) of the exact sum
    exact = x.double().sum(dim=1)
    bound = 299 * 2.0**-24 * x.double().abs().sum(dim=1)
    assert torch.all((out.double() - exact).abs() <= bound)
    assert torch.all((out.double() - torch.sum(x.float(), dim=1).double()).abs() <= 2 * bound)
    # the executor's order: float16 values sum exactly in float64, so this is the exact sum rounded once
    if dtype == tv.float16:
        correctly_rounded = [float(np.float32(math.fsum(row))) for row in x.double().tolist()]
        assert out.tolist() == correctly_rounded


def test_a_float16_sum_far_past_float16_range_is_finite_in_float32():
    x = torch.full((2, 64), 60000.0, dtype=torch.float16)
    out = torch.zeros(2)
    reduce_rows[(1,)](x, out, "sum", (2, 64), None)
    assert out.tolist() == [64 * 60000.0] * 2


@pytest.mark.parametrize(("source", "dtype"), [(tv.int8, tv.int8), (tv.int8, tv.int16), (tv.int32, tv.int64)])
def test_dtype_chooses_the_accumulator(source, dtype):
    rng = np.random.default_rng(94)
    x = torch.tensor(rng.integers(source.min_value, source.max_value + 1, (3, 40)), dtype=TORCH[source])
    out = torch.zeros(3, dtype=TORCH[dtype])
    reduce_rows[(1,)](x, out, "sum", (3, 40), dtype)
    assert torch.equal(out, x.sum(dim=1, dtype=TORCH[dtype]))  # torch wraps in the dtype likewise


@pytest.mark.parametrize("op", ["max", "min"])
def test_max_and_min_keep_the_operand_dtype_or_widen_exactly(op):
    values = np.random.default_rng(95).integers(-4, 4, (8, 9))
    kept = torch.zeros(3, dtype=torch.uint8)  # eight int3 results in 24 bits
    reduce_rows[(1,)](packed(values, tv.int3), tv.view(kept, tv.int3, shape=(8,)), op, (8, 16), None)
    widened = torch.zeros(8, dtype=torch.int32)
    reduce_rows[(1,)](packed(values, tv.int3), widened, op, (8, 16), tv.int32)
    expected = getattr(np, op)(values, axis=1).tolist()
    assert tv.decode(tv.unpack(kept.numpy(), tv.int3, 8), tv.int3).tolist() == expected
    assert widened.tolist() == expected


def test_an_accumulator_that_cannot_hold_the_values_is_an_error_at_the_line():
    @tv.kernel
    def narrow(x: tv.Tensor[tv.int8, 2], out: tv.Tensor[tv.uint32, 1]):
        tile = tv.load_global(x, offsets=[0, 0], shape=[4, 4])
        tv.store_global(out, tv.sum(tile, 1, dtype=tv.uint32), offsets=[0])  # marker

    with pytest.raises(tv.CompilationError) as caught:
        narrow.ir(torch.zeros(4, 4, dtype=torch.int8), tv.view(torch.zeros(4, dtype=torch.int32), tv.uint32))
    assert caught.value.message == (
        "a sum of int8 values cannot be computed in uint32: it needs an integer dtype that holds every int8 "
        "value, such as int32"
    )
    lines, first = inspect.getsourcelines(narrow.function)
    assert caught.value.location.line == first + next(i for i, text in enumerate(lines) if "marker" in text)


def _value_set(dtype) -> frozenset:
    values = [0, 1] if dtype.kind == "bool" else tv.dtypes.representable_values(dtype).tolist()
    return frozenset("nan" if value != value else value for value in values)


def test_holds_every_value_matches_the_value_tables():
    dtypes = [dtype for dtype in tv.dtypes.all_dtypes() if dtype.nbits <= 16]
    sets = {dtype: _value_set(dtype) for dtype in dtypes}
    for narrow in dtypes:
        for wide in dtypes:
            same_class = narrow.is_float == wide.is_float and (wide.kind != "bool" or narrow == wide)
            expected = same_class and sets[narrow] <= sets[wide]
            assert holds_every_value(wide, narrow) == expected, (str(wide), str(narrow))


@pytest.mark.parametrize("op", ["max", "min"])
def test_max_and_min_of_bools_are_any_and_all(op):
    @tv.kernel(num_warps=1)
    def any_all(x: tv.Tensor[tv.float32, 2], out: tv.Tensor[tv.int8, 1], OP: tv.constexpr):
        positive = tv.load_global(x, offsets=[0, 0], shape=[8, 4]) > 0.0
        reduced = tv.max(positive, 1) if OP == "max" else tv.min(positive, 1)
        tv.store_global(out, tv.cast(reduced, tv.int8), offsets=[0])

    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(96))
    x[0], x[1] = 1.0, -1.0  # a row of all positives, a row of none
    out = torch.full((8,), -1, dtype=torch.int8)
    any_all[(1,)](x, out, op)
    expected = (x > 0).any(dim=1) if op == "max" else (x > 0).all(dim=1)
    assert torch.equal(out, expected.to(torch.int8))
