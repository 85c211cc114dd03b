"""``@tilevm.kernel``: a Python function compiled per specialization and launched as ``kernel[grid](...)``.

The hot path of a launch is the kernel's generated binder (``tilevm.runtime.launcher_binder``: the
specialization key and the launch values in one pass over the arguments), a dict lookup, and the launch of
what that key found (``tilevm.runtime.launcher``): on CUDA tensors the program's PTX on their GPU, on CPU
tensors one of two executors, which ``TILEVM_CPU_EXECUTOR`` picks: ``simt`` runs the lowered Thread IR in
the SIMT interpreter (what the GPU would run), ``reference`` the Tile IR in the block-level reference
executor (the specification). Anything else (a first launch, an unusual argument, a changed global) takes
the slow path: bind and check the arguments (``bind_arguments``), describe them (``describe_arguments``),
compile the specialization if needed, and file its launch under the binder's key.

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

import dataclasses
import functools
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from tilevm.dtypes import DType
from tilevm.errors import LaunchError
from tilevm.ir import Program
from tilevm.ir.program import check_max_registers
from tilevm.lang.annotations import TensorAnnotation, constexpr
from tilevm.lang.captures import Captures
from tilevm.lang.frontend import compile_kernel
from tilevm.lang.parameters import FlatParameter, Parameter, flat_parameters
from tilevm.passes import TILE_PASSES, CompileOptions, lower_to_threads, run_pipeline
from tilevm.runtime.binding import TensorArgument, bind_arguments, describe_arguments
from tilevm.runtime.collector import without_collector
from tilevm.runtime.jit_partial import PartialKernel
from tilevm.runtime.launcher import CpuLaunch, CudaLaunch, checked_grid
from tilevm.runtime.launcher_binder import Layout, make_binder
from tilevm.runtime.launcher_cache import (
    load_specialization,
    manifest,
    specialization_key,
    store_specialization,
)
from tilevm.runtime.launcher_ptx import compile_ptx, kernel_for_device
from tilevm.runtime.reference import execute as execute_reference

if TYPE_CHECKING:
    from tilevm.codegen import CompiledPtx

__all__ = ["CPU_EXECUTORS", "CPU_EXECUTOR_VARIABLE", "Kernel", "Specialization", "cpu_executor", "kernel"]

SCALAR_ANNOTATIONS = (int, float, bool)
WARP_SIZE = 32

Launch = CpuLaunch | CudaLaunch

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
    """One specialization of a kernel: the descriptions of the arguments it is compiled for, its IR
    parameters, the globals it read, and its Tile IR after every Tile IR pass; then, as launches and callers
    ask, its Thread IR and PTX per target, its code per GPU and its launch per device.

    A specialization found on disk (``launcher_cache``) has its code but no program until one is asked for
    (``kernel.ir``): the front end then runs, as it would have on a compile."""

    kernel: Kernel
    described: tuple[Parameter, ...]
    parameters: list[FlatParameter]
    captures: Captures
    options: CompileOptions
    compiled_program: Program | None = None
    thread_programs: dict[str | None, Program] = field(default_factory=dict)
    ptx: dict[str, CompiledPtx] = field(default_factory=dict)
    #: (target, device index) -> the PTX and the cubin (None: load the PTX) loaded on that GPU
    device_code: dict[tuple[str, int], tuple[CompiledPtx, bytes | None]] = field(default_factory=dict)
    launches: dict[torch.device, Launch] = field(default_factory=dict)

    @property
    def tile_program(self) -> Program:
        """The Tile IR after every Tile IR pass (compiled now for a specialization found on disk)."""
        if self.compiled_program is None:
            self.compiled_program, self.captures = self.kernel.front_end(self.described, self.options)
        return self.compiled_program

    @without_collector  # compiling: see tilevm.runtime.collector
    def thread_program(self, target: str | None = None) -> Program:
        """The Thread IR: ``tile_program`` lowered (once per target) for ``target`` (None: for the CPU
        executors, which run every instruction; the lowering picks instructions by target)."""
        if target not in self.thread_programs:
            tile_program = dataclasses.replace(self.tile_program, target=target)
            options = dataclasses.replace(self.options, target=target or "cpu")
            self.thread_programs[target] = run_pipeline(tile_program, options, (lower_to_threads,))
        return self.thread_programs[target]

    def run_on_cpu(self, values: list, grid: tuple[int, ...]) -> None:
        """Run on CPU tensors (``values``: the IR parameters' values, tensors for pointers) with the
        executor ``TILEVM_CPU_EXECUTOR`` names."""
        if cpu_executor() == "reference":
            execute_reference(self.tile_program, values, grid)
        else:
            from tilevm.runtime.cpu import execute as execute_threads  # numpy-heavy; loaded when first used

            execute_threads(self.thread_program(), values, grid)

    @without_collector  # compiling: see tilevm.runtime.collector
    def compiled_ptx(self, target: str) -> CompiledPtx:
        """The PTX for ``target`` (``"sm_90"``), compiled once (see ``tilevm.runtime.launcher_ptx``)."""
        if target not in self.ptx:
            self.ptx[target] = compile_ptx(self.thread_program(target), target, self.options)
        return self.ptx[target]

    @without_collector  # compiling: see tilevm.runtime.collector
    def cuda_kernel(self, target: str, device_index: int) -> tuple[CompiledPtx, bytes | None]:
        """The PTX for ``target`` and the cubin to load on GPU ``device_index`` (None: load the PTX): found
        with the specialization on disk, or from the Thread-IR-keyed disk cache, or compiled; stored on
        disk under this specialization's key too when what it read can be found again (``manifest``)."""
        code = self.device_code.get((target, device_index))
        if code is None:
            program = self.thread_program(target)
            code = kernel_for_device(program, target, device_index, lambda: self.compiled_ptx(target))
            self.device_code[(target, device_index)] = code
            reads = manifest(self.kernel.function, self.captures)
            if reads is not None and self.options.dump_directory is None:
                store_specialization(
                    self.kernel.disk_key(self.described, self.options, device_index), reads, *code
                )
        return code

    @without_collector  # compiling: see tilevm.runtime.collector
    def launch_on(self, device: torch.device, names: list[str]) -> Launch:
        """What runs this specialization on ``device`` (made once per device)."""
        launch = self.launches.get(device)
        if launch is None:
            layout = Layout.of(self.described, self.parameters, names)
            if device.type == "cpu":
                launch = CpuLaunch(self, layout, names)
            elif device.type == "cuda":
                launch = CudaLaunch(self, layout, names, device.index)
            else:
                raise LaunchError(f"tensors are on {device}; tilevm runs kernels on CPU and CUDA tensors")
            self.launches[device] = launch
        return launch


class Kernel:
    """A compiled-on-demand kernel. ``kernel[grid](*args)`` launches; ``kernel.ir(*args)`` gives the IR."""

    def __init__(self, function: Callable, num_threads: int, max_registers: int | None = None) -> None:
        self.function = function
        self.num_threads = num_threads
        self.max_registers = max_registers
        self.signature = inspect.signature(function, eval_str=True)  # annotations may be strings (PEP 563)
        #: the described launch values (``describe_arguments``) -> the compiled specialization (compiled
        #: again when a global that it read has changed: ``tilevm.lang.captures``)
        self.programs: dict[tuple, Specialization] = {}
        for name, parameter in self.signature.parameters.items():
            _check_annotation(function, name, parameter.annotation)
        self.names = list(self.signature.parameters)
        #: the binder's key -> the launch of its specialization on its device (the hot path's table)
        self.launches: dict[tuple, Launch] = {}
        #: (described, options, device index) -> the specialization's disk key (``disk_key``)
        self._disk_keys: dict[tuple, str] = {}
        self.binder = make_binder(self.signature) or _unusual
        functools.update_wrapper(self, function)

    def __repr__(self) -> str:
        registers = f", at most {self.max_registers} registers a thread" if self.max_registers else ""
        return f"<tilevm.kernel {self.function.__qualname__} ({self.num_threads} threads{registers})>"

    def __call__(self, *args: object, **kwargs: object) -> None:
        raise LaunchError(f"launch {self.function.__name__} with a grid: {self.function.__name__}[grid](...)")

    def __getitem__(self, grid: object) -> Callable[..., None]:
        return functools.partial(self.launch, grid)

    def partial(self, **fixed: object) -> PartialKernel:
        """This kernel with the arguments ``fixed`` given once (``tilevm.runtime.jit_partial``): its launches
        take the other arguments and bind only them."""
        return PartialKernel(self, fixed)

    def blocks_per_multiprocessor(self, *args: object, **kwargs: object) -> int:
        """How many blocks of the specialization these arguments select one multiprocessor of their GPU runs
        at once (compiled and loaded now if needed): what a persistent grid is sized by. The arguments are
        a launch's; they must be CUDA tensors."""
        values = bind_arguments(self.signature, args, kwargs)
        device = _common_device(values)
        if device.type != "cuda":
            raise LaunchError(
                f"{self.function.__name__}.blocks_per_multiprocessor needs CUDA tensors, got {device}"
            )
        return self.compiled(values, device).launch_on(device, self.names).blocks_per_multiprocessor()

    def ir(self, *args: object, **kwargs: object) -> Program:
        """The Tile IR program for a launch with these arguments (compiled if needed): the front end's
        program after every Tile IR pass (``tilevm.passes.TILE_PASSES``), with layouts and a shared-memory
        plan; what the reference executor runs."""
        return self.compiled(bind_arguments(self.signature, args, kwargs)).tile_program

    def thread_ir(self, *args: object, **kwargs: object) -> Program:
        """The Thread IR program for a launch with these arguments: the Tile IR of ``ir`` lowered to the
        per-thread instructions that the SIMT interpreter and the GPU run."""
        return self.compiled(bind_arguments(self.signature, args, kwargs)).thread_program()

    def ptx(self, *args: object, target: str = "sm_90", **kwargs: object) -> str:
        """The PTX of the specialization these arguments select, for ``target``; needs no GPU (the
        tensors may be CPU or ``meta`` tensors: a meta tensor's address is 0, so aligned)."""
        return self._compiled_ptx(target, args, kwargs).ptx

    def llvm_ir(self, *args: object, target: str = "sm_90", **kwargs: object) -> str:
        """The LLVM IR that ``ptx`` compiles, after LLVM's optimizations."""
        return self._compiled_ptx(target, args, kwargs).llvm_ir

    def _compiled_ptx(self, target: str, args: tuple, kwargs: dict) -> CompiledPtx:
        return self.compiled(bind_arguments(self.signature, args, kwargs)).compiled_ptx(target)

    @without_collector  # compiling: see tilevm.runtime.collector
    def compiled(self, values: dict[str, object], device: torch.device | None = None) -> Specialization:
        """The specialization for these bound values, compiled on first use and again when a global or
        closure variable that it read has changed; for a launch on a GPU (``device``), found on disk when a
        process before compiled it (``tilevm.runtime.launcher_cache``)."""
        described = describe_arguments(values, self.signature)
        compiled = self.programs.get(described)  # the descriptions are the key
        if compiled is None or not compiled.captures.unchanged():
            options = CompileOptions.from_environment()
            compiled = None
            if device is not None and device.type == "cuda" and options.dump_directory is None:
                compiled = self.from_disk(described, options, device.index)
            if compiled is None:
                if device is not None and device.type == "cuda":
                    from tilevm.codegen.emit import start_worker
                    from tilevm.runtime.cuda.ptxas import ask_version_in_background

                    # LLVM's process starts, and ptxas tells its version, while the front end and the
                    # passes run
                    start_worker()
                    ask_version_in_background()
                program, captures = self.front_end(described, options)
                compiled = Specialization(
                    self, described, list(flat_parameters(described)), captures, options
                )
                compiled.compiled_program = program
            self.programs[described] = compiled
        return compiled

    def front_end(
        self, described: tuple[Parameter, ...], options: CompileOptions
    ) -> tuple[Program, Captures]:
        """The Tile IR of the specialization ``described`` after every Tile IR pass, and what it read."""
        captures = Captures()
        frontend_program = compile_kernel(
            self.function, described, self.num_threads, captures, self.max_registers
        )
        return run_pipeline(frontend_program, options, TILE_PASSES), captures

    def from_disk(
        self, described: tuple[Parameter, ...], options: CompileOptions, device_index: int
    ) -> Specialization | None:
        """The specialization ``described`` as a process before stored it for this GPU, or None."""
        from tilevm.runtime.cuda import properties, target_for

        found = load_specialization(self.disk_key(described, options, device_index), self.function)
        if found is None:
            return None
        compiled, cubin, captures = found
        specialization = Specialization(self, described, list(flat_parameters(described)), captures, options)
        target = target_for(properties(device_index).capability)
        specialization.ptx[target] = compiled
        specialization.device_code[(target, device_index)] = (compiled, cubin)
        return specialization

    def disk_key(self, described: tuple[Parameter, ...], options: CompileOptions, device_index: int) -> str:
        """The disk key of the specialization ``described`` on GPU ``device_index``: computed once (it reads
        the kernel's source), for the look-up and again for the store of a first launch."""
        from tilevm.runtime.cuda import properties, target_for

        memo = (described, options, device_index)
        key = self._disk_keys.get(memo)
        if key is None:
            device = properties(device_index)
            key = self._disk_keys[memo] = specialization_key(
                self.function,
                (self.num_threads, self.max_registers),
                described,
                options,
                target_for(device.capability),
                device.capability,
                device.driver_version,
            )
        return key

    def launch(self, grid: object, *args: object, **kwargs: object) -> None:
        """Launch on ``grid``: through the binder's key when it has been seen (the hot path), else slowly."""
        try:
            bound = self.binder(*args, **kwargs)
        except TypeError:
            bound = None  # arguments that do not fit the signature: the slow path says how
        if bound is not None:
            try:
                launch = self.launches.get(bound[0])
            except TypeError:  # an unhashable constexpr (``BY_VALUE``): the slow path says so
                bound = launch = None
            if launch is not None and launch.launch(grid, bound):
                return
        self.launch_slowly(grid, args, kwargs, None if bound is None else bound[0])

    def launch_slowly(self, grid: object, args: tuple, kwargs: dict, key: tuple | None = None) -> None:
        """Bind and check the arguments, compile if needed, launch, and file the launch under the binder's
        ``key`` (when it gave one), so that the next launch with that key takes the hot path."""
        values = bind_arguments(self.signature, args, kwargs)
        device = _common_device(values)
        specialization = self.compiled(values, device)
        grid_shape = _grid(grid, values)
        launch = specialization.launch_on(device, self.names)
        if key is not None:
            self.launches[key] = launch
        launch.run(grid_shape, values)


def kernel(
    function: Callable | None = None,
    *,
    num_warps: int = 4,
    num_threads: int | None = None,
    max_registers: int | None = None,
):
    """Make ``function`` a tilevm kernel; every block runs it with ``num_threads`` (or ``32 * num_warps``).

    ``max_registers`` caps the registers a thread takes on the GPU (PTX ``.maxnreg``, as CUDA's
    ``__maxnreg__``): ptxas then schedules for that budget, spilling past it. Fewer registers let more
    blocks share a multiprocessor; more let the loads of a loop run further ahead of their use. None (the
    default) leaves the choice to ptxas."""
    threads = num_threads if num_threads is not None else WARP_SIZE * num_warps
    if not isinstance(threads, int) or threads <= 0 or threads % WARP_SIZE:
        raise ValueError(f"a block has a positive multiple of {WARP_SIZE} threads, got {threads}")
    check_max_registers(max_registers)

    def decorate(target: Callable) -> Kernel:
        return Kernel(target, threads, max_registers)

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


def _unusual(*args: object, **kwargs: object) -> None:
    """The binder of a kernel whose signature has none (``*args``): every launch takes the slow path."""


def _grid(grid: object, values: dict[str, object]) -> tuple[int, ...]:
    """``grid`` checked (``checked_grid``); a callable is given the bound arguments by name, tensors as the
    torch tensors."""
    return checked_grid(grid, lambda: {name: _unwrapped(value) for name, value in values.items()})


def _unwrapped(value: object) -> object:
    return value.tensor if isinstance(value, TensorArgument) else value


def _common_device(values: dict[str, object]) -> torch.device:
    devices = {value.tensor.device for value in values.values() if isinstance(value, TensorArgument)}
    if len(devices) > 1:
        raise LaunchError(f"tensor arguments are on different devices: {sorted(map(str, devices))}")
    return devices.pop() if devices else torch.device("cpu")
