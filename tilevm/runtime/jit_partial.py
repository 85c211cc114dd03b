"""``kernel.partial(**fixed)``: a kernel some of whose arguments are given once, launched with the others.

An op that launches one kernel again and again with the same weights and constexprs pays, per launch, only
for the arguments that change: its binder (``make_binder(signature, fixed)``) computes the fixed arguments'
part of the key and of the launch values once, and gives for the others what the kernel's own binder would,
so that both share the kernel's table of launches (and its compiled specializations). Anything unusual
takes the kernel's slow path with every argument, which binds it or says what is wrong.

The fixed arguments must not change while the partial kernel is used: a tensor's shape, strides and
storage are read once (its values may change: they are read by the kernel).

>>> import torch, tilevm as tv
>>> @tv.kernel(num_warps=1)
... def scale(x: tv.Tensor, out: tv.Tensor, factor: float, BLOCK: tv.constexpr):
...     offsets = [tv.block_idx() * BLOCK]
...     tv.store_global(out, tv.load_global(x, offsets=offsets, shape=[BLOCK]) * factor, offsets=offsets)
>>> x, out = torch.arange(8.0), torch.zeros(8)
>>> halve = scale.partial(factor=0.5, BLOCK=4)
>>> halve[(2,)](x, out)
>>> out.tolist() == [value / 2 for value in range(8)]
True
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING

from tilevm.errors import LaunchError
from tilevm.runtime.launcher_binder import make_binder

if TYPE_CHECKING:
    from tilevm.runtime.jit import Kernel

__all__ = ["PartialKernel"]


class PartialKernel:
    """``kernel`` with the arguments ``fixed`` (by parameter name) given: ``partial[grid](*others)``."""

    def __init__(self, kernel: Kernel, fixed: dict[str, object]) -> None:
        parameters = kernel.signature.parameters
        unknown = [name for name in fixed if name not in parameters]
        if unknown:
            raise LaunchError(f"{kernel.function.__name__} has no parameter {', '.join(map(repr, unknown))}")
        self.kernel = kernel
        self.fixed = dict(fixed)
        #: the parameters still to give, in the kernel's order
        self.signature = inspect.Signature([p for name, p in parameters.items() if name not in fixed])
        self.binder = make_binder(kernel.signature, self.fixed)

    def __repr__(self) -> str:
        return f"<tilevm.kernel {self.kernel.function.__qualname__} with {', '.join(self.fixed)} given>"

    def __getitem__(self, grid: object) -> Callable[..., None]:
        return functools.partial(self.launch, grid)

    def launch(self, grid: object, *args: object, **kwargs: object) -> None:
        """Launch on ``grid`` with the other arguments: through the kernel's table of launches when it has
        this key (the hot path), else through its slow path with every argument."""
        bound = None
        if self.binder is not None:
            try:
                bound = self.binder(*args, **kwargs)
                launch = None if bound is None else self.kernel.launches.get(bound[0])
            except TypeError:  # arguments that do not fit, or an unhashable constexpr: the slow path says
                bound = launch = None
            if launch is not None and launch.launch(grid, bound):
                return
        try:
            named = self.signature.bind(*args, **kwargs).arguments
        except TypeError as error:
            raise LaunchError(
                f"{self.kernel.function.__name__} (with {', '.join(self.fixed)} given): {error}"
            ) from None
        key = None if bound is None else bound[0]
        self.kernel.launch_slowly(grid, (), {**self.fixed, **named}, key)
