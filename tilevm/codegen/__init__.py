"""Code generation: Thread IR to LLVM IR through llvmlite's IR builder, then PTX through LLVM's NVPTX back
end. No nvcc and no CUDA C; instructions LLVM has no intrinsic for are inline PTX, one typed helper each.

``compile_to_ptx(program, target)`` is the entry point; importing it loads llvmlite, so ``import tilevm``
does not import this package's modules until a kernel needs them.
"""
