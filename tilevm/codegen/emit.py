"""LLVM IR text to PTX: parse and verify, optimise at O3 (the new pass manager), emit for NVPTX.

LLVM is initialised once per process, on the first kernel: every target llvmlite has (its binding offers no
NVPTX-only initialisation; it costs tens of milliseconds once) and ``--nvptx-short-ptr``, so that
shared-memory addresses are 32 bits as ``ldmatrix`` and ``cp.async`` want them. A target machine is made
once per target and reused.

The guards of ``tilevm.codegen.guards`` run on the parsed module (every ``llvm.*`` declaration is a real
intrinsic) and on the PTX (no external function, the requested ``.version`` and ``.target``).
"""

from __future__ import annotations

import functools

from llvmlite import binding as llvm

from tilevm.codegen.guards import check_declarations, check_ptx
from tilevm.codegen.kernel import TRIPLE
from tilevm.codegen.targets import CodegenError, Target

__all__ = ["data_layout", "emit_ptx", "target_machine"]

_OPTIMIZATION_LEVEL = 3


@functools.cache
def _initialise() -> None:
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    llvm.set_option("tilevm", "--nvptx-short-ptr")


@functools.cache
def target_machine(target: Target) -> llvm.TargetMachine:
    """The NVPTX target machine of ``target`` (its chip and PTX version), made once."""
    _initialise()
    return llvm.Target.from_triple(TRIPLE).create_target_machine(
        cpu=target.name, features=target.llvm_features, opt=_OPTIMIZATION_LEVEL
    )


def data_layout(target: Target) -> str:
    """The data layout of NVPTX code, as the target machine defines it."""
    return str(target_machine(target).target_data)


def emit_ptx(llvm_ir: str, target: Target, kernel: str) -> str:
    """The PTX of the module ``llvm_ir`` (one kernel, named ``kernel`` in errors), optimised at O3."""
    machine = target_machine(target)
    try:
        module = llvm.parse_assembly(llvm_ir)
        module.verify()
    except RuntimeError as error:
        raise CodegenError(f"kernel '{kernel}': LLVM refused the generated IR: {error}") from error
    check_declarations(module, kernel)
    tuning = llvm.create_pipeline_tuning_options(_OPTIMIZATION_LEVEL)
    passes = llvm.create_pass_builder(machine, tuning)
    passes.getModulePassManager().run(module, passes)
    ptx = machine.emit_assembly(module)
    check_ptx(ptx, target, kernel)
    return ptx
