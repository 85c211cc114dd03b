"""The block-level executor: the specification of what a Tile IR program means, run on CPU tensors.

``execute(program, arguments, grid)`` runs every block of the grid, one after another; inside a block, each
instruction runs on whole tiles, in numpy, in program order. The lowered code is compared against it, so it
shares no code path with the lowering: values go through the data types' reference codec only.

The semantics, module by module:

- ``carrier``: how values are held (int64 / uint64, float64, bool arrays of values already in the dtype),
  and the poison that fills tiles nobody has written;
- ``arith``: elementwise arithmetic (float64 or exact integers, rounded once; wrap-around; Python
  ``floordiv``/``mod``; PTX's shift clamping; NaN-ignoring ``max``/``min``);
- ``convert``: ``cast`` and ``view``;
- ``global_memory`` and ``global_view``: tensors as bytes, bit-exact sub-byte access, masked windows;
- ``shared``: shared tiles and the strict model of ``copy_async``;
- ``memory_ops``, ``compute_ops``, ``control_ops``: one handler per instruction;
- ``executor``: arguments, the grid, and dispatch.

>>> from tilevm.ir import INSTRUCTION_CLASSES
>>> all(cls in HANDLERS for cls in INSTRUCTION_CLASSES)
True
"""

from tilevm.runtime.reference.errors import ExecutionError
from tilevm.runtime.reference.executor import HANDLERS, execute

__all__ = ["HANDLERS", "ExecutionError", "execute"]
