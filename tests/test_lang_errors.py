"""DSL errors: each rule broken once; the message and the user's source line are asserted."""

import inspect

import pytest
import torch

import tilevm as tv


def line_of(function, marker: str) -> int:
    """The file line of the first source line of ``function`` containing ``marker``."""
    lines, first = inspect.getsourcelines(function)
    for offset, text in enumerate(lines):
        if marker in text:
            return first + offset
    raise AssertionError(f"marker {marker!r} not in {function.__name__}")


def compile_error(kernel, *args, **kwargs) -> tv.CompilationError:
    with pytest.raises(tv.CompilationError) as caught:
        kernel.ir(*args, **kwargs)
    return caught.value


def vector() -> torch.Tensor:
    return torch.randn(100, generator=torch.Generator().manual_seed(5))


def test_unknown_name_points_at_the_line():
    @tv.kernel
    def uses_unknown(x: tv.Tensor):
        tile = tv.load_global(x, offsets=[0], shape=[32])
        tv.store_global(x, tile + undefined_name, offsets=[0])  # noqa: F821  marker

    error = compile_error(uses_unknown, vector())
    assert "name 'undefined_name' is not defined" in error.message
    assert error.location.line == line_of(uses_unknown, "marker")
    assert error.location.file == __file__
    assert "undefined_name" in str(error) and "^" in str(error)


def test_mixed_dtypes_need_a_cast():
    @tv.kernel
    def mixes(x: tv.Tensor):
        tile = tv.load_global(x, offsets=[0], shape=[32])
        halves = tv.cast(tile, tv.float16)
        tv.store_global(x, tile + halves, offsets=[0])  # marker

    error = compile_error(mixes, vector())
    assert error.message == "operands have different dtypes (lhs: float32, rhs: float16); cast one of them"
    assert error.location.line == line_of(mixes, "marker")


def test_dot_shape_mismatch():
    @tv.kernel
    def bad_dot(x: tv.Tensor):
        a = tv.register_tensor(tv.float16, [16, 32], init=1.0)
        b = tv.register_tensor(tv.float16, [16, 8], init=1.0)
        acc = tv.register_tensor(tv.float32, [16, 8], init=0.0)
        acc = tv.dot(a, b, acc)  # marker

    error = compile_error(bad_dot, vector())
    assert "dot shapes do not match" in error.message
    assert error.location.line == line_of(bad_dot, "marker")


def test_unsupported_construct():
    @tv.kernel
    def uses_try(x: tv.Tensor):
        try:  # marker
            pass
        finally:
            pass

    error = compile_error(uses_try, vector())
    assert "unsupported Python statement" in error.message and "Try" in error.message
    assert error.location.line == line_of(uses_try, "marker")


def test_name_defined_inside_a_runtime_loop_is_not_visible_after_it():
    @tv.kernel
    def leaks(x: tv.Tensor, n: int):
        for i in range(n):
            tile = tv.load_global(x, offsets=[i], shape=[32])
        tv.store_global(x, tile, offsets=[0])  # marker

    error = compile_error(leaks, vector(), 3)
    assert "'tile' is defined inside the loop" in error.message
    assert error.location.line == line_of(leaks, "marker")


def test_reassigning_with_another_shape_inside_a_loop():
    @tv.kernel
    def reshapes(x: tv.Tensor, n: int):
        tile = tv.load_global(x, offsets=[0], shape=[32])
        for i in range(n):
            tile = tv.load_global(x, offsets=[i], shape=[16])  # marker
        tv.store_global(x, tile, offsets=[0])

    error = compile_error(reshapes, vector(), 3)
    assert "cannot assign" in error.message
    assert error.location.line == line_of(reshapes, "marker")


def test_a_tuple_reassigned_inside_a_loop_keeps_its_length_and_its_constant_parts():
    @tv.kernel
    def grows(x: tv.Tensor, n: int):
        pair = (tv.load_global(x, offsets=[0], shape=[32]), 1)
        for i in range(n):
            pair = (pair[0], i, i)  # marker
        tv.store_global(x, pair[0], offsets=[0])

    error = compile_error(grows, vector(), 3)
    assert "'pair' holds a tuple of 2" in error.message
    assert "only be given another tuple of 2" in error.message
    assert error.location.line == line_of(grows, "marker")

    @tv.kernel
    def swaps_tensors(x: tv.Tensor, y: tv.Tensor, n: int):
        pair = (x, 1)
        for i in range(n):
            pair = (y, i)  # marker
        tv.store_global(pair[0], tv.load_global(x, offsets=[0], shape=[32]), offsets=[0])

    error = compile_error(swaps_tensors, vector(), vector(), 3)
    assert "part 0 of 'pair' holds" in error.message and "cannot be given" in error.message
    assert error.location.line == line_of(swaps_tensors, "marker")


def test_runtime_condition_must_be_bool():
    @tv.kernel
    def int_condition(x: tv.Tensor, n: int):
        if n:  # marker
            tv.sync()

    error = compile_error(int_condition, vector(), 3)
    assert "must be a bool scalar" in error.message
    assert error.location.line == line_of(int_condition, "marker")


def test_python_function_cannot_take_kernel_values():
    @tv.kernel
    def calls_python(x: tv.Tensor):
        tile = tv.load_global(x, offsets=[0], shape=[32])
        print(tile)  # marker

    error = compile_error(calls_python, vector())
    assert "cannot take kernel values" in error.message
    assert error.location.line == line_of(calls_python, "marker")


def test_compile_time_assert():
    @tv.kernel
    def checks(x: tv.Tensor, BLOCK: tv.constexpr):
        assert BLOCK % 32 == 0, "BLOCK must be a multiple of 32"  # marker

    error = compile_error(checks, vector(), BLOCK=48)
    assert error.message == "BLOCK must be a multiple of 32"
    assert error.location.line == line_of(checks, "marker")


def test_integer_true_division_is_refused():
    @tv.kernel
    def divides(x: tv.Tensor, n: int):
        tv.store_global(x, tv.register_tensor(tv.float32, [4], init=1.0), offsets=[n / 2])  # marker

    error = compile_error(divides, vector(), 4)
    assert "use '//'" in error.message
    assert error.location.line == line_of(divides, "marker")


def test_literal_out_of_range_for_dtype():
    @tv.kernel
    def overflows(x: tv.Tensor[tv.int8]):
        tile = tv.load_global(x, offsets=[0], shape=[32])
        tv.store_global(x, tile + 300, offsets=[0])  # marker

    error = compile_error(overflows, torch.zeros(64, dtype=torch.int8))
    assert "300 does not fit in int8" in error.message
    assert error.location.line == line_of(overflows, "marker")


def test_builtin_outside_a_kernel():
    with pytest.raises(tv.CompilationError, match=r"only be called inside a @tilevm\.kernel"):
        tv.load_global(None, offsets=[0], shape=[4])


def test_missing_annotation_is_refused_at_decoration():
    with pytest.raises(TypeError, match="parameter 'x' needs an annotation"):

        @tv.kernel
        def unannotated(x):
            pass


def test_not_of_an_integer_is_refused():
    @tv.kernel
    def negates(x: tv.Tensor, n: int):
        if not n:  # marker
            tv.sync()

    error = compile_error(negates, vector(), 3)
    assert "'not' needs a bool" in error.message
    assert error.location.line == line_of(negates, "marker")
