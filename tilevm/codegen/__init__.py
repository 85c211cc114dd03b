"""Code generation: Thread IR to LLVM IR through llvmlite's IR builder, then PTX through LLVM's NVPTX back
end. No nvcc and no CUDA C; instructions LLVM has no intrinsic for are inline PTX, one typed helper each.

``compile_to_ptx(program, target)`` is the entry point. llvmlite is imported on the first call, so that
``import tilevm.codegen`` stays light; ``CodegenError`` and the targets import without it.

The stages: ``kernel.build_module`` walks the program with the handlers of ``handlers`` (one module per
family: ``control``, ``memory``, ``expressions``, ``compute``) into an LLVM module; ``emit.emit_ptx`` has
LLVM parse, verify, optimise (O3) and emit it in a worker process (``emit_worker``: LLVM aborts the process
it runs in on what it cannot handle), with the checks of ``guards``. ``targets.FEATURES`` is what each GPU
can do: handlers call ``FunctionContext.require`` before emitting what a target may lack, so that the user
gets an error at their line rather than LLVM's last words.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tilevm.codegen.targets import TARGETS, CodegenError, Target, find_target
from tilevm.runtime.collector import without_collector

# llvmlite's IR layer uses opaque pointers only when this is set before llvmlite is first imported; every
# module of this package imports llvmlite after this line has run (``llvm_types`` checks that it took).
os.environ["LLVMLITE_ENABLE_IR_LAYER_TYPED_POINTERS"] = "0"

if TYPE_CHECKING:
    from tilevm.ir.program import Program

__all__ = [
    "TARGETS",
    "CodegenError",
    "CompiledPtx",
    "Target",
    "compile_to_ptx",
    "generate_llvm_ir",
    "llvmlite_version",
]


@dataclass(frozen=True)
class CompiledPtx:
    """A kernel's PTX and what its launch needs: the ``.entry`` name, the block size, the dynamic shared
    memory in bytes, and how each parameter is passed (``"pointer"``, ``"i32"``, ``"f16"``: see
    ``tilevm.codegen.kernel.parameter_kind``), one per ``program.params``."""

    name: str
    ptx: str
    llvm_ir: str
    target: str
    num_threads: int
    shared_bytes: int
    parameters: tuple[str, ...]


def llvmlite_version() -> str:
    """The version of llvmlite (which fixes the LLVM it bundles), as its package says: part of every disk
    cache key. Read from ``llvmlite.__version__``, which imports none of LLVM, rather than from the package
    metadata, which scans the installed distributions (several milliseconds on a first launch)."""
    import llvmlite  # after the variable above, which llvmlite reads when first imported

    return llvmlite.__version__


@without_collector  # a few objects per LLVM instruction: see tilevm.runtime.collector
def generate_llvm_ir(program: Program, target: str | Target = "sm_90") -> str:
    """The unoptimised LLVM IR of a Thread IR program, as text (what ``TILEVM_DUMP_IR`` writes)."""
    from tilevm.codegen.handlers import EXPRESSIONS, INSTRUCTIONS
    from tilevm.codegen.kernel import build_module

    return str(build_module(program, find_target(target), INSTRUCTIONS, EXPRESSIONS))


@without_collector
def compile_to_ptx(program: Program, target: str | Target = "sm_90") -> CompiledPtx:
    """The PTX of a lowered Thread IR program for ``target`` (``"sm_80"``, ``"sm_86"``, ``"sm_89"``,
    ``"sm_90"``, or a ``Target`` with a lower PTX version for an older driver).

    Raises ``CodegenError`` for anything the target cannot do, at the user's line where known, before LLVM
    sees it.
    """
    from tilevm.codegen.emit import emit_ptx, start_worker
    from tilevm.codegen.kernel import parameter_kind

    chosen = find_target(target)
    start_worker()  # LLVM's process starts while the module is built
    llvm_ir = generate_llvm_ir(program, chosen)
    return CompiledPtx(
        name=program.name,
        ptx=emit_ptx(llvm_ir, chosen, program.name),
        llvm_ir=llvm_ir,
        target=chosen.name,
        num_threads=program.num_threads,
        shared_bytes=program.shared_bytes or 0,
        parameters=tuple(parameter_kind(param) for param in program.params),
    )
