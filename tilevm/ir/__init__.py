"""Tile IR: the VM's instruction set (types, scalar expressions, instructions, programs), its builder, its
verifier, and its text form.

A program prints to text and ``tilevm.ir.parse`` reads that text back to an equal program.
"""

from tilevm.ir.async_copies import (
    CopyAsync,
    CopyAsyncCommit,
    CopyAsyncWait,
    Sync,
)
from tilevm.ir.builder import ProgramBuilder
from tilevm.ir.elementwise import (
    Arange,
    Binary,
    Cast,
    Unary,
    Where,
)
from tilevm.ir.equality import programs_equal
from tilevm.ir.expr import BinaryExpr, BlockIndex, CastExpr, Const, Expr, GridSize, UnaryExpr, Var
from tilevm.ir.global_access import (
    AtomicGlobal,
    AtomicScalar,
    GlobalView,
    LoadGlobal,
    LoadScalar,
    StoreGlobal,
)
from tilevm.ir.inst import Instruction, IRTypeError
from tilevm.ir.instruction_set import TILE_IR, InstructionSet
from tilevm.ir.layout_ops import (
    AssignTensor,
    ConvertLayout,
    Permute,
    View,
)
from tilevm.ir.parser import check_round_trip, parse
from tilevm.ir.printer import print_program
from tilevm.ir.program import Param, Program
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
from tilevm.ir.types import GlobalType, PointerType, ScalarType, Scope, TileType
from tilevm.ir.verify import verify

#: Tile IR's classes, as listed by its registry ``TILE_IR``
INSTRUCTION_CLASSES: tuple[type[Instruction], ...] = TILE_IR.instructions
EXPRESSION_CLASSES: tuple[type[Expr], ...] = TILE_IR.expressions

__all__ = [
    "EXPRESSION_CLASSES",
    "INSTRUCTION_CLASSES",
    "TILE_IR",
    "AllocRegister",
    "AllocShared",
    "Arange",
    "AssignScalar",
    "AssignTensor",
    "AtomicGlobal",
    "AtomicScalar",
    "Binary",
    "BinaryExpr",
    "BlockIndex",
    "Cast",
    "CastExpr",
    "Const",
    "ConvertLayout",
    "CopyAsync",
    "CopyAsyncCommit",
    "CopyAsyncWait",
    "DeclareScalar",
    "Dot",
    "DotWait",
    "Expr",
    "For",
    "FreeShared",
    "GlobalType",
    "GlobalView",
    "GridSize",
    "IRTypeError",
    "If",
    "Instruction",
    "InstructionSet",
    "LoadGlobal",
    "LetScalar",
    "LoadScalar",
    "LoadShared",
    "Param",
    "Permute",
    "PermuteShared",
    "PointerType",
    "Program",
    "ProgramBuilder",
    "Reduce",
    "SharedDot",
    "ScalarType",
    "Scope",
    "SliceShared",
    "StoreGlobal",
    "StoreShared",
    "Sync",
    "TileType",
    "Unary",
    "UnaryExpr",
    "Var",
    "View",
    "Where",
    "While",
    "check_round_trip",
    "parse",
    "print_program",
    "programs_equal",
    "verify",
]
