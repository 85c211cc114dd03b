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

import llvmlite.binding as llvm

from tests.codegen_host import HANDLERS
from tilevm.codegen import compute
from tilevm.codegen.context import FunctionContext
from tilevm.codegen.llvm_types import ir, llvm_type
from tilevm.codegen.targets import TARGETS
from tilevm.ir.expr import Expr, Var
from tilevm.ir.inst import Instruction
from tilevm.runtime.cuda.ptxas import find_ptxas

__all__ = ["PTXAS", "assemble", "emit_ptx", "kernel_ptx"]

PTXAS = find_ptxas()
_initialized: list[bool] = []


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
    """The PTX of the LLVM IR ``module`` for ``target``, through LLVM's O3 as the kernel driver does. Fails
    if the module declares a function that is not an LLVM intrinsic (``.extern .func``)."""
    if not _initialized:
        llvm.initialize_all_targets()
        llvm.initialize_all_asmprinters()
        _initialized.append(True)
    parsed = llvm.parse_assembly(module)
    parsed.verify()
    chip = TARGETS[target]
    machine = llvm.Target.from_triple("nvptx64-nvidia-cuda").create_target_machine(
        cpu=chip.name, features=chip.llvm_features, opt=3
    )
    parsed.triple = "nvptx64-nvidia-cuda"
    parsed.data_layout = str(machine.target_data)
    builder = llvm.create_pass_builder(machine, llvm.create_pipeline_tuning_options(speed_level=3))
    builder.getModulePassManager().run(parsed, builder)
    ptx = machine.emit_assembly(parsed)
    assert ".extern .func" not in ptx, ptx
    return ptx


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
