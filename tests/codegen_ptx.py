"""PTX of code generation's expression and compute handlers, for tests that read the instructions they emit
and assemble them with ``ptxas``: a kernel whose parameters are the given Thread IR variables, running the
given instructions and storing the given expressions' values (so that LLVM keeps them), through LLVM's O3 and
the NVPTX back end, as the kernel driver does.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence

os.environ["LLVMLITE_ENABLE_IR_LAYER_TYPED_POINTERS"] = "0"

from tests.codegen_host import HANDLERS
from tilevm.codegen import compute, emit
from tilevm.codegen.context import FunctionContext
from tilevm.codegen.llvm_types import ir, llvm_type
from tilevm.codegen.targets import TARGETS
from tilevm.ir.expr import Expr, Var
from tilevm.ir.inst import Instruction
from tilevm.runtime.cuda.ptxas import find_ptxas

__all__ = ["PTXAS", "assemble", "emit_ptx", "kernel_ptx"]

PTXAS = find_ptxas()


def _kernel_module(
    inputs: Sequence[Var], instructions: Sequence[Instruction], results: Sequence[Expr], target: str
) -> str:
    module = ir.Module(name="kernel")
    module.triple = "nvptx64-nvidia-cuda"
    output = ir.PointerType(addrspace=1)
    signature = ir.FunctionType(ir.VoidType(), [output] + [llvm_type(variable.type) for variable in inputs])
    function = ir.Function(module, signature, name="kernel")
    function.calling_convention = "ptx_kernel"
    shared = ir.GlobalVariable(module, ir.ArrayType(ir.IntType(8), 0), "shared", addrspace=3)
    shared.linkage, shared.align = "external", 16
    shared.type = ir.PointerType(addrspace=3)
    context = FunctionContext(module, function, TARGETS[target], shared, compute.HANDLERS, HANDLERS)
    for variable, argument in zip(inputs, function.args[1:]):
        context.bind(variable, argument)
    context.body(instructions)
    builder = context.builder
    for index, result in enumerate(results):
        value = context.value(result)
        if isinstance(value.type, ir.PointerType):  # an address: store it as an integer
            value = builder.ptrtoint(value, ir.IntType(64))
        address = builder.gep(
            function.args[0], [ir.Constant(ir.IntType(32), 64 * index)], source_etype=ir.IntType(8)
        )
        builder.store(value, address, align=16)  # each result at its own 64-byte slot
    context.finish()
    return str(module)


def kernel_ptx(
    inputs: Sequence[Var] = (),
    instructions: Sequence[Instruction] = (),
    results: Sequence[Expr] = (),
    target: str = "sm_90",
) -> str:
    """The PTX of a kernel with parameters ``inputs`` that runs ``instructions`` and stores ``results``."""
    return emit_ptx(_kernel_module(inputs, instructions, results, target), target)


def emit_ptx(module: str, target: str) -> str:
    """The PTX of the LLVM IR ``module`` for ``target``: code generation's own emission (O3 in LLVM's worker
    process, so that an LLVM abort fails the test with LLVM's message; the guards against declarations of
    non-intrinsics and ``.extern .func``)."""
    return emit.emit_ptx(module, TARGETS[target], "kernel")


def assemble(ptx: str, target: str) -> None:
    """Assemble ``ptx`` with ptxas for ``target``; fails with ptxas's message."""
    with tempfile.TemporaryDirectory() as directory:
        source = os.path.join(directory, "kernel.ptx")
        with open(source, "w") as file:
            file.write(ptx)
        done = subprocess.run(
            [PTXAS, f"-arch={target}", source, "-o", os.path.join(directory, "kernel.cubin")],
            capture_output=True,
            text=True,
        )
    assert done.returncode == 0, done.stderr
