"""One registry per instruction set: the instruction and expression classes of one IR, which the printer, the
parser and the round-trip check take as a parameter. Tile IR's is ``TILE_IR``; the per-thread Thread IR of the
lowering defines its own and reuses the text form unchanged.

>>> from tilevm.ir.async_copies import Sync
>>> TILE_IR.name, Sync in TILE_IR.instructions, CastExpr in TILE_IR.expressions
('tile', True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

from tilevm.ir.async_copies import (
    CopyAsync,
    CopyAsyncCommit,
    CopyAsyncWait,
    Sync,
)
from tilevm.ir.elementwise import (
    Arange,
    Binary,
    Cast,
    Unary,
    Where,
)
from tilevm.ir.expr import BinaryExpr, BlockIndex, CastExpr, Const, Expr, GridSize, UnaryExpr, Var
from tilevm.ir.global_access import (
    AtomicGlobal,
    AtomicScalar,
    GlobalView,
    LoadGlobal,
    LoadScalar,
    StoreGlobal,
)
from tilevm.ir.inst import Instruction
from tilevm.ir.layout_ops import (
    AssignTensor,
    ConvertLayout,
    Permute,
    View,
)
from tilevm.ir.reductions import (
    Dot,
    DotWait,
    Reduce,
    SharedDot,
)
from tilevm.ir.shared_tiles import (
    AllocRegister,
    AllocShared,
    FreeShared,
    LoadShared,
    PermuteShared,
    SliceShared,
    StoreShared,
)
from tilevm.ir.stmt import AssignScalar, DeclareScalar, For, If, LetScalar, While

__all__ = ["TILE_IR", "InstructionSet"]


@dataclass(frozen=True)
class InstructionSet:
    """The classes of one IR. Each instruction's text form is derived from its dataclass fields and each
    expression's from its ``syntax`` and fields (``tilevm.ir.text_forms``), so a set is just these lists.

    ``For``, ``While`` and ``If``, which hold nested bodies, have syntax of their own and may be in any set.
    """

    name: str
    instructions: tuple[type[Instruction], ...]
    expressions: tuple[type[Expr], ...]


TILE_IR = InstructionSet(
    "tile",
    instructions=(
        GlobalView, AllocShared, FreeShared, AllocRegister, SliceShared, LoadGlobal, StoreGlobal,
        AtomicGlobal, LoadShared, StoreShared, CopyAsync, CopyAsyncCommit, CopyAsyncWait, Sync, PermuteShared,
        Unary, Binary, Where, Reduce, Dot, SharedDot, DotWait, Cast, View, AssignTensor, ConvertLayout,
        Arange, Permute,
        LetScalar, DeclareScalar, AssignScalar, For, While, If,
        LoadScalar, AtomicScalar,
    ),
    expressions=(Var, Const, BlockIndex, GridSize, UnaryExpr, BinaryExpr, CastExpr),
)  # fmt: skip
