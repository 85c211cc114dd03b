"""What runs one specialization on one device, on the hot path of a launch: ``CpuLaunch`` (the SIMT
interpreter or the reference executor) and ``CudaLaunch`` (the compiled PTX through
``tilevm.runtime.cuda.CudaLauncher`` on torch's current stream).

A kernel keeps one of these per binder key (``tilevm.runtime.launcher_binder``): a cached launch is the
binder, a dict lookup and ``launch(grid, bound)``. ``launch`` answers False, launching nothing, when a
global that the program read has changed since it was compiled, so that the kernel compiles again; it takes
values from the binder (``bound``) or, on the slow path, ``run`` takes the bound arguments.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from tilevm.errors import LaunchError
from tilevm.runtime.binding import flat_values
from tilevm.runtime.launcher_binder import Layout

if TYPE_CHECKING:
    from tilevm.runtime.cuda import CudaLauncher
    from tilevm.runtime.jit import Specialization

__all__ = ["PADDING", "CpuLaunch", "CudaLaunch", "checked_grid", "current_stream"]

MAX_GRID_RANK = 3
#: what pads a grid of 1, 2 or 3 axes to the three that CUDA launches take
PADDING = {1: (1, 1), 2: (1,), 3: ()}


def checked_grid(grid: object, named: Callable[[], dict[str, object]]) -> tuple[int, ...]:
    """``grid`` as 1 to 3 non-negative ints; a callable grid is called with the arguments by name
    (``named()``, built only then), an int is one axis.

    >>> checked_grid((4, 2), dict), checked_grid(lambda meta: meta["n"] // 2, lambda: {"n": 8})
    ((4, 2), (4,))
    """
    if type(grid) is tuple and 0 < len(grid) <= MAX_GRID_RANK:
        for extent in grid:
            if type(extent) is not int or extent < 0:
                break
        else:
            return grid  # the common case, checked without building anything
    if callable(grid):
        grid = grid(named())
    if isinstance(grid, int):
        grid = (grid,)
    if (
        not isinstance(grid, (tuple, list))
        or not 1 <= len(grid) <= MAX_GRID_RANK
        or not all(isinstance(extent, int) and extent >= 0 for extent in grid)
    ):
        raise LaunchError(f"grid must be 1 to 3 non-negative ints (or a function giving them), got {grid!r}")
    return tuple(grid)


class CpuLaunch:
    """A specialization run on CPU tensors by the executor ``TILEVM_CPU_EXECUTOR`` names
    (``Specialization.run_on_cpu``)."""

    def __init__(self, specialization: Specialization, layout: Layout, names: Sequence[str]) -> None:
        self.specialization = specialization
        self.layout = layout
        self.names = tuple(names)

    def launch(self, grid: object, bound: tuple[tuple, tuple, tuple]) -> bool:
        """Run with a binder's values (see the module docstring); False if the program is stale."""
        arguments = bound[2]
        pointers = self.layout.pointers
        # the binder's key tells CUDA devices apart, not the others (a meta tensor): the slow path does
        if not self.specialization.captures.unchanged() or any(
            not arguments[owner].is_cpu for _, owner in pointers
        ):
            return False
        grid = checked_grid(grid, lambda: dict(zip(self.names, arguments)))
        values = list(self.layout.values(bound[1]))
        for index, owner in pointers:
            values[index] = arguments[owner]  # the executors read the tensor itself
        self.execute(grid, values)
        return True

    def run(self, grid: tuple[int, ...], values: dict[str, object]) -> None:
        """Run with the slow path's bound arguments."""
        self.execute(grid, flat_values(self.specialization.parameters, values, addresses=False))

    def execute(self, grid: tuple[int, ...], values: list) -> None:
        if 0 in grid:
            return  # an empty grid (an empty tensor, say) runs no block, as Triton skips such launches
        self.specialization.run_on_cpu(values, grid)


class CudaLaunch:
    """A specialization's PTX (or cubin) loaded on one GPU, launched on torch's current stream there.
    ``launcher`` is its ``CudaLauncher`` when the caller has one, else it is compiled (or found on disk)
    and loaded now; either way it takes the binder's values as they are (``layout.width`` of them, the
    parameters' at ``layout.select``): a launch picks none."""

    def __init__(
        self,
        specialization: Specialization,
        layout: Layout,
        names: Sequence[str],
        device_index: int,
        launcher: CudaLauncher | None = None,
    ) -> None:
        if launcher is None:
            from tilevm.runtime import cuda  # the driver is loaded when a kernel first runs on a GPU

            target = cuda.target_for(cuda.properties(device_index).capability)
            compiled, cubin = specialization.cuda_kernel(target, device_index)
            ir_names = [parameter.name for parameter in specialization.parameters]
            launcher = cuda.CudaLauncher(compiled, device_index, cubin, ir_names, layout.select, layout.width)
        self.specialization = specialization
        self.layout = layout
        self.names = tuple(names)
        self.device_index = device_index
        self.launcher = launcher
        # torch's raw stream getter, as Triton calls it; the public API where a build lacks it
        self.stream = getattr(torch._C, "_cuda_getCurrentRawStream", current_stream)

    def launch(self, grid: object, bound: tuple[tuple, tuple, tuple]) -> bool:
        """Launch with a binder's values (see the module docstring); False if the program is stale."""
        if not self.specialization.captures.unchanged():
            return False
        # three ints (CUDA's axes) go as they are: the launcher checks their range
        if (
            type(grid) is not tuple
            or len(grid) != MAX_GRID_RANK
            or not type(grid[0]) is type(grid[1]) is type(grid[2]) is int
        ):
            grid = checked_grid(grid, lambda: dict(zip(self.names, bound[2])))
            grid += PADDING[len(grid)]
        self.launcher.launch(grid, bound[1], self.stream(self.device_index))
        return True

    def rebound(self, positions: Sequence[int], width: int, constants: Sequence[object]) -> CudaLaunch:
        """This launch taking ``width`` values (a binder's of a partial kernel), the other parameters'
        values given once as ``constants`` (``CudaLauncher.rebound``)."""
        launch = copy.copy(self)
        launch.launcher = self.launcher.rebound(positions, width, constants)
        return launch

    def blocks_per_multiprocessor(self) -> int:
        """How many blocks one multiprocessor of the GPU runs at once."""
        return self.launcher.blocks_per_multiprocessor()

    def run(self, grid: tuple[int, ...], values: dict[str, object]) -> None:
        """Launch with the slow path's bound arguments."""
        flat = flat_values(self.specialization.parameters, values, addresses=True)
        self.launcher.launch(
            grid + PADDING[len(grid)], self.layout.spread(flat), self.stream(self.device_index)
        )


def current_stream(device_index: int) -> int:
    """The handle of torch's current stream on GPU ``device_index``."""
    return torch.cuda.current_stream(device_index).cuda_stream
