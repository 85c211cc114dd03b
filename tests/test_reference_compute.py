"""Dot products, reductions, where and assign in the reference executor, against torch and numpy."""

import numpy as np
import pytest
import torch

from tilevm.dtypes import DType, float16, float32, int8, int32
from tilevm.ir import (
    AllocRegister,
    AssignTensor,
    Binary,
    Const,
    Dot,
    GlobalView,
    LoadGlobal,
    ProgramBuilder,
    Reduce,
    StoreGlobal,
    Where,
)
from tilevm.runtime.reference import execute

DTYPES = {float16: torch.float16, float32: torch.float32, int8: torch.int8, int32: torch.int32}


class Kernel:
    """A one-block program whose tiles are loaded from, and stored to, whole 2-D torch tensors."""

    def __init__(self) -> None:
        self.builder = ProgramBuilder("compute", num_threads=32)
        self.arguments: list[torch.Tensor] = []

    def view(self, tensor: torch.Tensor, dtype: DType):
        pointer = self.builder.pointer_param(f"p{len(self.arguments)}", dtype)
        self.arguments.append(tensor)
        shape = tuple(Const(extent) for extent in tensor.shape)
        strides = tuple(Const(stride) for stride in tensor.stride())
        return self.builder.emit_output(GlobalView, "view", pointer=pointer, shape=shape, strides=strides)

    def load(self, tensor: torch.Tensor, dtype: DType, shape=None):
        shape = tuple(tensor.shape) if shape is None else shape
        zero = tuple(Const(0) for _ in tensor.shape)
        dims = tuple(range(len(shape)))
        view = self.view(tensor, dtype)
        return self.builder.emit_output(LoadGlobal, "tile", tensor=view, offsets=zero, shape=shape, dims=dims)

    def store(self, tile, tensor: torch.Tensor, dtype: DType) -> None:
        zero = tuple(Const(0) for _ in tensor.shape)
        dims = tuple(range(tile.type.rank))
        self.builder.emit(StoreGlobal(tensor=self.view(tensor, dtype), value=tile, offsets=zero, dims=dims))

    def run(self) -> None:
        execute(self.builder.build(), self.arguments, grid=(1,))


def test_float16_dot_accumulates_in_float32():
    generator = torch.Generator().manual_seed(61)
    a = torch.randn(16, 32, generator=generator).to(torch.float16)
    b = torch.randn(32, 8, generator=generator).to(torch.float16)
    c = torch.randn(16, 8, generator=generator)
    out = torch.full((16, 8), float("nan"))
    kernel = Kernel()
    product = kernel.builder.emit_output(
        Dot, "d", a=kernel.load(a, float16), b=kernel.load(b, float16), accumulator=kernel.load(c, float32)
    )
    kernel.store(product, out, float32)
    kernel.run()
    expected = a.double() @ b.double() + c.double()
    # The executor sums in float64 and rounds once to float32: within half an ulp of float32.
    torch.testing.assert_close(out.double(), expected, rtol=2.0**-24, atol=1e-30)


def test_int8_dot_is_exact_and_wraps_in_the_accumulator():
    rng = np.random.default_rng(62)
    a = torch.tensor(rng.integers(-128, 128, (8, 64)), dtype=torch.int8)
    b = torch.tensor(rng.integers(-128, 128, (64, 4)), dtype=torch.int8)
    c = torch.tensor(rng.integers(-(2**31), 2**31, (8, 4)), dtype=torch.int32)
    out = torch.zeros(8, 4, dtype=torch.int32)
    kernel = Kernel()
    product = kernel.builder.emit_output(
        Dot, "d", a=kernel.load(a, int8), b=kernel.load(b, int8), accumulator=kernel.load(c, int32)
    )
    kernel.store(product, out, int32)
    kernel.run()
    exact = a.long() @ b.long() + c.long()
    wrapped = (exact + 2**31) % 2**32 - 2**31
    assert torch.equal(out.long(), wrapped)


@pytest.mark.parametrize("op", ["sum", "max", "min"])
@pytest.mark.parametrize("dim", [0, 1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_reductions_over_each_dim(op, dim, keepdim):
    generator = torch.Generator().manual_seed(63 + dim + 2 * keepdim)
    values = torch.randn(6, 10, generator=generator)
    values[2, 3] = float("nan")  # max and min skip NaN; sum propagates it
    shape = [6, 10]
    if keepdim:
        shape[dim] = 1
    else:
        del shape[dim]
    out = torch.full(shape, -123.0)
    kernel = Kernel()
    reduced = kernel.builder.emit_output(
        Reduce, "r", operand=kernel.load(values, float32), op=op, dtype=float32, dim=dim, keepdim=keepdim
    )
    kernel.store(reduced, out, float32)
    kernel.run()
    if op == "sum":
        expected = values.double().sum(dim=dim, keepdim=keepdim).float()
    else:
        finite = values.nan_to_num(nan=-np.inf if op == "max" else np.inf)
        expected = getattr(finite, op)(dim=dim, keepdim=keepdim).values
    torch.testing.assert_close(out, expected, rtol=0, atol=0, equal_nan=True)


def test_integer_sum_wraps_and_rank_one_reduction_keeps_its_dim():
    values = torch.tensor([100, 100, 100, -1], dtype=torch.int8)
    out = torch.zeros(1, dtype=torch.int8)
    kernel = Kernel()
    reduced = kernel.builder.emit_output(
        Reduce, "r", operand=kernel.load(values, int8), op="sum", dtype=int8, dim=0
    )
    kernel.store(reduced, out, int8)
    kernel.run()
    assert out.tolist() == [(299 + 128) % 256 - 128]


def test_where_selects_and_broadcasts_a_scalar():
    generator = torch.Generator().manual_seed(64)
    values = torch.randn(4, 8, generator=generator)
    out = torch.full((4, 8), float("nan"))
    kernel = Kernel()
    tile = kernel.load(values, float32)
    positive = kernel.builder.emit_output(Binary, "positive", op="gt", lhs=tile, rhs=Const(0.0, float32))
    selected = kernel.builder.emit_output(
        Where, "w", condition=positive, on_true=tile, on_false=Const(-1.5, float32)
    )
    kernel.store(selected, out, float32)
    kernel.run()
    assert torch.equal(out, torch.where(values > 0, values, torch.tensor(-1.5)))


def test_assign_overwrites_a_tile():
    out = torch.zeros(2, 3, dtype=torch.int32)
    kernel = Kernel()
    builder = kernel.builder
    tile = builder.emit_output(AllocRegister, "tile", dtype=int32, shape=(2, 3), init=Const(4))
    doubled = builder.emit_output(Binary, "doubled", op="mul", lhs=tile, rhs=Const(-3))
    builder.emit(AssignTensor(destination=tile, value=doubled))
    kernel.store(tile, out, int32)
    kernel.run()
    assert out.tolist() == [[-12] * 3] * 2
