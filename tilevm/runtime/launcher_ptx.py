"""A specialization's PTX for one target: compiled by ``tilevm.codegen`` from its Thread IR once, kept on
disk (``tilevm.runtime.cuda.cache.DiskCache``) so that another process finds it, and written beside the
passes' dumps when ``TILEVM_DUMP_IR`` asks (``NN-llvm_ir.ll``, ``NN-ptx.ptx``, numbered after the last pass).

The disk key is the Thread IR's text (which holds every compile-time value the program depends on), the
target, and the versions of tilevm, LLVM and the driver (``DiskCache`` adds those).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tilevm.ir import Program, print_program
from tilevm.ir.thread import THREAD_IR
from tilevm.passes import CompileOptions
from tilevm.passes.pipeline import PIPELINE, dump_stage

if TYPE_CHECKING:
    from tilevm.codegen import CompiledPtx

__all__ = ["LLVM_IR_STAGE", "PTX_STAGE", "compile_ptx"]

#: the dump files of code generation, numbered after the passes'
LLVM_IR_STAGE = f"{len(PIPELINE) + 1:02d}-llvm_ir.ll"
PTX_STAGE = f"{len(PIPELINE) + 2:02d}-ptx.ptx"


def compile_ptx(
    thread_program: Program, target: str, options: CompileOptions, disk: bool = True
) -> CompiledPtx:
    """The PTX of ``thread_program`` (lowered for ``target``) for ``target``: from the disk cache when it
    has it (with ``disk``), else compiled and stored there; dumped when ``options`` has a dump directory."""
    from tilevm.codegen import compile_to_ptx  # LLVM is loaded when a kernel first needs code

    text = print_program(thread_program, THREAD_IR)
    cache = _disk_cache() if disk else None
    compiled = cache.get(text, target) if cache is not None else None
    if compiled is None:
        compiled = compile_to_ptx(thread_program, target)
        if cache is not None:
            cache.put(text, target, compiled)
    dump_stage(options, thread_program.name, LLVM_IR_STAGE, compiled.llvm_ir)
    dump_stage(options, thread_program.name, PTX_STAGE, compiled.ptx)
    return compiled


def _disk_cache():
    from tilevm.runtime.cuda.cache import DiskCache

    return DiskCache()
