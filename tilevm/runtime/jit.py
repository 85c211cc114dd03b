"""``@tilevm.kernel``: a Python function compiled per specialization and launched as ``kernel[grid](...)``.

The hot path of a launch is: bind and check the arguments, look the program up by its specialization key,
run it on the target of the tensors.

>>> import torch, tilevm as tv
>>> @tv.kernel(num_warps=1)
... def fill(out: tv.Tensor, value: float, BLOCK: tv.constexpr):
...     tile = tv.register_tensor(tv.float32, [BLOCK], init=value)
...     tv.store_global(out, tile, offsets=[tv.block_idx() * BLOCK])
>>> out = torch.zeros(10)
>>> fill[(3,)](out, 2.5, BLOCK=4)
>>> out.tolist() == [2.5] * 10
True
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import torch

from tilevm.dtypes import DType
from tilevm.errors import LaunchError
from tilevm.ir import Program
from tilevm.lang.annotations import TensorAnnotation, constexpr
from tilevm.lang.captures import Captures
from tilevm.lang.frontend import compile_kernel
from tilevm.lang.parameters import FlatParameter, flat_parameters
from tilevm.passes import CompileOptions, run_pipeline
from tilevm.runtime.binding import TensorArgument, bind_arguments, describe_arguments, flat_values
from tilevm.runtime.reference import execute

__all__ = ["Kernel", "kernel"]

SCALAR_ANNOTATIONS = (int, float, bool)
WARP_SIZE = 32


class Kernel:
    """A compiled-on-demand kernel. ``kernel[grid](*args)`` launches; ``kernel.ir(*args)`` gives the IR."""

    def __init__(self, function: Callable, num_threads: int) -> None:
        self.function = function
        self.num_threads = num_threads
        self.signature = inspect.signature(function, eval_str=True)  # annotations may be strings (PEP 563)
        #: the described launch values (``describe_arguments``) -> the program, its IR parameters and the
        #: globals it read (a program whose globals changed is compiled again: ``tilevm.lang.captures``)
        self.programs: dict[tuple, tuple[Program, list[FlatParameter], Captures]] = {}
        for name, parameter in self.signature.parameters.items():
            _check_annotation(function, name, parameter.annotation)
        functools.update_wrapper(self, function)

    def __repr__(self) -> str:
        return f"<tilevm.kernel {self.function.__qualname__} ({self.num_threads} threads)>"

    def __call__(self, *args: object, **kwargs: object) -> None:
        raise LaunchError(f"launch {self.function.__name__} with a grid: {self.function.__name__}[grid](...)")

    def __getitem__(self, grid: object) -> Callable[..., None]:
        return functools.partial(self.launch, grid)

    def ir(self, *args: object, **kwargs: object) -> Program:
        """The Tile IR program that a launch with these arguments runs (compiled if needed): the front end's
        program after every pass of ``tilevm.passes.PIPELINE``."""
        return self.compiled(bind_arguments(self.signature, args, kwargs))[0]

    def compiled(self, values: dict[str, object]) -> tuple[Program, list[FlatParameter]]:
        """The program for these bound values and its IR parameters, compiled on first use and again when a
        global or closure variable that it read has changed."""
        parameters = describe_arguments(values, self.signature)
        compiled = self.programs.get(parameters)  # the descriptions are the key
        if compiled is None or not compiled[2].unchanged():
            captures = Captures()
            frontend_program = compile_kernel(self.function, parameters, self.num_threads, captures)
            program = run_pipeline(frontend_program, CompileOptions.from_environment())
            compiled = self.programs[parameters] = (program, list(flat_parameters(parameters)), captures)
        return compiled[0], compiled[1]

    def launch(self, grid: object, *args: object, **kwargs: object) -> None:
        values = bind_arguments(self.signature, args, kwargs)
        program, flat = self.compiled(values)
        grid_shape = _grid(grid, values)
        device = _common_device(values)
        if device.type != "cpu":
            raise LaunchError(
                f"tensors are on {device}; this version of tilevm runs kernels on CPU tensors only "
                "(the CUDA back end is not built yet)"
            )
        if 0 in grid_shape:
            return  # an empty grid (an empty tensor, say) runs no block, as Triton skips such launches
        execute(program, flat_values(flat, values), grid_shape)


def kernel(function: Callable | None = None, *, num_warps: int = 4, num_threads: int | None = None):
    """Make ``function`` a tilevm kernel; every block runs it with ``num_threads`` (or ``32 * num_warps``)."""
    threads = num_threads if num_threads is not None else WARP_SIZE * num_warps
    if not isinstance(threads, int) or threads <= 0 or threads % WARP_SIZE:
        raise ValueError(f"a block has a positive multiple of {WARP_SIZE} threads, got {threads}")

    def decorate(target: Callable) -> Kernel:
        return Kernel(target, threads)

    return decorate(function) if function is not None else decorate


def _check_annotation(function: Callable, name: str, annotation: object) -> None:
    if annotation is constexpr or isinstance(annotation, (TensorAnnotation, DType)):
        return
    if annotation in SCALAR_ANNOTATIONS:
        return
    found = "it has none" if annotation is inspect.Parameter.empty else f"it has {annotation!r}"
    raise TypeError(
        f"{function.__qualname__}: parameter '{name}' needs an annotation: tv.Tensor (or tv.Tensor[dtype]), "
        f"tv.constexpr, int, float, bool or a tilevm dtype; {found}"
    )


def _grid(grid: object, values: dict[str, object]) -> tuple[int, ...]:
    if callable(grid):
        grid = grid(
            {
                name: value.tensor if isinstance(value, TensorArgument) else value
                for name, value in values.items()
            }
        )
    if isinstance(grid, int):
        grid = (grid,)
    if (
        not isinstance(grid, (tuple, list))
        or not 1 <= len(grid) <= 3
        or not all(isinstance(extent, int) and extent >= 0 for extent in grid)
    ):
        raise LaunchError(f"grid must be 1 to 3 non-negative ints (or a function giving them), got {grid!r}")
    return tuple(grid)


def _common_device(values: dict[str, object]) -> torch.device:
    devices = {value.tensor.device for value in values.values() if isinstance(value, TensorArgument)}
    if len(devices) > 1:
        raise LaunchError(f"tensor arguments are on different devices: {sorted(map(str, devices))}")
    return devices.pop() if devices else torch.device("cpu")
