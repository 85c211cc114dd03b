"""Layouts: where each element of a tile lives (which thread and register, which shared or global offset).

>>> from tilevm.layout import parse, spatial
>>> parse("spatial(8, 4).local(2, 2)") == spatial(8, 4).local(2, 2)
True
"""

from tilevm.layout.errors import LayoutError
from tilevm.layout.ldmatrix import ldmatrix_layout
from tilevm.layout.mma import MmaFragments, mma_fragments
from tilevm.layout.register import (
    RegisterLayout,
    column_local,
    column_spatial,
    local,
    register_layout,
    replicated,
    spatial,
)
from tilevm.layout.rules import SCALAR_ATOM, bit_layout, broadcast_layout, dot_atom, view_layout
from tilevm.layout.shared import SharedLayout, choose_swizzle, shared
from tilevm.layout.swizzle import Swizzle, bank_conflicts, warp_accesses
from tilevm.layout.text import parse, register_constructor

__all__ = [
    "LayoutError",
    "RegisterLayout",
    "column_local",
    "column_spatial",
    "local",
    "parse",
    "register_constructor",
    "register_layout",
    "replicated",
    "spatial",
    "MmaFragments",
    "SCALAR_ATOM",
    "bit_layout",
    "broadcast_layout",
    "dot_atom",
    "view_layout",
    "SharedLayout",
    "Swizzle",
    "bank_conflicts",
    "choose_swizzle",
    "ldmatrix_layout",
    "mma_fragments",
    "shared",
    "warp_accesses",
]
