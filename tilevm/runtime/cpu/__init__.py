"""The SIMT interpreter: Thread IR run on the CPU with numpy, every thread of a batch of blocks at once.

``execute(program, arguments, grid)`` has the contract of the block-level reference executor
(``tilevm.runtime.reference.execute``) and runs the lowered program the GPU would run:

- ``registers``: how a register is held (its bits, in a numpy array over the batch's threads);
- ``state``: the batch, its active mask and thread indices;
- ``expressions``, ``control``: expressions and structured control flow, divergent by masks;
- ``memory``, ``shared_memory``, ``copies``: loads, stores, bounds, alignment, races, cp.async groups,
  barriers; ``atomics``: read-modify-writes in thread order;
- ``collectives``: ``mma``, ``ldmatrix`` and ``shuffle`` from the PTX ISA's definitions, independently of
  ``tilevm.layout``; ``bit_ops``: ``lop3``, ``prmt``, ``cvt_pack``;
- ``compiler``: the program translated once into closures; ``executor``: arguments, the grid, batches.

>>> import torch
>>> from tilevm.ir import parse
>>> from tilevm.ir.thread import THREAD_IR
>>> program = parse('''kernel twice(%x: ptr<float32>) num_threads=4 {
...   %p: ptr<float32> = let(value=pointer_add(%x, ((block_index(0) * 4) + thread_index()) * 4))
...   %v: float32 = load(pointer=%p, width=4)
...   store(pointer=%p, value=%v + %v)
... }''', THREAD_IR)
>>> data = torch.arange(8, dtype=torch.float32)
>>> execute(program, [data], grid=(2,))
>>> data.tolist()
[0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0]
"""

from tilevm.runtime.cpu.executor import execute
from tilevm.runtime.reference.errors import ExecutionError

__all__ = ["ExecutionError", "execute"]
