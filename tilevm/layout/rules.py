"""The layout rules of Tile IR instructions, as layout algebra: what layout an operand must have, given the
result's (or the other way round). The verifier checks them; layout inference will use them to choose.

- **broadcast**: an elementwise operand of a smaller shape holds, in each thread, the elements that thread
  needs: the result's layout reduced over the broadcast dims (their thread digits become replication, their
  local digits vanish), leading dims the operand lacks dropped.
- **view**: the bits of the tile, row-major, are one stream (element ``i`` of ``n`` bits is bits
  ``[i*n, (i+1)*n)``); a layout then spreads that stream over threads as ``layout.reshape(size) *
  local(n)``. A view keeps each thread's bits in place exactly when both sides give the same bit layout.
- **dot**: see :func:`dot_atom`; leading batch dims are spread alike in a, b and the accumulator.

>>> from tilevm.layout import spatial
>>> broadcast_layout(spatial(4, 8).local(1, 2), (4, 1))
spatial(4, 1).replicated(8)
>>> view_layout(spatial(8, 4).local(1, 4), 8, 4, (8, 32))
spatial(8, 4).local(1, 8)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tilevm.layout.errors import LayoutError
from tilevm.layout.mma import DTYPE_NAMES, MMA_OPERANDS, MmaFragments, mma_fragments
from tilevm.layout.register import RegisterLayout, local

__all__ = ["SCALAR_ATOM", "bit_layout", "broadcast_layout", "dot_atom", "view_layout"]

#: the dot atom of one thread doing one multiply-add: every layout is a product of it
SCALAR_ATOM = MmaFragments(a=local(1, 1), b=local(1, 1), c=local(1, 1))


def broadcast_layout(result: RegisterLayout, operand_shape: Sequence[int]) -> RegisterLayout:
    """The layout an elementwise operand of ``operand_shape`` has when the result has ``result``.

    Shapes broadcast as in numpy (right-aligned; a 1 stretches). The operand's element held in a slot is the
    one the result's element in the same slot reads, so a thread computes with what it holds.

    >>> from tilevm.layout import spatial
    >>> broadcast_layout(spatial(4, 8).local(2, 1), (8,))
    replicated(4).spatial(8)
    """
    extra = result.rank - len(operand_shape)
    if extra < 0:
        raise LayoutError(f"a rank-{len(operand_shape)} operand does not broadcast to {result}")
    padded = (1,) * extra + tuple(operand_shape)
    stretched = [dim for dim, (size, full) in enumerate(zip(padded, result.shape)) if size != full]
    if any(padded[dim] != 1 for dim in stretched):
        raise LayoutError(f"shape {list(operand_shape)} does not broadcast to {list(result.shape)}")
    return result.reduce(stretched, keepdim=True).reduce(list(range(extra)), keepdim=False)


def bit_layout(layout: RegisterLayout, bits: int) -> RegisterLayout:
    """The layout of the tile's row-major bit stream: each element's ``bits`` held, lowest first, by the
    slots that hold the element.

    >>> from tilevm.layout import spatial
    >>> bit_layout(spatial(2, 2), 4)
    spatial(4).local(4)
    """
    return layout.reshape(math.prod(layout.shape)) * local(bits)


def view_layout(
    source: RegisterLayout, source_bits: int, target_bits: int, target_shape: Sequence[int]
) -> RegisterLayout | None:
    """The layout of a view's output that keeps each thread's bits where they are, or None when no layout
    does (a thread would hold part of an output element, or its bits would not be whole elements).

    It is the unique layout whose ``bit_layout`` equals the source's: divide that by ``local(target_bits)``
    and reshape to ``target_shape``.

    >>> from tilevm.layout import spatial
    >>> view_layout(spatial(16, 4).local(1, 4), 8, 4, (16, 32))  # uint8 [16, 16] as int4 [16, 32]
    spatial(16, 4).local(1, 8)
    >>> view_layout(spatial(16, 4), 8, 16, (16, 2)) is None  # one byte per thread is no float16
    True
    """
    bits = bit_layout(source, source_bits).divide(local(target_bits))
    if bits is None:
        return None
    try:
        return bits.reshape(tuple(target_shape))
    except LayoutError:
        return None


def dot_atom(
    a: RegisterLayout, b: RegisterLayout, accumulator: RegisterLayout, operand: object
) -> str | None:
    """The name of an atom ("fma" or an mma shape such as "m16n8k16") that a dot with these layouts of
    ``a [*B, m, k]``, ``b [*B, k, n]`` and ``accumulator [*B, m, n]`` can be built from, or None when there
    is none.

    The layouts fit an atom (mma fragments for ``operand``'s type, or :data:`SCALAR_ATOM`) when each divides
    by its fragment (which acts on the last two dims), and the quotients (layouts of the atoms over groups of
    threads, warps for mma) agree as a matrix product needs: ``a``'s quotient reduced over k is the
    accumulator's reduced over n (a group holds the a atoms of the rows whose results it holds), ``b``'s
    reduced over k is the accumulator's reduced over m, and k is never spread over threads in ``a`` or ``b``
    (a group holds its whole k). The leading batch dims ``B`` take part in both equalities, so their digits,
    over groups or locals, are the same in the three layouts: each batch index is a dot of its own, computed
    by the groups that hold it, as a rank-2 one is.

    >>> from tilevm.layout import mma_fragments, spatial
    >>> c = spatial(4, 8).local(2, 1)
    >>> dot_atom(c.reduce(1) * local(1, 16), local(16, 1) * c.reduce(0), c, "float32")
    'fma'
    >>> frag = mma_fragments("m16n8k16", "f16")
    >>> dot_atom(frag.a, frag.b, frag.c, "float16"), dot_atom(frag.a, frag.b, frag.c.permute(1, 0), "int4")
    ('m16n8k16', None)
    >>> warps = spatial(4, 1, 1)  # batch index w on warp w: [4, 16, 32] @ [4, 32, 8]
    >>> dot_atom(warps * local(1, 1, 2) * frag.a, warps * local(1, 2, 1) * frag.b, warps * frag.c, "float16")
    'm16n8k16'
    """
    for name, atom in _atoms(operand):
        quotients = a.divide(atom.a), b.divide(atom.b), accumulator.divide(atom.c)
        if None not in quotients and _quotients_fit(*quotients):
            return name
    return None


def _atoms(operand: object) -> list[tuple[str, MmaFragments]]:
    """The scalar atom, then the mma shapes that take ``operand``."""
    name = DTYPE_NAMES.get(str(operand), str(operand))
    shapes = [shape for shape, types in MMA_OPERANDS.items() if name in types]
    return [("fma", SCALAR_ATOM)] + [(shape, mma_fragments(shape, name)) for shape in shapes]


def _quotients_fit(a: RegisterLayout, b: RegisterLayout, accumulator: RegisterLayout) -> bool:
    # dims from the end: m, k of a; k, n of b; m, n of the accumulator, after the batch dims
    return (
        a.rank == b.rank == accumulator.rank
        and a.reduce(-1) == accumulator.reduce(-1)
        and b.reduce(-2) == accumulator.reduce(-2)
        and not _spread_over_threads(a, a.rank - 1)
        and not _spread_over_threads(b, b.rank - 2)
    )


def _spread_over_threads(layout: RegisterLayout, dim: int) -> bool:
    """Whether some thread digit of ``layout`` walks along ``dim``."""
    modes = layout.modes()
    dim_of = modes.dim_of()
    return any(entry >= 0 and dim_of[entry] == dim for entry in modes.spatial)
