"""A specialization's code for one GPU: its PTX, compiled by ``tilevm.codegen`` from its Thread IR, and the
cubin that ``ptxas`` makes of it when the device should load one; kept on disk
(``tilevm.runtime.cuda.DiskCache``) so that another process finds them, and written beside the passes'
dumps when ``TILEVM_DUMP_IR`` asks (``07-llvm_ir.ll``, ``08-ptx.ptx``: numbered after the last pass).

The disk key (``kernel_key``) is everything the code depends on: the Thread IR's text (which holds every
compile-time value and fact the program was specialized on), the target, the device's compute capability
(a cubin runs on its own chip family only) and driver version, tilevm's version, llvmlite's (which fixes the
LLVM it bundles), and a hash of the code generator's sources (so that a changed code generator never serves
code the old one made).
"""

from __future__ import annotations

import functools
import hashlib
import pathlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import tilevm
from tilevm.ir import Program, print_program
from tilevm.ir.thread import THREAD_IR
from tilevm.passes import CompileOptions
from tilevm.passes.pipeline import PIPELINE, dump_stage

if TYPE_CHECKING:
    from tilevm.codegen import CompiledPtx

__all__ = ["LLVM_IR_STAGE", "PTX_STAGE", "compile_ptx", "kernel_for_device", "kernel_key"]

#: the dump files of code generation, numbered after the passes'
LLVM_IR_STAGE = f"{len(PIPELINE) + 1:02d}-llvm_ir.ll"
PTX_STAGE = f"{len(PIPELINE) + 2:02d}-ptx.ptx"
#: the sources whose every change must miss the disk cache: the code generator's
CODEGEN_SOURCES = pathlib.Path(tilevm.__file__).parent / "codegen"


def compile_ptx(thread_program: Program, target: str, options: CompileOptions) -> CompiledPtx:
    """``thread_program`` (lowered for ``target``) compiled to PTX for ``target``, dumped when ``options``
    has a dump directory."""
    from tilevm.codegen import compile_to_ptx  # LLVM is loaded when a kernel first needs code

    compiled = compile_to_ptx(thread_program, target)
    dump_stage(options, thread_program.name, LLVM_IR_STAGE, compiled.llvm_ir)
    dump_stage(options, thread_program.name, PTX_STAGE, compiled.ptx)
    return compiled


def kernel_for_device(
    thread_program: Program, target: str, device_index: int, compile: Callable[[], CompiledPtx]
) -> tuple[CompiledPtx, bytes | None]:
    """The PTX of ``thread_program`` for ``target`` and, when the device should load one, its cubin: from
    the disk cache, or made (``compile()``, then ptxas) and stored there."""
    from tilevm.runtime import cuda

    device = cuda.properties(device_index)
    cache = cuda.DiskCache()
    key = kernel_key(
        print_program(thread_program, THREAD_IR), target, device.capability, device.driver_version
    )
    found = cache.load_kernel(key)
    if found is not None:
        return found
    compiled = compile()
    cubin = cuda.cubin_for(compiled, device_index)
    cache.store_kernel(key, compiled, cubin)
    return compiled, cubin


def kernel_key(program_text: str, target: str, capability: tuple[int, int], driver_version: int) -> str:
    """The disk cache's key of a kernel (see the module docstring)."""
    from tilevm.codegen import llvmlite_version
    from tilevm.runtime.cuda import cache_key

    return cache_key(
        "tilevm kernel",
        program_text,
        target,
        f"{capability[0]}.{capability[1]}",
        str(driver_version),
        tilevm.__version__,
        llvmlite_version(),
        codegen_sources_hash(),
    )


@functools.cache
def codegen_sources_hash() -> str:
    """The sha256 of the code generator's Python sources, read once per process."""
    digest = hashlib.sha256()
    for path in sorted(CODEGEN_SOURCES.rglob("*.py")):
        digest.update(path.relative_to(CODEGEN_SOURCES).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
