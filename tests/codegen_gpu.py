"""Runs code generation's expression and compute handlers on a GPU, one thread per element: the GPU twin of
``codegen_host``, for what only the GPU runs (NVVM intrinsics, inline PTX, the NVPTX back end's own
lowering of the same LLVM IR).

``build_kernels({name: (inputs, instructions, results)}, target)`` makes one PTX module with a kernel per
name, ``name(ptr out0, ..., ptr in0, ..., i32 n)``: thread ``i = block_index * 256 + thread_index``, when
``i < n``, loads element i of each input Var (codes, as ``codegen_host`` lays them out), runs the
instructions and stores element i of each result. ``GpuModule(ptx)`` loads it with the CUDA driver
(``cuda.bindings.driver``) on torch's current device and launches kernels on numpy arrays of codes.
Warp-collective instructions need whole warps: ``n`` a multiple of 32.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Sequence

import numpy as np

from tests.codegen_host import HANDLERS, ModuleContext, element_address, from_memory, memory_type, to_memory
from tests.codegen_ptx import emit_ptx
from tilevm.codegen import compute
from tilevm.codegen.llvm_types import ir
from tilevm.codegen.targets import TARGETS
from tilevm.dtypes import code_storage_dtype
from tilevm.ir.expr import BlockIndex, Expr, Var
from tilevm.ir.inst import Instruction
from tilevm.ir.thread import ThreadIndex
from tilevm.ir.types import ScalarType, VectorType

__all__ = ["BLOCK", "GpuModule", "build_kernels", "device_target"]

BLOCK = 256
Case = tuple[Sequence[Var], Sequence[Instruction], Sequence[Expr]]


def _define(module: ir.Module, shared: ir.GlobalVariable, name: str, case: Case, target: str) -> None:
    inputs, instructions, results = case
    pointer = ir.PointerType(addrspace=1)
    signature = ir.FunctionType(ir.VoidType(), [pointer] * (len(results) + len(inputs)) + [ir.IntType(32)])
    function = ir.Function(module, signature, name=symbol(name))
    function.calling_convention = "ptx_kernel"
    context = ModuleContext(module, function, TARGETS[target], shared, compute.HANDLERS, HANDLERS)
    builder = context.builder
    block, thread = context.value(BlockIndex(0)), context.value(ThreadIndex())
    index = builder.add(builder.mul(block, ir.Constant(ir.IntType(32), BLOCK)), thread)
    active, done = context.new_block("active"), context.new_block("done")
    builder.cbranch(builder.icmp_signed("<", index, function.args[-1]), active, done)
    builder.position_at_end(active)
    wide = builder.zext(index, ir.IntType(64))
    for variable, argument in zip(inputs, function.args[len(results) :]):
        memory = memory_type(variable.type)
        address = element_address(builder, argument, wide, memory)
        loaded = builder.load(address, typ=memory, align=_alignment(variable.type))
        context.bind(variable, from_memory(builder, loaded, variable.type))
    context.body(instructions)
    for result, argument in zip(results, function.args):
        memory = memory_type(result.type)
        stored = to_memory(builder, context.value(result), result.type)
        builder.store(stored, element_address(builder, argument, wide, memory), align=_alignment(result.type))
    builder.branch(done)
    builder.position_at_end(done)
    context.finish()


def _alignment(value_type: ScalarType | VectorType) -> int:
    """An element's natural alignment in the arrays (torch's allocations are 256-byte aligned). Byte-wise
    accesses (align 1) of float results came back with a wrong low byte on an H100 (driver 580): the
    element's own alignment is what the code generator's loads and stores use."""
    count = value_type.length if isinstance(value_type, VectorType) else 1
    size = np.dtype(code_storage_dtype(value_type.dtype)).itemsize * count
    return size & -size  # the largest power of two dividing it


def symbol(name: str) -> str:
    """The kernel's symbol: a case's name with every character PTX does not allow in a name replaced, and a
    hash of the name, so that two names that differ only in those characters stay apart."""
    import hashlib

    return f"{re.sub(r'[^A-Za-z0-9_]', '_', name)}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def build_kernels(cases: dict[str, Case], target: str) -> str:
    """The PTX of one module with a kernel per case (see the module's docstring)."""
    module = ir.Module(name="kernels")
    module.triple = "nvptx64-nvidia-cuda"
    shared = ir.GlobalVariable(module, ir.ArrayType(ir.IntType(8), 0), "shared", addrspace=3)
    shared.linkage, shared.align = "external", 16
    shared.type = ir.PointerType(addrspace=3)
    for name, case in cases.items():
        _define(module, shared, name, case, target)
    return emit_ptx(str(module), target)


def device_target() -> str:
    """The newest of code generation's targets that torch's current GPU runs."""
    import torch

    major, minor = torch.cuda.get_device_capability()
    capability = 10 * major + minor
    return max(
        (target for target in TARGETS.values() if target.capability <= capability), key=lambda t: t.capability
    ).name


def _check(result: tuple, call: str) -> tuple:
    from cuda.bindings import driver

    error = result[0]
    if error != driver.CUresult.CUDA_SUCCESS:
        raise RuntimeError(f"{call} failed: {error}")
    return result[1:]


class GpuModule:
    """A PTX module loaded on torch's current GPU."""

    def __init__(self, ptx: str, cases: dict[str, Case]) -> None:
        import torch
        from cuda.bindings import driver

        torch.zeros(1, device="cuda")  # makes torch's context current in this thread
        (self._module,) = _check(driver.cuModuleLoadData(ptx.encode()), "cuModuleLoadData")
        self._cases = cases

    def __call__(self, name: str, *arrays: np.ndarray, count: int | None = None) -> list[np.ndarray]:
        """Run kernel ``name`` on ``arrays`` (codes, one per input; ``[n]`` or ``[n, length]``) and return
        the results' codes, one array per result (poisoned before the launch)."""
        import torch
        from cuda.bindings import driver

        inputs, _, results = self._cases[name]
        count = len(arrays[0]) if arrays else count
        sources = [
            torch.from_numpy(
                np.ascontiguousarray(array, dtype=code_storage_dtype(variable.type.dtype)).view(np.uint8)
            ).cuda()
            for array, variable in zip(arrays, inputs, strict=True)
        ]
        outputs = [
            np.full((count, *_shape(result.type)), 0xA5, dtype=code_storage_dtype(result.type.dtype))
            for result in results
        ]
        targets = [torch.from_numpy(output.view(np.uint8)).cuda() for output in outputs]
        (function,) = _check(
            driver.cuModuleGetFunction(self._module, symbol(name).encode()), "cuModuleGetFunction"
        )
        pointers = [tensor.data_ptr() for tensor in (*targets, *sources)]
        arguments = ((*pointers, count), (*[ctypes.c_void_p] * len(pointers), ctypes.c_int))
        blocks = -(-count // BLOCK)
        stream = torch.cuda.current_stream().cuda_stream
        _check(
            driver.cuLaunchKernel(function, blocks, 1, 1, BLOCK, 1, 1, 0, stream, arguments, 0),
            "cuLaunchKernel",
        )
        torch.cuda.synchronize()
        return [
            tensor.cpu().numpy().view(output.dtype).reshape(output.shape)
            for tensor, output in zip(targets, outputs)
        ]


def _shape(value_type: ScalarType | VectorType) -> tuple[int, ...]:
    return (value_type.length,) if isinstance(value_type, VectorType) else ()
