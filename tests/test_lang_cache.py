"""The program cache notices what a kernel read outside its arguments: a module global changed, a ``tv.func``
defined again, a global that a called ``tv.func`` reads, a closure variable; and compiles nothing again when
nothing changed (compilations counted). Results compared with numpy."""

import sys

import numpy as np
import pytest
import torch

import tilevm as tv
import tilevm.runtime.jit as jit

SCALE = 3
OFFSET = 10
MODULE = sys.modules[__name__]


@tv.func
def shifted(tile):
    return tile + OFFSET


@tv.kernel(num_warps=1)
def scaled(x: tv.Tensor[tv.int32, 1], out: tv.Tensor[tv.int32, 1], BLOCK: tv.constexpr):
    tile = tv.load_global(x, offsets=[0], shape=[BLOCK])
    tv.store_global(out, shifted(tile * SCALE), offsets=[0])


@pytest.fixture
def compilations(monkeypatch):
    """The number of front-end compilations so far, in a one-item list."""
    count = [0]
    compile_kernel = jit.compile_kernel

    def counting(*args, **kwargs):
        count[0] += 1
        return compile_kernel(*args, **kwargs)

    monkeypatch.setattr(jit, "compile_kernel", counting)
    return count


def run(kernel, x: np.ndarray, **constexprs) -> np.ndarray:
    out = torch.zeros(len(x), dtype=torch.int32)
    kernel[(1,)](torch.from_numpy(x), out, **constexprs)
    return out.numpy()


def test_a_changed_global_or_redefined_func_compiles_again(monkeypatch, compilations):
    x = np.random.default_rng(0).integers(-50, 50, size=8).astype(np.int32)
    np.testing.assert_array_equal(run(scaled, x, BLOCK=8), x * 3 + 10)
    monkeypatch.setattr(MODULE, "SCALE", 5)
    np.testing.assert_array_equal(run(scaled, x, BLOCK=8), x * 5 + 10)
    monkeypatch.setattr(MODULE, "OFFSET", -7)  # read by the tv.func, not by the kernel itself
    np.testing.assert_array_equal(run(scaled, x, BLOCK=8), x * 5 - 7)

    @tv.func
    def doubled_shift(tile):
        return tile + OFFSET * 2

    monkeypatch.setattr(MODULE, "shifted", doubled_shift)  # the helper defined again
    np.testing.assert_array_equal(run(scaled, x, BLOCK=8), x * 5 - 14)
    assert compilations[0] == 4


def test_nothing_changed_compiles_once(monkeypatch, compilations):
    x = np.arange(4, dtype=np.int32)
    for _ in range(3):
        np.testing.assert_array_equal(run(scaled, x, BLOCK=4), x * SCALE + OFFSET)
    monkeypatch.setattr(MODULE, "SCALE", int("3"))  # assigned again, to an equal value
    np.testing.assert_array_equal(run(scaled, x, BLOCK=4), x * 3 + 10)
    assert compilations[0] == 1


def test_a_changed_closure_variable_compiles_again(compilations):
    factor = 2

    @tv.kernel(num_warps=1)
    def closure(x: tv.Tensor[tv.int32, 1], out: tv.Tensor[tv.int32, 1], BLOCK: tv.constexpr):
        tv.store_global(out, tv.load_global(x, offsets=[0], shape=[BLOCK]) * factor, offsets=[0])

    x = np.arange(-3, 5, dtype=np.int32)
    np.testing.assert_array_equal(run(closure, x, BLOCK=8), x * 2)
    np.testing.assert_array_equal(run(closure, x, BLOCK=8), x * 2)
    factor = -4
    np.testing.assert_array_equal(run(closure, x, BLOCK=8), x * factor)
    assert compilations[0] == 2


def test_a_global_defined_over_a_builtin_compiles_again(monkeypatch, compilations):
    @tv.kernel(num_warps=1)
    def clamped(x: tv.Tensor[tv.int32, 1], out: tv.Tensor[tv.int32, 1], BLOCK: tv.constexpr):
        tv.store_global(out, tv.load_global(x, offsets=[0], shape=[BLOCK]) * min(BLOCK, 3), offsets=[0])

    x = np.arange(8, dtype=np.int32)
    np.testing.assert_array_equal(run(clamped, x, BLOCK=8), x * 3)
    monkeypatch.setattr(MODULE, "min", max, raising=False)
    np.testing.assert_array_equal(run(clamped, x, BLOCK=8), x * 8)
    assert compilations[0] == 2


BIAS = 0.0


@tv.kernel(num_warps=1)
def biased(x: tv.Tensor[tv.float32, 1], out: tv.Tensor[tv.float32, 1], BLOCK: tv.constexpr):
    tv.store_global(out, tv.load_global(x, offsets=[0], shape=[BLOCK]) * BIAS, offsets=[0])


def test_a_float_global_is_compared_by_its_bits(monkeypatch, compilations):
    x = np.array([1.0, -2.0, 3.0, -4.0], dtype=np.float32)
    out = torch.full((4,), 7.0)
    biased[(1,)](torch.from_numpy(x), out, BLOCK=4)
    np.testing.assert_array_equal(np.signbit(out.numpy()), np.signbit(x * np.float32(0.0)))
    monkeypatch.setattr(MODULE, "BIAS", -0.0)  # equal to 0.0, but another value: the signs of the zeros flip
    biased[(1,)](torch.from_numpy(x), out, BLOCK=4)
    np.testing.assert_array_equal(np.signbit(out.numpy()), np.signbit(x * np.float32(-0.0)))
    monkeypatch.setattr(MODULE, "BIAS", float("nan"))
    for _ in range(2):  # a NaN is itself: the second launch finds the program
        biased[(1,)](torch.from_numpy(x), out, BLOCK=4)
        assert np.isnan(out.numpy()).all()
    assert compilations[0] == 3


def test_a_global_assigned_another_object_of_the_same_value_compiles_nothing_until_it_changes(
    monkeypatch, compilations
):
    x = np.array([1.5, -2.0, 3.25, -4.0], dtype=np.float32)
    out = torch.full((4,), float("nan"))
    biased[(1,)](torch.from_numpy(x), out, BLOCK=4)
    monkeypatch.setattr(
        MODULE, "BIAS", float("0.0")
    )  # not the object read: compared by value, then by identity
    for _ in range(2):
        out.fill_(float("nan"))
        biased[(1,)](torch.from_numpy(x), out, BLOCK=4)
        np.testing.assert_array_equal(out.numpy(), x * np.float32(0.0))
    assert compilations[0] == 1
    monkeypatch.setattr(MODULE, "BIAS", 1.5)  # then a change is seen
    biased[(1,)](torch.from_numpy(x), out, BLOCK=4)
    np.testing.assert_array_equal(out.numpy(), x * np.float32(1.5))
    assert compilations[0] == 2
