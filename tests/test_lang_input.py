"""Input a user passes that must be accepted (packed low-bit tensors, numpy numbers), and mistakes whose
messages must say what is wrong in the user's terms (no reprs of IR objects or of ``inspect._empty``)."""

import inspect
import linecache

import numpy as np
import pytest
import torch

import tilevm as tv
from tilevm.layout import spatial


def line_of(function, marker: str) -> int:
    lines, first = inspect.getsourcelines(function)
    return first + next(offset for offset, text in enumerate(lines) if marker in text)


@tv.kernel(num_warps=1)
def widen_int3(x: tv.Tensor[tv.int3, 2], out: tv.Tensor[tv.int32, 2], ROWS: tv.constexpr, COLS: tv.constexpr):
    tile = tv.load_global(x, offsets=[0, 0], shape=[ROWS, COLS])
    tv.store_global(out, tv.cast(tile, tv.int32), offsets=[0, 0])


def test_a_matrix_packed_by_pack_is_read_with_its_padding_bits():
    values = np.random.default_rng(8).integers(-4, 4, size=(13, 10))
    packed = tv.dtypes.pack(values & 0b111, tv.int3)  # 390 bits in 49 bytes: 2 bits of padding
    assert packed.size == 49
    out = torch.zeros(13, 10, dtype=torch.int32)
    widen_int3[(1,)](tv.view(torch.from_numpy(packed), tv.int3, (13, 10)), out, ROWS=16, COLS=16)
    np.testing.assert_array_equal(out.numpy(), values)


def test_padding_is_fewer_bits_than_one_element_of_the_tensor():
    words = torch.zeros(2, dtype=torch.int32)  # 64 bits hold 21 int3 elements and 1 bit of padding
    assert tv.view(words, tv.int3, (3, 7)).shape == (3, 7)
    assert tv.view(words, tv.int3, (11,)).strides == (1,)  # 31 bits of padding, less than one int32
    with pytest.raises(tv.LaunchError) as caught:
        tv.view(words, tv.int3, (10,))
    assert str(caught.value) == (
        "view as int3[10] needs 30 bits, the tensor has 64 (padding after the last element must be fewer "
        "than 32 bits)"
    )
    with pytest.raises(tv.LaunchError, match="needs 408 bits, the tensor has 392"):
        tv.view(torch.zeros(49, dtype=torch.uint8), tv.int3, (136,))


def test_reinterpreting_by_annotation_asks_for_the_shape_when_the_bits_are_padded():
    packed = torch.from_numpy(tv.dtypes.pack(np.zeros(130, np.int64), tv.int3))
    with pytest.raises(tv.LaunchError) as caught:
        widen_int3[(1,)](packed, torch.zeros(13, 10, dtype=torch.int32), ROWS=16, COLS=16)
    assert str(caught.value) == (
        "a row of 392 bits does not hold a whole number of int3 elements; give the shape: "
        "tv.view(tensor, tv.int3, shape)"
    )


@tv.kernel(num_warps=1)
def scale_and_shift(
    x: tv.Tensor,
    out: tv.Tensor,
    factor: float,
    start: int,
    negate: bool,
    BLOCK: tv.constexpr,
    BIAS: tv.constexpr,
):
    offsets = tv.arange(BLOCK) + start
    tile = tv.load_global(x, offsets=[start], shape=[BLOCK]) * factor + BIAS
    if negate:
        tile = -tile
    tv.store_global(out, tv.where(offsets < x.shape[0], tile, 0.0), offsets=[start])


@pytest.mark.parametrize("negate", [np.bool_(True), np.bool_(False)])
def test_numpy_numbers_are_taken_as_the_python_numbers_they_hold(negate):
    x = torch.randn(37, generator=torch.Generator().manual_seed(2))
    out = torch.zeros(37)
    start, block = np.int64(5), np.int32(32)
    scale_and_shift[(1,)](x, out, np.float32(0.25), start, negate, BLOCK=block, BIAS=np.float64(1.5))
    expected = np.zeros(37, dtype=np.float32)
    expected[5:37] = x.numpy()[5:37] * np.float32(0.25) + np.float32(1.5)
    if negate:
        expected = -expected
    np.testing.assert_array_equal(out.numpy(), expected)
    as_numpy = scale_and_shift.ir(x, out, np.float32(0.25), start, negate, BLOCK=block, BIAS=np.float64(1.5))
    assert scale_and_shift.ir(x, out, 0.25, 5, bool(negate), BLOCK=32, BIAS=1.5) is as_numpy  # one program


GLOBAL_BLOCK = np.int64(16)
GLOBAL_SCALE = np.float16(0.5)


def test_numpy_numbers_a_kernel_reads_from_its_module_are_python_numbers():
    @tv.kernel(num_warps=1)
    def halve(x: tv.Tensor):
        tile = tv.load_global(x, offsets=[0], shape=[GLOBAL_BLOCK])
        tv.store_global(x, tile * GLOBAL_SCALE, offsets=[0])

    x = torch.randn(20, generator=torch.Generator().manual_seed(3))
    expected = x.numpy().copy()
    halve[(1,)](x)
    expected[:16] *= np.float32(0.5)
    np.testing.assert_array_equal(x.numpy(), expected)


