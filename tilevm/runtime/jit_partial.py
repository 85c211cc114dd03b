"""``kernel.partial(**fixed)``: a kernel some of whose arguments are given once, launched with the others.

An op that launches one kernel again and again with the same weights and constexprs pays, per launch, only
for the arguments that change: its binder (``make_binder(signature, fixed)``) binds the others only (their
key and values, as the kernel's own binder would), and it keeps its own table of launches: for each key, the
kernel's launch of that specialization (compiled once for the kernel and every partial kernel of it) with
the fixed arguments' values given once (on a GPU, written into a parameter buffer of its own, so that a
launch packs the other values only: ``CudaLaunch.rebound``). Anything unusual takes the kernel's slow path
with every argument, which binds it or says what is wrong, and files its launch in the table.

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
from tilevm.runtime.launcher import CpuLaunch, CudaLaunch, checked_grid
from tilevm.runtime.launcher_binder import fixed_parts, make_binder, value_ranges

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
        #: the fixed arguments' values and arguments as the kernel's binder gives them (None: one is unusual,
        #: and every launch takes the slow path)
        self.parts = fixed_parts(kernel.signature, self.fixed)
        self.binder = make_binder(kernel.signature, self.fixed) if self.parts is not None else None
        #: the binder's key -> the launch of its specialization with the fixed arguments given
        self.launches: dict[tuple, CudaLaunch | FixedLaunch] = {}

    def __repr__(self) -> str:
        return f"<tilevm.kernel {self.kernel.function.__qualname__} with {', '.join(self.fixed)} given>"

    def __getitem__(self, grid: object) -> Callable[..., None]:
        return functools.partial(self.launch, grid)

    def launch(self, grid: object, *args: object, **kwargs: object) -> None:
        """Launch on ``grid`` with the other arguments: through this kernel's table of launches when it has
        this key (the hot path), else through the kernel's slow path with every argument."""
        bound = None
        if self.binder is not None:
            try:
                bound = self.binder(*args, **kwargs)
                launch = None if bound is None else self.launches.get(bound[0])
            except TypeError:  # arguments that do not fit, or an unhashable constexpr: the slow path says
                bound = launch = None
            if launch is not None:
                if type(grid) is not tuple:  # a callable grid is given every argument by name
                    grid = checked_grid(grid, lambda: self._named(bound[2]))
                if launch.launch(grid, bound):
                    return
        try:
            named = self.signature.bind(*args, **kwargs).arguments
        except TypeError as error:
            raise LaunchError(
                f"{self.kernel.function.__name__} (with {', '.join(self.fixed)} given): {error}"
            ) from None
        launch = self.kernel.launch_slowly(grid, (), {**self.fixed, **named})
        if bound is not None:
            self.launches[bound[0]] = self._with_fixed(launch)

    def _named(self, arguments: tuple) -> dict[str, object]:
        """Every argument by name, the free ones being ``arguments`` (as the binder gives them)."""
        named = {name: parts[1] for name, parts in self.parts.items()}
        named.update(zip(self.signature.parameters, arguments))
        return named

    def _with_fixed(self, launch: CpuLaunch | CudaLaunch) -> CudaLaunch | FixedLaunch:
        """The kernel's ``launch`` of a specialization, taking the binder's values and arguments of the free
        arguments: on a GPU, with the fixed values in its own parameter buffer; on the CPU, completed with
        them at every launch (``FixedLaunch``)."""
        ranges = value_ranges(launch.specialization.described)
        free = [position for name in self.signature.parameters for position in ranges[name]]
        values: list[object] = [0] * launch.layout.width
        for name, (fixed_values, _) in self.parts.items():
            values[ranges[name].start : ranges[name].stop] = fixed_values
        if isinstance(launch, CudaLaunch):
            index = {position: number for number, position in enumerate(free)}
            positions, constants = [], []
            for position in launch.layout.select:
                if position in index:
                    positions.append(index[position])
                else:
                    positions.append(len(free) + len(constants))
                    constants.append(values[position])
            return launch.rebound(positions, len(free), constants)
        names = list(self.kernel.signature.parameters)
        arguments = [self.parts[name][1] if name in self.parts else None for name in names]
        free_arguments = [names.index(name) for name in self.signature.parameters]
        return FixedLaunch(launch, values, free, arguments, free_arguments)


class FixedLaunch:
    """A partial kernel's launch on CPU tensors: the binder's values and arguments of the free arguments
    (``free``, ``free_arguments``: their positions among the kernel's) completed with the fixed ones'
    (``values``, ``arguments``), as the kernel's ``launch`` takes them."""

    def __init__(
        self,
        launch: CpuLaunch,
        values: list[object],
        free: list[int],
        arguments: list[object],
        free_arguments: list[int],
    ) -> None:
        self.inner = launch
        self.values, self.free = values, free
        self.arguments, self.free_arguments = arguments, free_arguments

    def launch(self, grid: tuple[int, ...], bound: tuple[tuple, tuple, tuple]) -> bool:
        """Launch with a partial binder's values; False if the program is stale (``CpuLaunch.launch``)."""
        values, arguments = list(self.values), list(self.arguments)
        for position, value in zip(self.free, bound[1]):
            values[position] = value
        for position, argument in zip(self.free_arguments, bound[2]):
            arguments[position] = argument
        return self.inner.launch(grid, (bound[0], tuple(values), tuple(arguments)))
