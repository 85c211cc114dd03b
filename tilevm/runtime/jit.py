"""``@tilevm.kernel``: a Python function compiled per specialization and launched as ``kernel[grid](...)``.

The hot path of a launch is: bind and check the arguments, look the program up by its specialization key,
run it on the target of the tensors. On CPU tensors the program runs on one of two executors, which
``TILEVM_CPU_EXECUTOR`` picks: ``simt`` runs the lowered Thread IR in the SIMT interpreter (what the GPU would
run), ``reference`` the Tile IR in the block-level reference executor (the specification).

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
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from tilevm.dtypes import DType
from tilevm.errors import LaunchError
from tilevm.ir import Program
from tilevm.lang.annotations import TensorAnnotation, constexpr
from tilevm.lang.captures import Captures
from tilevm.lang.frontend import compile_kernel
from tilevm.lang.parameters import FlatParameter, flat_parameters
from tilevm.passes import TILE_PASSES, CompileOptions, lower_to_threads, run_pipeline
from tilevm.runtime.binding import TensorArgument, bind_arguments, describe_arguments, flat_values
from tilevm.runtime.reference import execute as execute_reference

__all__ = ["CPU_EXECUTORS", "CPU_EXECUTOR_VARIABLE", "Kernel", "Specialization", "cpu_executor", "kernel"]

SCALAR_ANNOTATIONS = (int, float, bool)
WARP_SIZE = 32

#: which executor runs launches on CPU tensors: "simt" (lowered Thread IR) or "reference" (Tile IR)
CPU_EXECUTOR_VARIABLE = "TILEVM_CPU_EXECUTOR"
CPU_EXECUTORS = ("simt", "reference")
#: the executor when the variable is unset
DEFAULT_CPU_EXECUTOR = "simt"


def cpu_executor(environment: dict[str, str] | None = None) -> str:
    """The executor ``TILEVM_CPU_EXECUTOR`` names (``os.environ`` when ``environment`` is None)."""
    environment = os.environ if environment is None else environment
    name = environment.get(CPU_EXECUTOR_VARIABLE, "") or DEFAULT_CPU_EXECUTOR
    if name not in CPU_EXECUTORS:
        raise LaunchError(f"{CPU_EXECUTOR_VARIABLE}={name!r}; expected one of {', '.join(CPU_EXECUTORS)}")
    return name


@dataclass(eq=False)
class Specialization:
    """One compiled specialization of a kernel: its Tile IR after every Tile IR pass, its IR parameters, the
    globals it read, and its Thread IR once a launch or a caller has asked for it."""

    tile_program: Program
    parameters: list[FlatParameter]
    captures: Captures
    options: CompileOptions
    _thread_program: Program | None = None

    def thread_program(self) -> Program:
        """The Thread IR: ``tile_program`` lowered (once)."""
        if self._thread_program is None:
            self._thread_program = run_pipeline(self.tile_program, self.options, (lower_to_threads,))
        return self._thread_program


class Kernel:
    """A compiled-on-demand kernel. ``kernel[grid](*args)`` launches; ``kernel.ir(*args)`` gives the IR."""

    def __init__(self, function: Callable, num_threads: int) -> None:
        self.function = function
        self.num_threads = num_threads
        self.signature = inspect.signature(function, eval_str=True)  # annotations may be strings (PEP 563)
        #: the described launch values (``describe_arguments``) -> the compiled specialization (compiled
        #: again when a global that it read has changed: ``tilevm.lang.captures``)
        self.programs: dict[tuple, Specialization] = {}
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
        """The Tile IR program for a launch with these arguments (compiled if needed): the front end's
        program after every Tile IR pass (``tilevm.passes.TILE_PASSES``), with layouts and a shared-memory
        plan; what the reference executor runs."""
        return self.compiled(bind_arguments(self.signature, args, kwargs)).tile_program

    def thread_ir(self, *args: object, **kwargs: object) -> Program:
        """The Thread IR program for a launch with these arguments: the Tile IR of ``ir`` lowered to the
        per-thread instructions that the SIMT interpreter and the GPU run."""
        return self.compiled(bind_arguments(self.signature, args, kwargs)).thread_program()

    def compiled(self, values: dict[str, object]) -> Specialization:
        """The specialization for these bound values, compiled on first use and again when a global or
        closure variable that it read has changed."""
        parameters = describe_arguments(values, self.signature)
        compiled = self.programs.get(parameters)  # the descriptions are the key
        if compiled is None or not compiled.captures.unchanged():
            captures = Captures()
            frontend_program = compile_kernel(self.function, parameters, self.num_threads, captures)
            options = CompileOptions.from_environment()
            program = run_pipeline(frontend_program, options, TILE_PASSES)
            compiled = Specialization(program, list(flat_parameters(parameters)), captures, options)
            self.programs[parameters] = compiled
        return compiled

    def launch(self, grid: object, *args: object, **kwargs: object) -> None:
        values = bind_arguments(self.signature, args, kwargs)
        compiled = self.compiled(values)
        grid_shape = _grid(grid, values)
        device = _common_device(values)
        if device.type != "cpu":
            raise LaunchError(
                f"tensors are on {device}; this version of tilevm runs kernels on CPU tensors only "
                "(the CUDA back end is not built yet)"
            )
        if 0 in grid_shape:
            return  # an empty grid (an empty tensor, say) runs no block, as Triton skips such launches
        arguments = flat_values(compiled.parameters, values)
        if cpu_executor() == "reference":
            execute_reference(compiled.tile_program, arguments, grid_shape)
        else:
            from tilevm.runtime.cpu import execute as execute_threads  # numpy-heavy; loaded when first used

            execute_threads(compiled.thread_program(), arguments, grid_shape)


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
