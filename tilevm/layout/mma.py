"""Tensor-core fragments of ``mma.sync.aligned.m16n8kK`` as register layouts of one warp (32 threads).

Each fragment is a short product of primitives. Local slot ``i`` of a thread is element ``i`` of the
instruction's operand, counted low to high through its registers (a 32-bit register holds 32 / bits
elements, so for 16-bit operands slot ``i`` is half ``i % 2`` of register ``i // 2``). ``a`` is indexed
``[m, k]``, ``b`` ``[k, n]``, ``c`` ``[m, n]``.

Derivation, from the PTX ISA's "Matrix Fragments for mma.m16n8k*" formulas, with ``groupID = lane >> 2``
and ``threadID_in_group = lane % 4``:

- every A fragment puts ``groupID`` on rows and ``threadID_in_group`` on column groups: ``spatial(8, 4)``.
  One register holds ``v = 32 / bits`` consecutive columns: ``local(1, v)`` on the right. The next register
  is 8 rows down and the one after that half of K to the right: ``column_local(2, 2)`` on the left, whose
  faster local digit walks the rows. (tf32 has one element per register: ``v = 1``.)
- every B fragment puts ``threadID_in_group`` on K and ``groupID`` on N, threads varying fastest along K:
  ``column_spatial(4, 8)``. One register holds ``v`` consecutive K, ``local(v, 1)``, and the next register
  is half of K further down: ``local(2, 1)`` on the left.
- the C fragment is the same for every shape: two consecutive columns per thread, then 8 rows down:
  ``local(2, 1) * spatial(8, 4) * local(1, 2)``.

>>> fragments = mma_fragments("m16n8k16", "f16")
>>> fragments.a.shape, fragments.b.shape, fragments.c.shape
((16, 16), (16, 8), (16, 8))
>>> fragments.a.table()[5, 2].tolist()  # lane 5: groupID 1, threadID_in_group 1; a2 is 8 rows down
[9, 2]
"""

from __future__ import annotations

from dataclasses import dataclass

from tilevm.layout.errors import LayoutError
from tilevm.layout.register import RegisterLayout, column_local, column_spatial, local, spatial

__all__ = ["MMA_OPERANDS", "MmaFragments", "mma_fragments"]


@dataclass(frozen=True)
class MmaFragments:
    """The A ``[m, k]``, B ``[k, n]`` and C/D ``[m, n]`` register layouts of one ``mma.sync`` instruction."""

    a: RegisterLayout
    b: RegisterLayout
    c: RegisterLayout


# Per shape: the operand types it takes, and the elements of A or B one 32-bit register holds for them.
MMA_OPERANDS: dict[str, dict[str, int]] = {
    "m16n8k8": {"tf32": 1},
    "m16n8k16": {"f16": 2, "bf16": 2},
    "m16n8k32": {"int8": 4, "uint8": 4, "e4m3": 4, "e5m2": 4},
    "m16n8k64": {"int4": 8, "uint4": 8},
}


# tilevm's dtype names for the PTX operand types (this package imports no dtypes: a dtype's str is its name)
DTYPE_NAMES = {"float16": "f16", "bfloat16": "bf16", "float8_e4m3": "e4m3", "float8_e5m2": "e5m2"}


def mma_fragments(shape: str, operand: object) -> MmaFragments:
    """The fragments of ``mma.sync.aligned.<shape>.row.col`` with A and B of type ``operand``: a PTX type
    name (``"f16"``, ``"e4m3"``) or a tilevm dtype (``tv.float16``, ``tv.int4``).

    >>> str(mma_fragments("m16n8k32", "int8").a)
    'column_local(2, 2).spatial(8, 4).local(1, 4)'
    """
    operand = DTYPE_NAMES.get(str(operand), str(operand))
    if shape not in MMA_OPERANDS:
        raise LayoutError(f"unknown mma shape {shape!r} (known: {', '.join(MMA_OPERANDS)})")
    per_register = MMA_OPERANDS[shape].get(operand)
    if per_register is None:
        known = ", ".join(MMA_OPERANDS[shape])
        raise LayoutError(f"mma shape {shape} takes no {operand!r} operands (known: {known})")
    return MmaFragments(
        a=column_local(2, 2) * spatial(8, 4) * local(1, per_register),
        b=local(2, 1) * column_spatial(4, 8) * local(per_register, 1),
        c=local(2, 1) * spatial(8, 4) * local(1, 2),
    )
