"""Targets that run programs: ``reference`` (the block-level executor, the specification), and the JIT
launcher ``jit`` that compiles a kernel per specialization and runs it on its tensors' device."""
