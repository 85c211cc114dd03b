"""Code generation: Thread IR to LLVM IR through llvmlite's IR builder, then PTX through LLVM's NVPTX back
end. No nvcc and no CUDA C; instructions LLVM has no intrinsic for are inline PTX, one typed helper each."""