def test_a_runtime_size_as_a_shape_says_the_shape_must_be_a_compile_time_int():
    @tv.kernel
    def shape_from_size(x: tv.Tensor):
        tile = tv.load_global(x, offsets=[0], shape=[x.shape[0]])  # marker
        tv.store_global(x, tile, offsets=[0])

    with pytest.raises(tv.CompilationError) as caught:
        shape_from_size.ir(torch.zeros(8))
    assert caught.value.message == (
        "shape must be a list of positive compile-time ints (constexprs, not tensor sizes), got a list of "
        "[a runtime int32 scalar (known only at launch)]"
    )
    assert caught.value.location.line == line_of(shape_from_size, "marker")


@tv.kernel(num_warps=1)
def runtime_where_compile_time(x: tv.Tensor, n: int, CASE: tv.constexpr):
    tile = tv.load_global(x, offsets=[0, 0], shape=[8, 8])
    if CASE == "dims":
        tv.store_global(x, tv.load_global(x, offsets=[0, 0], shape=[8], dims=[n]), offsets=[0, 0])  # dims
    if CASE == "sum":
        tv.store_global(x, tv.sum(tile, dim=n), offsets=[0, 0])  # sum
    if CASE == "permute":
        tv.store_global(x, tv.permute(tile, [n, 0]), offsets=[0, 0])  # permute
    if CASE == "unroll":
        for row in tv.range(0, 8, unroll=n):  # unroll
            tv.store_global(x, tile, offsets=[row, 0])


RUNTIME = "a runtime int32 scalar (known only at launch)"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("dims", f"dims must be a list of compile-time ints, got a list of [{RUNTIME}]"),
        ("sum", f"sum's dim must be a compile-time int, got {RUNTIME}"),
        (
            "permute",
            f"permute's dims must be a list of compile-time ints, got a list of [{RUNTIME}, "
            "the Python int 0]",
        ),
        ("unroll", f"unroll must be a positive compile-time int, got {RUNTIME}"),
    ],
)
def test_a_runtime_scalar_where_a_compile_time_int_is_required_is_named(case, message):
    with pytest.raises(tv.CompilationError) as caught:
        runtime_where_compile_time.ir(torch.zeros(8, 8), 3, CASE=case)
    assert caught.value.message == message
    assert caught.value.location.line == line_of(runtime_where_compile_time, f"# {case}")


def test_a_layout_of_the_wrong_shape_names_the_tile_type():
    @tv.kernel(num_warps=1)
    def wrong_layout(x: tv.Tensor):
        tile = tv.load_global(x, offsets=[0], shape=[16], layout=spatial(32))  # marker
        tv.store_global(x, tile, offsets=[0])

    with pytest.raises(tv.CompilationError) as caught:
        wrong_layout.ir(torch.zeros(16))
    assert caught.value.message == "layout spatial(32) does not fit a value of type register<float32, [16]>"
    assert caught.value.location.line == line_of(wrong_layout, "marker")


def test_an_unannotated_parameter_is_named():
    def unannotated(x: tv.Tensor, n):
        pass

    with pytest.raises(TypeError) as caught:
        tv.kernel(unannotated)
    assert str(caught.value) == (
        "test_an_unannotated_parameter_is_named.<locals>.unannotated: parameter 'n' needs an annotation: "
        "tv.Tensor (or tv.Tensor[dtype]), tv.constexpr, int, float, bool or a tilevm dtype; it has none"
    )


FILL_SOURCE = """\
@tv.kernel(num_warps=1)
def fill(out: tv.Tensor, value: float):
    tv.store_global(out, tv.register_tensor(tv.float32, [32], init=value), offsets=[0])
"""


def test_a_kernel_from_exec_without_its_source_says_how_to_provide_it():
    namespace = {"tv": tv}
    exec(FILL_SOURCE, namespace)
    with pytest.raises(tv.CompilationError) as caught:
        namespace["fill"][(1,)](torch.zeros(32), 1.0)
    assert caught.value.message == (
        "the source of fill cannot be read (defined in <string>): tilevm compiles a kernel or tv.func from "
        "its source, so define it in a .py file, or compile() its text under a file name whose lines are in "
        "linecache.cache (as IPython does)"
    )


def test_a_kernel_from_exec_with_its_source_in_linecache_runs():
    name = "<tilevm-test-fill>"
    linecache.cache[name] = (len(FILL_SOURCE), None, FILL_SOURCE.splitlines(keepends=True), name)
    try:
        namespace = {"tv": tv}
        exec(compile(FILL_SOURCE, name, "exec"), namespace)
        out = torch.zeros(40)
        namespace["fill"][(1,)](out, 2.5)
    finally:
        del linecache.cache[name]
    np.testing.assert_array_equal(out.numpy(), np.r_[np.full(32, 2.5), np.zeros(8)].astype(np.float32))
