"""The process that runs LLVM: parse, verify, optimise at O3, emit PTX. ``tilevm.codegen.emit`` starts it
once and sends it one module at a time.

LLVM ends the whole process on what it cannot handle (an instruction the target cannot select, a failed
internal assertion: llvmlite's LLVM is built with assertions), so it runs here, apart from the user's
process, which sees a failure as a ``CodegenError`` and starts a new worker for the next kernel. This file
is run as a script and imports nothing but llvmlite and the standard library (importing tilevm would cost a
second at every start).

Its argument, when given, is the directory to import llvmlite from: the one the user's process imports it
from (``emit.worker_command``), which ``PYTHONPATH`` may have chosen, and which ``python -I`` ignores.

The protocol, over stdin and stdout: a request is a JSON line ``{"cpu", "features", "size"}`` followed by
``size`` bytes of LLVM IR text; the answer a JSON line ``{"size", "declarations"}`` followed by ``size``
bytes of PTX, or ``{"error": message}``. ``declarations`` lists each function the module declares, with
whether it carries attributes (real intrinsics always do), for ``tilevm.codegen.guards``.
"""

from __future__ import annotations

import json
import os
import sys

os.environ["LLVMLITE_ENABLE_IR_LAYER_TYPED_POINTERS"] = "0"
# the directory that the user's process imports llvmlite from (``emit.worker_command``), ahead of this
# interpreter's own packages
sys.path[:0] = sys.argv[1:]

from llvmlite import binding as llvm  # noqa: E402  (after the variable, which llvmlite reads, and the path)

TRIPLE = "nvptx64-nvidia-cuda"
OPTIMIZATION_LEVEL = 3


def _initialise() -> None:
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    # shared-memory addresses in 32 bits, as ldmatrix and cp.async want them
    llvm.set_option("tilevm", "--nvptx-short-ptr")
    # VectorCombine fails an assertion (foldBitcastShuffle) on shuffles around bitcasts between vectors whose
    # lengths do not divide each other, as 3, 5, 6 and 7-bit data make (<3 x i8> and <8 x i3>); InstCombine
    # does the folds that the kernels need
    llvm.set_option("tilevm", "--disable-vector-combine")


_machines: dict[tuple[str, str], llvm.TargetMachine] = {}


def _machine(cpu: str, features: str) -> llvm.TargetMachine:
    key = (cpu, features)
    if key not in _machines:
        target = llvm.Target.from_triple(TRIPLE)
        _machines[key] = target.create_target_machine(cpu=cpu, features=features, opt=OPTIMIZATION_LEVEL)
    return _machines[key]


def compile_module(llvm_ir: str, cpu: str, features: str) -> tuple[str, list[tuple[str, bool]]]:
    """The PTX of a module and its declarations (name, has attributes); RuntimeError if LLVM refuses it."""
    machine = _machine(cpu, features)
    module = llvm.parse_assembly(llvm_ir)
    module.triple = TRIPLE
    module.data_layout = str(machine.target_data)
    module.verify()
    declarations = [
        (function.name, any(attribute for attribute in function.attributes))
        for function in module.functions
        if function.is_declaration
    ]
    tuning = llvm.create_pipeline_tuning_options(OPTIMIZATION_LEVEL)
    passes = llvm.create_pass_builder(machine, tuning)
    passes.getModulePassManager().run(module, passes)
    return machine.emit_assembly(module), declarations


def _serve(requests: object, answers: object) -> None:
    while True:
        header = requests.readline()
        if not header:
            return  # the user's process closed the pipe: it is done
        request = json.loads(header)
        llvm_ir = requests.read(request["size"]).decode()
        try:
            ptx, declarations = compile_module(llvm_ir, request["cpu"], request["features"])
        except RuntimeError as error:
            answers.write(json.dumps({"error": str(error)}).encode() + b"\n")
        else:
            body = ptx.encode()
            answers.write(json.dumps({"size": len(body), "declarations": declarations}).encode() + b"\n")
            answers.write(body)
        answers.flush()


if __name__ == "__main__":
    _initialise()
    _serve(sys.stdin.buffer, sys.stdout.buffer)
