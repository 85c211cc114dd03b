"""Launch-time argument checks and compile-time specialization."""

import pytest
import torch

import tilevm as tv


@tv.kernel(num_warps=1)
def copy_kernel(src: tv.Tensor[tv.float32, 1], dst: tv.Tensor[tv.float32, 1], n: int, BLOCK: tv.constexpr):
    start = tv.block_idx() * BLOCK
    tile = tv.load_global(src, offsets=[start], shape=[BLOCK])
    if start < n:
        tv.store_global(dst, tile, offsets=[start])


def floats(count: int, seed: int) -> torch.Tensor:
    return torch.randn(count, generator=torch.Generator().manual_seed(seed))


def test_constexpr_changes_the_program_and_runtime_scalar_does_not():
    src, dst = floats(100, 1), floats(100, 2)
    with_128 = copy_kernel.ir(src, dst, 99, BLOCK=128)
    with_256 = copy_kernel.ir(src, dst, 99, BLOCK=256)
    assert with_128 != with_256
    assert copy_kernel.ir(src, dst, 97, BLOCK=128) is with_128  # n=97 and n=99: same specialization


def test_divisibility_by_16_specializes():
    src, dst = floats(100, 1), floats(100, 2)
    odd = copy_kernel.ir(src, dst, 99, BLOCK=128)
    divisible = copy_kernel.ir(src, dst, 96, BLOCK=128)
    assert odd is not divisible
    divisibility = {param.variable.name: param.divisibility for param in divisible.params}
    assert (
        divisibility["n"] == 16
        and {param.variable.name: param.divisibility for param in odd.params}["n"] == 1
    )


def test_unit_stride_is_a_constant_and_other_strides_are_parameters():
    @tv.kernel
    def reads_2d(x: tv.Tensor[tv.float32, 2]):
        tv.store_global(x, tv.load_global(x, offsets=[0, 0], shape=[4, 4]), offsets=[0, 0])

    contiguous = torch.randn(8, 8)
    names = [param.variable.name for param in reads_2d.ir(contiguous).params]
    assert names == ["x", "x_size0", "x_size1", "x_stride0"]
    transposed_names = [param.variable.name for param in reads_2d.ir(contiguous.t()).params]
    assert transposed_names == ["x", "x_size0", "x_size1", "x_stride1"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((torch.zeros(10, dtype=torch.float16), torch.zeros(10), 10), "argument 'src' is a float16"),
        ((torch.zeros(2, 5), torch.zeros(10), 10), "argument 'src' has rank 2"),
        ((torch.zeros(10), torch.zeros(10), 2.5), "argument 'n' must be an int"),
        ((torch.zeros(10), [0.0] * 10, 10), "argument 'dst' must be a torch tensor"),
        ((torch.zeros(10), torch.zeros(10)), "missing a required argument: 'n'"),
    ],
)
def test_bad_arguments_are_refused_before_launch(arguments, message):
    with pytest.raises(tv.LaunchError, match=message):
        copy_kernel[(1,)](*arguments, BLOCK=16)


def test_launch_needs_a_grid():
    with pytest.raises(tv.LaunchError, match=r"copy_kernel\[grid\]"):
        copy_kernel(floats(10, 1), floats(10, 2), 10, BLOCK=16)


def test_bad_grid():
    with pytest.raises(tv.LaunchError, match="grid must be 1 to 3"):
        copy_kernel[(1, 2, 3, 4)](floats(10, 1), floats(10, 2), 10, BLOCK=16)


def test_low_bit_view_checks_the_element_count():
    packed = torch.zeros(4, 3, dtype=torch.uint8)
    assert tv.view(packed, tv.int3).shape == (4, 8)
    with pytest.raises(tv.LaunchError, match="does not hold a whole number of int5"):
        tv.view(packed, tv.int5)
    with pytest.raises(tv.LaunchError, match="needs 40 bits, the tensor has 96"):
        tv.view(packed, tv.int4, shape=(10,))
    with pytest.raises(tv.LaunchError, match="contiguous"):
        tv.view(torch.zeros(4, 4, dtype=torch.uint8).t(), tv.int4)


def test_annotation_dtype_reinterprets_bytes():
    @tv.kernel
    def reads_int4(w: tv.Tensor[tv.int4, 2]):
        tv.store_global(w, tv.load_global(w, offsets=[0, 0], shape=[2, 8]), offsets=[0, 0])

    program = reads_int4.ir(torch.zeros(2, 4, dtype=torch.uint8))
    pointer = program.params[0].variable
    assert str(pointer.type) == "ptr<int4>"
    with pytest.raises(tv.LaunchError, match="does not hold a whole number of int3"):

        @tv.kernel
        def reads_int3(w: tv.Tensor[tv.int3, 2]):
            pass

        reads_int3.ir(torch.zeros(2, 4, dtype=torch.uint8))


def test_an_empty_grid_runs_no_block_and_a_scalar_must_fit_its_dtype():
    src, dst = floats(10, 1), floats(10, 2)
    before = dst.clone()
    copy_kernel[(0,)](src, dst, 10, BLOCK=16)
    assert torch.equal(dst, before)
    with pytest.raises(tv.LaunchError, match=r"argument n must be an int in \[-2147483648, 2147483647\]"):
        copy_kernel[(1,)](src, dst, 2**40, BLOCK=16)


def test_a_misaligned_reinterpreted_tensor_is_refused():
    @tv.kernel
    def reads_halves(x: tv.Tensor[tv.float16, 1]):
        tv.store_global(x, tv.load_global(x, offsets=[0], shape=[4]), offsets=[0])

    storage = torch.zeros(17, dtype=torch.uint8)
    with pytest.raises(tv.LaunchError, match="not a multiple of 2 bytes"):
        reads_halves[(1,)](tv.view(storage[1:], tv.float16))


@tv.kernel(num_warps=1)
def fill(out: tv.Tensor[tv.float32, 1], VALUES: tv.constexpr):
    for index, value in enumerate(VALUES):
        tv.store_global(out, tv.register_tensor(tv.float32, [1], init=value), offsets=[index])


def test_float_constexprs_are_told_apart_by_their_bits():
    out = torch.full((2,), float("nan"))
    fill[(1,)](out, VALUES=(0.0, 1.5))
    assert out.tolist() == [0.0, 1.5] and not torch.signbit(out[0])
    fill[(1,)](out, VALUES=(-0.0, 1.5))  # equal to (0.0, 1.5) in Python, but another program
    assert out.tolist() == [0.0, 1.5] and torch.signbit(out[0])
    assert fill.ir(out, VALUES=(-0.0, 1.5)) is not fill.ir(out, VALUES=(0.0, 1.5))
    assert fill.ir(out, VALUES=(0.0, 1.5)) is fill.ir(out, VALUES=(0.0, 1.5))


def test_a_nan_constexpr_finds_its_program_again():
    out = torch.zeros(1)
    first = fill.ir(out, VALUES=(float("nan"),))
    assert fill.ir(out, VALUES=(float("nan"),)) is first  # another NaN object with the same bits
    fill[(1,)](out, VALUES=(float("nan"),))
    assert torch.isnan(out).all()


def test_an_unhashable_constexpr_is_refused_by_name():
    with pytest.raises(tv.LaunchError, match="constexpr argument 'VALUES' must be hashable, got list"):
        fill[(1,)](torch.zeros(1), VALUES=[1.0])
