"""``tv.func`` helpers, inlined into the kernels that call them."""

import inspect

import pytest
import torch

import tilevm as tv
from tilevm import ir


@tv.func
def dequantize(codes, scale, SIGNED):
    """int4 or uint4 codes to float16, times the scale; uint4 is offset by 8 first."""
    if SIGNED:
        return tv.cast(codes, tv.float16) * scale
    return (tv.cast(codes, tv.float16) - 8.0) * scale


@tv.func
def running_sum(tile, count):
    total = tile
    for _ in range(count):
        total = total + tile  # reassigns the helper's own name, never the caller's
    return total


@tv.kernel(num_warps=1)
def uses_helpers(packed: tv.Tensor[tv.uint8, 1], out: tv.Tensor[tv.float16, 1], scale: tv.float16,
                 repeats: int, SIGNED: tv.constexpr, COUNT: tv.constexpr):  # fmt: skip
    raw = tv.load_global(packed, offsets=[0], shape=[COUNT // 2])
    codes = tv.view(raw, tv.int4 if SIGNED else tv.uint4)
    values = dequantize(codes, scale, SIGNED)
    summed = running_sum(values, repeats)
    tv.store_global(out, summed - values, offsets=[0])


@pytest.mark.parametrize("signed", [True, False])
def test_helpers_are_inlined_and_compute_like_torch(signed):
    generator = torch.Generator().manual_seed(21 + signed)
    count, repeats, scale = 30, 3, 0.375
    packed = torch.randint(0, 256, (count // 2,), dtype=torch.uint8, generator=generator)
    out = torch.full((count,), float("nan"), dtype=torch.float16)
    uses_helpers[(1,)](packed, out, scale, repeats, SIGNED=signed, COUNT=count)

    nibbles = torch.stack([packed & 0xF, packed >> 4], dim=-1).reshape(-1).to(torch.float64)
    codes = torch.where(nibbles >= 8, nibbles - 16, nibbles) if signed else nibbles - 8
    values = (codes * scale).half()  # exact: small integers times 0.375 fit float16
    summed = values.double()
    for _ in range(repeats):
        summed = (summed + values.double()).half().double()  # each float16 add rounds
    torch.testing.assert_close(out, (summed - values.double()).half(), rtol=0, atol=0)


def test_inlined_instructions_point_at_the_helper_source():
    program = uses_helpers.ir(torch.zeros(4, dtype=torch.uint8), torch.zeros(8, dtype=torch.float16), 1.0, 2,
                              SIGNED=True, COUNT=8)  # fmt: skip
    loops = [inst for inst in program.body if isinstance(inst, ir.For)]
    lines, first = inspect.getsourcelines(running_sum.function)
    loop_line = first + next(i for i, text in enumerate(lines) if "for _ in range(count)" in text)
    assert [loop.loc.line for loop in loops] == [loop_line]
    assert loops[0].loc.file == __file__


def test_return_inside_a_runtime_branch_is_refused_at_its_line():
    @tv.func
    def branchy(tile, n):
        if n > 0:
            return tile  # marker
        return tile

    @tv.kernel
    def calls_branchy(x: tv.Tensor[tv.float32, 1], n: int):
        tv.store_global(x, branchy(tv.load_global(x, offsets=[0], shape=[4]), n), offsets=[0])

    with pytest.raises(tv.CompilationError) as caught:
        calls_branchy.ir(torch.zeros(4), 1)
    lines, first = inspect.getsourcelines(branchy.function)
    assert "return inside a runtime loop or branch" in caught.value.message
    assert caught.value.location.line == first + next(i for i, text in enumerate(lines) if "marker" in text)


def test_wrong_arguments_and_calls_outside_kernels():
    @tv.kernel
    def bad_call(x: tv.Tensor[tv.float32, 1]):
        dequantize(tv.load_global(x, offsets=[0], shape=[4]))

    with pytest.raises(tv.CompilationError, match=r"dequantize\(\): missing a required argument: 'scale'"):
        bad_call.ir(torch.zeros(4))
    with pytest.raises(TypeError, match=r"call it from a @tilevm\.kernel"):
        dequantize(1, 2, 3)


def test_an_error_in_a_helper_names_the_calls_that_led_to_it():
    @tv.func
    def inner(tile):
        return tile % 2  # inner marker

    @tv.func
    def outer(tile):
        return inner(tile) + 1.0  # outer marker

    @tv.kernel
    def calls_outer(x: tv.Tensor[tv.float32, 1]):
        tv.store_global(x, outer(tv.load_global(x, offsets=[0], shape=[4])), offsets=[0])  # kernel marker

    def line(function, marker):
        lines, first = inspect.getsourcelines(function)
        return first + next(i for i, text in enumerate(lines) if marker in text)

    with pytest.raises(tv.CompilationError) as caught:
        calls_outer.ir(torch.zeros(4))
    error = caught.value
    assert error.message == "'mod' needs integer operands, got float32"
    assert error.location.line == line(inner.function, "inner marker")
    assert [site.line for site in error.call_sites] == [
        line(outer.function, "outer marker"),
        line(calls_outer.function, "kernel marker"),
    ]
    rendered = str(error).splitlines()
    assert rendered[0].endswith(": 'mod' needs integer operands, got float32")
    called = [text.strip() for text in rendered if text.strip().startswith("called from")]
    assert called == [f"called from {__file__}:{site.line}:{site.column}" for site in error.call_sites]
