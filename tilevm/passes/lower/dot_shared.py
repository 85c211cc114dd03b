"""Lowering of ``dot_shared`` (``accumulator + a @ b`` with ``a`` and ``b`` in shared memory).

The accumulator is in the warpgroups' layout (``tilevm.layout.warpgroup.warpgroup_accumulator``), which
is the ``mma.sync`` m16n8 accumulator fragments of warps stacked four by four along the rows: so the same
Tile IR lowers two ways.

- **Through registers** (every target): the operands are read into the ``mma.sync`` operand layouts that
  fit the accumulator (``ldmatrix`` where the shared layout allows) and multiplied as ``dot`` is.
"""

from __future__ import annotations

from tilevm.ir import Dot, LoadShared, Scope, SharedDot, TileType, Var
from tilevm.layout import local, mma_fragments
from tilevm.passes.lower.lowering import Handler, Lowering, tile_layout

__all__ = ["HANDLERS"]

#: values of k of one ``mma.sync`` m16n8k16 atom
_ATOM_K = 16


def _dot_shared(lowering: Lowering, dot: SharedDot) -> None:
    _through_registers(lowering, dot)


def _through_registers(lowering: Lowering, dot: SharedDot) -> None:
    fragments = mma_fragments("m16n8k16", dot.a.type.dtype)
    quotient = tile_layout(dot.accumulator) / fragments.c
    atoms = dot.a.type.shape[1] // _ATOM_K
    layouts = {
        "a": quotient.reduce(-1) * local(1, atoms) * fragments.a,
        "b": local(atoms, 1) * quotient.reduce(-2) * fragments.b,
    }
    operands = {}
    for name, layout in layouts.items():
        shared = getattr(dot, name)
        operands[name] = Var(name, TileType(shared.type.dtype, shared.type.shape, Scope.REGISTER, layout))
        lowering.lower(LoadShared(output=operands[name], tensor=shared, loc=dot.loc))
    a, b = operands["a"], operands["b"]
    lowering.lower(Dot(output=dot.output, a=a, b=b, accumulator=dot.accumulator, loc=dot.loc))


HANDLERS: dict[type, Handler] = {SharedDot: _dot_shared}
