"""Targets that run programs: ``reference`` (the block-level executor, the specification), the JIT launcher
``jit`` that compiles a kernel per specialization and runs it on its tensors' device, and ``binding``, which
checks a launch's torch arguments and describes them to the compiler."""
