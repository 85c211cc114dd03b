"""Test helpers for lowering: a Tile IR program through every pass to Thread IR, and a kernel launch
run twice, by the block-level reference executor and by the SIMT interpreter on the lowered program, on
copies of the same tensors, with the results compared byte for byte.

``tilevm.runtime.cpu.execute(program, arguments, grid)`` is the interpreter's entry point; it takes the flat
arguments the reference executor takes.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import torch
from gpu_crosscheck import CROSSCHECK_VARIABLE

from tilevm.ir import Program, check_round_trip
from tilevm.ir.thread import THREAD_IR
from tilevm.passes import CompileOptions, run_pipeline
from tilevm.runtime.binding import TensorArgument, bind_arguments, flat_values
from tilevm.runtime.jit import Kernel, Specialization, _grid
from tilevm.runtime.reference import execute as execute_reference

__all__ = ["lower", "lowered_kernel", "run_both", "assert_same_bytes"]


def lower(program: Program) -> Program:
    """The Thread IR of a Tile IR program (from the front end or any Tile IR pass), through every pass,
    verified and checked to round-trip through its text form."""
    thread_program = run_pipeline(program, CompileOptions(verify_passes=True))
    check_round_trip(thread_program, THREAD_IR)
    return thread_program


def lowered_kernel(kernel: Kernel, *args: object, **kwargs: object) -> Program:
    """The Thread IR that a launch of ``kernel`` with these arguments runs."""
    return lower(kernel.ir(*args, **kwargs))


def run_both(
    kernel: Kernel, grid: object, *args: object, **kwargs: object
) -> tuple[list[object], list[object]]:
    """Launch ``kernel`` on two copies of its arguments: the reference executor runs the Tile IR, the SIMT
    interpreter the lowered Thread IR. Returns both copies of the arguments (tensors as written). With
    ``TILEVM_CROSSCHECK`` set, a third copy is launched as a user would, which ``gpu_crosscheck`` repeats on
    the GPU."""
    from tilevm.runtime.cpu import execute as execute_threads

    copies = []
    for run in (_reference_run, _interpreter_run(execute_threads)):
        cloned_args = [_clone(value) for value in args]
        cloned_kwargs = {name: _clone(value) for name, value in kwargs.items()}
        values = bind_arguments(kernel.signature, tuple(cloned_args), cloned_kwargs)
        compiled = kernel.compiled(values)
        run(compiled, flat_values(compiled.parameters, values), _grid(grid, values))
        copies.append(cloned_args)
    if os.environ.get(CROSSCHECK_VARIABLE):  # and once more through the launch, which runs it on the GPU too
        kernel.launch(grid, *(_clone(value) for value in args), **{k: _clone(v) for k, v in kwargs.items()})
    return copies[0], copies[1]


def assert_same_bytes(reference: list[object], lowered: list[object]) -> None:
    """Every tensor argument holds the same bytes after both runs (NaNs compared by their bits)."""
    for position, (expected, actual) in enumerate(zip(reference, lowered, strict=True)):
        if isinstance(expected, torch.Tensor | TensorArgument):
            same = torch.equal(_bytes(expected), _bytes(actual))
            assert same, f"argument {position} differs:\nreference {expected}\nlowered {actual}"


def _reference_run(compiled: Specialization, arguments: list[object], grid: tuple[int, ...]) -> None:
    execute_reference(compiled.tile_program, arguments, grid)


def _interpreter_run(execute_threads: Callable) -> Callable:
    def run(compiled: Specialization, arguments: list[object], grid: tuple[int, ...]) -> None:
        thread_program = compiled.thread_program()
        check_round_trip(thread_program, THREAD_IR)
        execute_threads(thread_program, arguments, grid)

    return run


def _clone(value: object) -> object:
    if isinstance(value, TensorArgument):  # a tensor passed through tv.view: its own copy of the bytes
        return dataclasses.replace(value, tensor=value.tensor.clone())
    return value.clone() if isinstance(value, torch.Tensor) else value


def _bytes(tensor: torch.Tensor | TensorArgument) -> torch.Tensor:
    if isinstance(tensor, TensorArgument):
        tensor = tensor.tensor
    return tensor.contiguous().view(-1).view(torch.uint8)
